#!/usr/bin/env bash
# Benchmarks a release build of nuage: throughput and p50/p99 latency of authenticated
# `GET /namespaces/{id}` and `GET /namespaces?page_size=20` on SQLite and PostgreSQL, p99 at a
# paced ~1,000 requests per second, `GET /functions/{id}/upload-url` (presigned locally), and
# resident memory idle and after load.
# Needs wrk (apt-get install wrk). Usage: bench/api.sh [sqlite|postgres]...
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(sqlite postgres)

source bench/lib.sh
bench_needs wrk

rss_mib() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$1/status"; }

# Prints "label  N req/s  p50 X  p99 Y" from wrk --latency output on stdin.
summarise() {
  awk -v label="$1" '
    /Requests\/sec/ {rps = $2}
    $1 == "50%" {p50 = $2}
    $1 == "99%" {p99 = $2}
    /Non-2xx/ {bad = $NF}
    END {printf "  %-44s %10s req/s   p50 %-9s p99 %-9s%s\n", label, rps, p50, p99, (bad ? "  NON-2XX: " bad : "")}'
}

run_case() {
  local engine="$1" url="" database=""
  local dir="$WORK/$engine"
  if [ "$engine" = postgres ]; then
    database="nuage_bench_$$"
    psql "$PG_URL" -qc "create database $database"
    url="${PG_URL%/*}/$database"
  fi
  bench_start "$dir" ${url:+-- --database-url "$url"}
  # 20 namespaces (their key pairs are made in the background), and a function in the first,
  # with the pauses this script always had, so that its figures compare with earlier runs'.
  local token base id function_id
  read -r token base id function_id < <(python3 - <<'PY'
import time
from client import BASE, TOKEN, call

ids = [call("POST", "/namespaces", {"name": f"bench-{i:02}"})["id"] for i in range(1, 21)]
time.sleep(1)
function = call("POST", "/functions", {"namespace_id": ids[0], "name": "bench",
                                       "runtime": call("GET", "/runtimes")["runtimes"][0]})
print(TOKEN, BASE, ids[0], function["id"])
PY
)
  sleep 2
  echo "$engine (release build, wrk on the same 2-core machine, ${DURATION}s per run)"
  echo "  idle resident memory: $(rss_mib "$PID")"
  local auth=(-H "X-Auth-Token: $token")
  wrk -t2 -c32 -d"${DURATION}s" --latency "${auth[@]}" "$base/namespaces/$id" | summarise "GET /namespaces/{id}, 32 connections"
  wrk -t2 -c32 -d"${DURATION}s" --latency "${auth[@]}" "$base/namespaces?page_size=20" | summarise "GET /namespaces?page_size=20, 32 connections"
  PAUSE_MS=15 wrk -t2 -c16 -d"${DURATION}s" --latency -s bench/paced.lua "${auth[@]}" "$base/namespaces/$id" | summarise "GET /namespaces/{id}, paced ~1000 req/s"
  PAUSE_MS=15 wrk -t2 -c16 -d"${DURATION}s" --latency -s bench/paced.lua "${auth[@]}" "$base/namespaces?page_size=20" | summarise "GET /namespaces?page_size=20, paced ~1000 req/s"
  # Signed locally: no round trip to the object store.
  wrk -t2 -c32 -d"${DURATION}s" --latency "${auth[@]}" "$base/functions/$function_id/upload-url?content_length=1048576" | summarise "GET /functions/{id}/upload-url, 32 connections"
  echo "  resident memory after load: $(rss_mib "$PID")"
  bench_stop && echo "  SIGTERM: clean exit (0)" || echo "  SIGTERM: exit code $?"
  if [ -n "$database" ]; then psql "$PG_URL" -qc "drop database $database with (force)"; fi
}

for engine in "${CASES[@]}"; do run_case "$engine"; done
