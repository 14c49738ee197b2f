#!/usr/bin/env bash
# Benchmarks WebAssembly functions against node ones, side by side in one run on loopback, on
# a release build, with the same handler logic (answer `hello`):
#   - cold start p50: the first request to a function with no instance. A node function's
#     instance is reaped after 1 s idle, then called; a wasm function never keeps an instance
#     (each request gets a fresh one), so each of its calls after a pause is a cold start. The
#     first wasm request after a deploy also loads the component from the runner: shown apart.
#   - warm throughput at 32 connections (wrk): the wasm function against the node function
#     with INSTANCES instances kept warm.
# Goals (issue 26): wasm cold start p50 <= node's / 50, wasm throughput >= 3x node's.
# Needs wrk (apt-get install wrk) and tests/wasm's tools (cd tests/wasm && npm ci).
# Usage: bench/wasm.sh   RUNS=20 (cold starts), DURATION=5 (throughput runs), ROUNDS=3,
#   INSTANCES=4 (warm node instances), MEMORY_LIMIT=1024 (each function's, so node's CPU quota
#   does not hold it back), BENCH_BINARY=path (see bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-20}"
DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
INSTANCES="${INSTANCES:-4}"
MEMORY_LIMIT="${MEMORY_LIMIT:-1024}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -d tests/wasm/node_modules ] || (cd tests/wasm && npm ci --no-audit --no-fund --loglevel=error)
source bench/lib.sh
bench_binary

cat >"$WORK/hello.js" <<'JS'
addEventListener('fetch', (event) => event.respondWith(new Response('hello')));
JS
tests/wasm/build.sh "$WORK/hello.wasm" "$WORK/hello.js"

bench_start "$WORK/data" NUAGE_ROUTER__IDLE_SECONDS=1
INSTANCES="$INSTANCES" MEMORY_LIMIT="$MEMORY_LIMIT" WASM="$WORK/hello.wasm" python3 - >"$WORK/setup" <<'PY'
import os, time, urllib.request
from client import archive, deployed, namespace, runtime

memory = int(os.environ["MEMORY_LIMIT"])
namespace_id = namespace("bench-wasm")
node_code = archive({"handler.js": "exports.handle = () => 'hello';\n"})
wasm_code = archive({"handler.wasm": open(os.environ["WASM"], "rb").read()})
node = runtime("node")
warm = int(os.environ["INSTANCES"])
found = {
    "node-cold": deployed(namespace_id, node_code, name="node-cold", runtime=node, min_scale=0, max_scale=1, memory_limit=memory),
    "node-warm": deployed(namespace_id, node_code, name="node-warm", runtime=node, min_scale=warm, max_scale=warm, memory_limit=memory),
}
started = time.time()
found["wasm"] = deployed(namespace_id, wasm_code, name="wasm", runtime="wasm", handler="handler.wasm", memory_limit=memory)
build_seconds = time.time() - started
for name in ("node-cold", "node-warm", "wasm"):
    print(found[name]["endpoint"])
print(found["node-cold"]["id"])
print(f"{build_seconds:.1f}")
PY
NODE_COLD="$(sed -n 1p "$WORK/setup")"
NODE_WARM="$(sed -n 2p "$WORK/setup")"
WASM="$(sed -n 3p "$WORK/setup")"
NODE_COLD_ID="$(sed -n 4p "$WORK/setup")"
echo "wasm deploy (upload, validate, compile ahead of time, roll out): $(sed -n 5p "$WORK/setup") s"

echo "== cold starts ($RUNS each)"
RUNS="$RUNS" NODE_COLD="$NODE_COLD" NODE_COLD_ID="$NODE_COLD_ID" WASM="$WASM" python3 - <<'PY'
import os, statistics, time, urllib.request
from client import alive

runs = int(os.environ["RUNS"])


def timed(url):
    started = time.perf_counter()
    body = urllib.request.urlopen(url).read()
    assert body == b"hello", body
    return time.perf_counter() - started

# The first request after the deploy: the router fetches the component from the runner and
# loads it, then runs it in a fresh instance.
first = timed(os.environ["WASM"])
wasm = []
for _ in range(runs):
    time.sleep(0.2)
    wasm.append(timed(os.environ["WASM"]))
node = []
for _ in range(runs):
    while alive(os.environ["NODE_COLD_ID"]):
        time.sleep(0.05)
    node.append(timed(os.environ["NODE_COLD"]))
p50_wasm, p50_node = statistics.median(wasm) * 1000, statistics.median(node) * 1000
print(f"  wasm first request after deploy (component load + instance) {first * 1000:.2f} ms")
print(f"  wasm cold start p50 {p50_wasm:.2f} ms (max {max(wasm) * 1000:.2f})")
print(f"  node cold start p50 {p50_node:.2f} ms (max {max(node) * 1000:.2f})")
print(f"  wasm / node {p50_wasm / p50_node:.4f} (goal <= 0.02, 1/50)")
PY

echo "== warm, 32 connections ($ROUNDS rounds of ${DURATION}s, alternating)"
ratios=()
for round in $(seq 1 "$ROUNDS"); do
  read -r node_rps node_p50 node_bad _ < <(measure 2 32 "$NODE_WARM")
  read -r wasm_rps wasm_p50 wasm_bad _ < <(measure 2 32 "$WASM")
  printf '  round %d: node %7.0f req/s (p50 %6.0f us, non-2xx %s)  wasm %7.0f req/s (p50 %6.0f us, non-2xx %s)\n' \
    "$round" "$node_rps" "$node_p50" "$node_bad" "$wasm_rps" "$wasm_p50" "$wasm_bad"
  ratios+=("$(awk -v w="$wasm_rps" -v n="$node_rps" 'BEGIN { printf "%.2f", w / n }')")
done
printf '  wasm / node throughput per round: %s; median %s (goal >= 3)\n' "${ratios[*]}" "$(median "${ratios[@]}")"
