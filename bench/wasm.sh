#!/usr/bin/env bash
# Benchmarks WebAssembly functions against node ones, side by side in one run on loopback, on
# a release build, with the same handler logic (answer `hello`), in two guests: the handler in
# JavaScript made a component by componentize-js (13 MB: a whole JS engine, StarlingMonkey),
# and the same handler written by hand in WebAssembly text (tests/wasm/wat/hello.wat, 7 KB),
# which shows what the host itself costs:
#   - cold start p50: the first request to a function with no instance, timed over a
#     connection to the router kept open (no TCP set-up in the figure). A node function's
#     instance is reaped after 1 s idle, then called; a wasm function never keeps an instance
#     (each request gets a fresh one), so each of its calls after a pause is a cold start. The
#     first wasm request after a deploy also loads the component from the runner: shown apart.
#   - warm throughput at 32 connections (wrk): the wasm function against the node function
#     with INSTANCES instances kept warm.
# Goals (issue 26): wasm cold start p50 <= node's / 50, wasm throughput >= 3x node's.
# Needs wrk (apt-get install wrk) and tests/wasm's tools (cd tests/wasm && npm ci).
# Usage: bench/wasm.sh   RUNS=20 (cold starts), DURATION=5 (throughput runs), ROUNDS=3,
#   INSTANCES=4 (warm node instances), MEMORY_LIMIT=1024 (each function's, so node's CPU quota
#   does not hold it back), BENCH_BINARY=path (see bench/lib.sh). The router serves on half
#   the cores by default (router.threads = 0), leaving the rest to instance processes; a
#   WebAssembly instance runs on the serving thread that took its request, so an installation
#   running mostly wasm gives the router every core: NUAGE_ROUTER__THREADS=$(nproc) measures
#   that (node and wasm alike).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
INSTANCES="${INSTANCES:-4}"
MEMORY_LIMIT="${MEMORY_LIMIT:-1024}"
source bench/lib.sh
bench_needs wrk
[ -d tests/wasm/node_modules ] || (cd tests/wasm && npm ci --no-audit --no-fund --loglevel=error)

cat >"$WORK/hello.js" <<'JS'
addEventListener('fetch', (event) => event.respondWith(new Response('hello')));
JS
tests/wasm/build.sh "$WORK/hello.wasm" "$WORK/hello.js"
node tests/wasm/wat/build.mjs tests/wasm/wat/hello.wat "$WORK/hello-wat.wasm"

bench_start "$WORK/data" NUAGE_ROUTER__IDLE_SECONDS=1
INSTANCES="$INSTANCES" MEMORY_LIMIT="$MEMORY_LIMIT" WASM="$WORK/hello.wasm" WAT="$WORK/hello-wat.wasm" python3 - >"$WORK/setup" <<'PY'
import os, time, urllib.request
from client import archive, deployed, namespace, runtime

memory = int(os.environ["MEMORY_LIMIT"])
namespace_id = namespace("bench-wasm")
node_code = archive({"handler.js": "exports.handle = () => 'hello';\n"})
wasm_code = archive({"handler.wasm": open(os.environ["WASM"], "rb").read()})
wat_code = archive({"handler.wasm": open(os.environ["WAT"], "rb").read()})
node = runtime("node")
warm = int(os.environ["INSTANCES"])
found = {
    "node-cold": deployed(namespace_id, node_code, name="node-cold", runtime=node, min_scale=0, max_scale=1, memory_limit=memory),
    "node-warm": deployed(namespace_id, node_code, name="node-warm", runtime=node, min_scale=warm, max_scale=warm, memory_limit=memory),
}
started = time.time()
found["wasm"] = deployed(namespace_id, wasm_code, name="wasm", runtime="wasm", handler="handler.wasm", memory_limit=memory)
build_seconds = time.time() - started
found["wat"] = deployed(namespace_id, wat_code, name="wat", runtime="wasm", handler="handler.wasm", memory_limit=memory)
for name in ("node-cold", "node-warm", "wasm", "wat"):
    print(found[name]["endpoint"])
print(found["node-cold"]["id"])
print(f"{build_seconds:.1f}")
PY
NODE_COLD="$(sed -n 1p "$WORK/setup")"
NODE_WARM="$(sed -n 2p "$WORK/setup")"
WASM="$(sed -n 3p "$WORK/setup")"
WAT="$(sed -n 4p "$WORK/setup")"
NODE_COLD_ID="$(sed -n 5p "$WORK/setup")"
echo "JS component's deploy (upload, validate, compile ahead of time, roll out): $(sed -n 6p "$WORK/setup") s"

echo "router serving threads: ${NUAGE_ROUTER__THREADS:-half the cores (default)} of $(nproc) cores"
echo "== cold starts ($RUNS each)"
NODE_COLD="$NODE_COLD" NODE_COLD_ID="$NODE_COLD_ID" WASM="$WASM" WAT="$WAT" python3 - <<'PY'
import http.client, os, statistics, time, urllib.parse
from client import RUNS, alive

# Each endpoint is called over a connection kept open (as the router keeps it), so that what
# is timed is the request, not a new TCP connection and urllib's set-up around it.
connections = {}


def timed(url):
    parts = urllib.parse.urlsplit(url)
    for _ in range(2):
        connection = connections.get(parts.netloc)
        if connection is None:
            connection = connections[parts.netloc] = http.client.HTTPConnection(parts.netloc)
            connection.connect()
        try:
            started = time.perf_counter()
            connection.request("GET", parts.path or "/")
            body = connection.getresponse().read()
            elapsed = time.perf_counter() - started
        except (ConnectionError, http.client.HTTPException):
            # Closed while idle: timed again on a new one.
            connections.pop(parts.netloc).close()
            continue
        assert body == b"hello", body
        return elapsed
    raise RuntimeError(f"{url} closed two connections in a row")

# The first request after the deploy: the router fetches the component from the runner and
# loads it, then runs it in a fresh instance.
first = {guest: timed(os.environ[guest]) for guest in ("WASM", "WAT")}
cold = {"WASM": [], "WAT": []}
for _ in range(RUNS):
    for guest in cold:
        time.sleep(0.2)
        cold[guest].append(timed(os.environ[guest]))
node = []
for _ in range(RUNS):
    while alive(os.environ["NODE_COLD_ID"]):
        time.sleep(0.05)
    node.append(timed(os.environ["NODE_COLD"]))
p50_node = statistics.median(node) * 1000
print(f"  node cold start p50 {p50_node:.2f} ms (max {max(node) * 1000:.2f})")
for guest, name in (("WASM", "wasm (JS engine)"), ("WAT", "wasm (by hand)")):
    p50 = statistics.median(cold[guest]) * 1000
    print(f"  {name}: first request after deploy (component load + instance) {first[guest] * 1000:.2f} ms;"
          f" cold start p50 {p50:.2f} ms (max {max(cold[guest]) * 1000:.2f}); / node {p50 / p50_node:.4f} (goal <= 0.02)")
PY

echo "== warm, 32 connections ($ROUNDS rounds of ${DURATION}s, alternating)"
js_ratios=()
wat_ratios=()
for round in $(seq 1 "$ROUNDS"); do
  read -r node_rps node_p50 node_bad _ < <(measure 2 32 "$NODE_WARM")
  read -r js_rps js_p50 js_bad _ < <(measure 2 32 "$WASM")
  read -r wat_rps wat_p50 wat_bad _ < <(measure 2 32 "$WAT")
  printf '  round %d: node %7.0f req/s (p50 %6.0f us, non-2xx %s)  wasm JS engine %7.0f req/s (p50 %6.0f us, non-2xx %s)  wasm by hand %7.0f req/s (p50 %6.0f us, non-2xx %s)\n' \
    "$round" "$node_rps" "$node_p50" "$node_bad" "$js_rps" "$js_p50" "$js_bad" "$wat_rps" "$wat_p50" "$wat_bad"
  js_ratios+=("$(awk -v w="$js_rps" -v n="$node_rps" 'BEGIN { printf "%.2f", w / n }')")
  wat_ratios+=("$(awk -v w="$wat_rps" -v n="$node_rps" 'BEGIN { printf "%.2f", w / n }')")
done
printf '  wasm / node throughput per round, JS engine: %s; median %s (goal >= 3)\n' "${js_ratios[*]}" "$(median "${js_ratios[@]}")"
printf '  wasm / node throughput per round, by hand: %s; median %s (goal >= 3)\n' "${wat_ratios[*]}" "$(median "${wat_ratios[@]}")"
