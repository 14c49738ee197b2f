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

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked -q
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/nuage"
WORK="$(mktemp -d)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }
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
  NUAGE_LOG=warn "$BIN" serve --data-dir "$dir" --listen 127.0.0.1:0 ${url:+--database-url "$url"} \
    >"$WORK/$engine.out" 2>"$WORK/$engine.err" &
  PID=$!
  for _ in $(seq 1 300); do [ -f "$dir/endpoints.json" ] && break; sleep 0.1; done
  if [ ! -f "$dir/endpoints.json" ]; then
    echo "nuage did not start:" >&2; cat "$WORK/$engine.err" >&2; exit 1
  fi
  local api token base id
  api="$(json "$dir/endpoints.json" '["api"]')"
  token="$(json "$dir/credentials.json" '["secret_key"]')"
  base="http://$api/functions/v1alpha2/regions/fr-par"
  for i in $(seq -w 1 20); do
    curl -sf -H "X-Auth-Token: $token" -d "{\"name\": \"bench-$i\"}" "$base/namespaces" >/dev/null
  done
  id="$(curl -sf -H "X-Auth-Token: $token" "$base/namespaces?name=bench-01" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["namespaces"][0]["id"])')"
  sleep 1
  local function_id
  function_id="$(curl -sf -H "X-Auth-Token: $token" \
    -d "{\"namespace_id\": \"$id\", \"name\": \"bench\", \"runtime\": \"$(curl -sf -H "X-Auth-Token: $token" "$base/runtimes" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["runtimes"][0])')\"}" "$base/functions" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
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
  kill -TERM "$PID"
  wait "$PID" && echo "  SIGTERM: clean exit (0)" || echo "  SIGTERM: exit code $?"
  PID=""
  if [ -n "$database" ]; then psql "$PG_URL" -qc "drop database $database with (force)"; fi
}

for engine in "${CASES[@]}"; do run_case "$engine"; done
