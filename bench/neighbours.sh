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
source bench/lib.sh
bench_needs wrk
bench_start "$WORK/data"

# Deploys the quiet function (one warm instance) and the busy one (up to BUSY instances, each
# call a busy loop of SECONDS_BUSY); prints both endpoints.
BUSY="$BUSY" SECONDS_BUSY="$SECONDS_BUSY" python3 - >"$WORK/setup" <<'PY'
import os
from client import archive, deployed, namespace, runtime

node = runtime("node")
busy_loop = f"exports.handle = () => {{ const end = Date.now() + {int(os.environ['SECONDS_BUSY']) * 1000}; while (Date.now() < end) {{}} return 'done'; }};\n"
found = {}
for name, code, scale in (("quiet", "exports.handle = () => 'hello';\n", (1, 1)),
                          ("busy", busy_loop, (0, int(os.environ["BUSY"])))):
    function = deployed(namespace(f"bench-{name}"), archive({"handler.js": code}), name=name, runtime=node,
                        min_scale=scale[0], max_scale=scale[1], memory_limit=256)
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
