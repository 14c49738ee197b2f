# The bench scripts' common part, sourced by each (from the repository's root): which nuage
# they measure, starting it, and cleaning up after it.
#
#   bench_binary        sets BIN: BENCH_BINARY when set (a binary built elsewhere, an older
#                       commit's say, to compare), else a release build of this checkout (built
#                       first, in CARGO_TARGET_DIR or ./target).
#   bench_start DIR [NAME=value...] [-- serve options...]
#                       starts `nuage serve` (BIN, set by bench_binary on the first start) on
#                       loopback (every listener on a port of its own choosing) with DIR as its
#                       data dir and the NUAGE_* settings given, and waits for its
#                       endpoints.json; sets PID, and exports DATA=DIR for bench/client.py (the
#                       Python client every script uses).
#   bench_stop          stops it with SIGTERM and waits for it.
#   bench_needs TOOL... exits, saying how to install it, when a TOOL is not installed.
#
#   measure THREADS CONNECTIONS URL [HEADER]
#                       runs wrk for DURATION seconds (through `$WRAP`, if set) and prints
#                       "<req/s> <p50 in us> <non-2xx> <requests>".
#   median VALUES...    prints their median.
#
# RUNS, how many times a script repeats what it times (20 by default), is exported for
# bench/client.py (as RUNS there).
#
# WORK is a temporary folder, removed on exit with nuage stopped first; a script that starts
# more (nginx, say) names it in EXTRA_PIDS to have it stopped too.

export RUNS="${RUNS:-20}"
WORK="$(mktemp -d)"
PID=""
BIN=""
EXTRA_PIDS=()
export PYTHONPATH="$PWD/bench${PYTHONPATH:+:$PYTHONPATH}"

bench_cleanup() {
  if [ ${#EXTRA_PIDS[@]} -gt 0 ]; then kill "${EXTRA_PIDS[@]}" 2>/dev/null || true; fi
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

bench_binary() {
  if [ -z "${BENCH_BINARY:-}" ]; then cargo build --release --locked -q; fi
  BIN="${BENCH_BINARY:-${CARGO_TARGET_DIR:-$PWD/target}/release/nuage}"
}

bench_needs() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install $tool" >&2; exit 1; }
  done
}

bench_start() {
  local dir="$1" settings=() options=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do settings+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  options=("$@")
  [ -n "${BIN:-}" ] || bench_binary
  env NUAGE_LOG=warn NUAGE_ROUTER__LISTEN=127.0.0.1:0 NUAGE_ROUTER__INTERNAL_LISTEN=127.0.0.1:0 "${settings[@]}" \
    "$BIN" serve --data-dir "$dir" --listen 127.0.0.1:0 "${options[@]}" >"$dir.out" 2>"$dir.err" &
  PID=$!
  for _ in $(seq 1 300); do [ -f "$dir/endpoints.json" ] && break; sleep 0.1; done
  if [ ! -f "$dir/endpoints.json" ]; then
    echo "nuage did not start:" >&2
    cat "$dir.err" >&2
    exit 1
  fi
  export DATA="$dir"
}

bench_stop() {
  kill -TERM "$PID"
  wait "$PID"
  local status=$?
  PID=""
  return $status
}

measure() {
  ${WRAP:-} wrk -t"$1" -c"$2" -d"${DURATION}s" --latency "$3" ${4:+-H "$4"} >"$WORK/wrk" 2>&1
  awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = us($2) }
    / Non-2xx/ { bad = $NF }
    / requests in / { requests = $1 }
    END { printf "%s %s %s %s\n", rps, p50, bad + 0, requests + 0 }' "$WORK/wrk"
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
