#!/usr/bin/env bash
# Benchmarks what one tenant's busy loops cost another tenant's function: a node function's
# p50 at 1 connection alone, then while BUSY instances of another tenant's function spin in
# busy loops (each capped at its cpu_limit: 140 thousandths of a core for 256 MB). Target:
# the quiet function's p50 within 1.5x of its p50 alone.
# Needs wrk. Usage: bench/neighbours.sh
#   BUSY=8 (busy instances), SECONDS_BUSY=20 (each busy call), BENCH_BINARY=path (a binary built
#   elsewhere, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."

BUSY="${BUSY:-8}"
SECONDS_BUSY="${SECONDS_BUSY:-20}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [ -z "${BENCH_BINARY:-}" ]; then cargo build --release --locked -q; fi
BIN="${BENCH_BINARY:-${CARGO_TARGET_DIR:-$PWD/target}/release/nuage}"
WORK="$(mktemp -d)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

NUAGE_LOG=warn NUAGE_ROUTER__LISTEN=127.0.0.1:0 NUAGE_ROUTER__INTERNAL_LISTEN=127.0.0.1:0 \
  "$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 1 300); do [ -f "$WORK/data/endpoints.json" ] && break; sleep 0.1; done

# Deploys the quiet function (one warm instance) and the busy one (up to BUSY instances, each
# call a busy loop of SECONDS_BUSY); prints both endpoints.
BUSY="$BUSY" SECONDS_BUSY="$SECONDS_BUSY" DATA="$WORK/data" python3 - >"$WORK/setup" <<'PY'
import io, json, os, time, urllib.request, zipfile

data = os.environ["DATA"]
endpoints = json.load(open(f"{data}/endpoints.json"))
token = json.load(open(f"{data}/credentials.json"))["secret_key"]
base = f"http://{endpoints['api']}/functions/v1alpha2/regions/fr-par"

def call(method, path, body=None, raw=None, url=None):
    request = urllib.request.Request(url or base + path, method=method, headers={"X-Auth-Token": token},
                                     data=raw if raw is not None else None if body is None else json.dumps(body).encode())
    if raw is not None:
        request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None

runtimes = call("GET", "/runtimes")["runtimes"]
node = next(r for r in runtimes if r.startswith("node"))
busy_loop = f"exports.handle = () => {{ const end = Date.now() + {int(os.environ['SECONDS_BUSY']) * 1000}; while (Date.now() < end) {{}} return 'done'; }};\n"
found = {}
for name, code, scale in (("quiet", "exports.handle = () => 'hello';\n", (1, 1)),
                          ("busy", busy_loop, (0, int(os.environ["BUSY"])))):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("handler.js", code)
    namespace = call("POST", "/namespaces", {"name": f"bench-{name}"})["id"]
    while call("GET", f"/namespaces/{namespace}")["status"] != "ready":
        time.sleep(0.01)
    function = call("POST", "/functions", {"namespace_id": namespace, "name": name, "runtime": node,
                                           "min_scale": scale[0], "max_scale": scale[1], "memory_limit": 256})
    upload = call("GET", f"/functions/{function['id']}/upload-url?content_length={len(archive.getvalue())}")
    call("PUT", None, raw=archive.getvalue(), url=upload["url"])
    call("POST", f"/functions/{function['id']}/deploy", {})
    while (state := call("GET", f"/functions/{function['id']}"))["status"] == "pending":
        time.sleep(0.05)
    assert state["status"] == "ready", state
    found[name] = function["endpoint"]
print(found["quiet"])
print(found["busy"])
PY
QUIET="$(sed -n 1p "$WORK/setup")"
BUSY_ENDPOINT="$(sed -n 2p "$WORK/setup")"

# Prints the p50 in microseconds of a 5 s run at 1 connection.
p50() {
  wrk -t1 -c1 -d5s --latency "$QUIET" | awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    /^ +50%/ { print us($2) }'
}
alone="$(p50)"
CALLS=()
for _ in $(seq 1 "$BUSY"); do
  curl -s -o /dev/null -m "$((SECONDS_BUSY + 30))" "$BUSY_ENDPOINT" &
  CALLS+=($!)
done
sleep 3
loaded="$(p50)"
wait "${CALLS[@]}"
echo "== the quiet function's p50 at 1 connection, alone and beside $BUSY busy instances of another tenant"
awk -v a="$alone" -v l="$loaded" 'BEGIN {
  printf "  alone %.0f us, beside busy loops %.0f us: %.2fx (target <= 1.5)\n", a, l, l / a
}'
