#!/usr/bin/env bash
# Benchmarks the router on a release build, side by side in one run on loopback:
#   - a deployed node function's instance hit directly (its own port, from inside its network
#     namespace: instances have one each, and nothing outside it reaches them),
#   - nginx in front of the same instances (keepalive to the upstream), in the first
#     instance's namespace: it fronts the instances that share that namespace (all of them
#     where instances share the host's network, only that one where each has its own),
#   - the router in front of them (the function's endpoint),
# and prints warm p50 latency at 1 connection (the router's added latency over direct), warm
# throughput at 32 connections (router over nginx, the CPU each spends per request, and the CPU
# the instances spend per request behind each), and cold-start p50 over the time to spawn the
# same node with a bare HTTP server and get its first answer.
# Needs wrk and nginx (apt-get install wrk nginx). Usage: bench/invoke.sh
#   ROUNDS=7 (alternating rounds of each comparison), ROUND_SECONDS=2 (latency runs),
#   DURATION=4 (throughput runs),
#   RUNS=20 (cold starts), INSTANCES=4 (warm instances), MEMORY_LIMIT=256 (of each function:
#   its CPU quota follows, 140 thousandths of a core at 256 MB; 2048 gives more than this
#   machine has, to see the router without the instances' quota),
#   PERF_OUT=file (perf record of nuage during the router's first 32-connection run),
#   BENCH_BINARY=path (a binary built elsewhere, to compare: see bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-4}"
ROUNDS="${ROUNDS:-7}"
ROUND_SECONDS="${ROUND_SECONDS:-2}"
INSTANCES="${INSTANCES:-4}"
MEMORY_LIMIT="${MEMORY_LIMIT:-256}"
source bench/lib.sh
bench_needs wrk nginx
bench_start "$WORK/data" NUAGE_ROUTER__IDLE_SECONDS=1

# Deploys a warm function (INSTANCES instances kept) and a cold one (scaled to zero when idle);
# writes the warm endpoint, its instances' ports and the cold endpoint.
INSTANCES="$INSTANCES" MEMORY_LIMIT="$MEMORY_LIMIT" python3 - >"$WORK/setup" <<'PY'
import os, time, urllib.request
from client import archive, call, deployed, namespace, runtime

code = archive({"handler.js": "exports.handle = () => 'hello';\n"})
node = runtime("node")
namespace_id = namespace("bench-invoke")
found = {}
for name, scale, privacy in (("warm", int(os.environ["INSTANCES"]), "public"), ("cold", 0, "public"),
                             ("public", 1, "public"), ("private", 1, "private")):
    found[name] = deployed(namespace_id, code, name=name, runtime=node, min_scale=scale, max_scale=max(scale, 1),
                           privacy=privacy, memory_limit=int(os.environ["MEMORY_LIMIT"]))

def ports(application_id):
    """`pid:port` of each instance of an application (one process of it, in its network
    namespace, and the port it was given), from their environment."""
    result = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            network = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if f"SCW_APPLICATION_ID={application_id}".encode() in environ:
            for port in [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"PORT=")]:
                result.setdefault((network, port), f"{pid}:{port}")
    return sorted(result.values())

warm = found["warm"]
urllib.request.urlopen(warm["endpoint"]).read()
deadline = time.time() + 30
while len(ports(warm["id"])) < int(os.environ["INSTANCES"]) and time.time() < deadline:
    time.sleep(0.1)
print(warm["endpoint"])
print(",".join(ports(warm["id"])))
print(found["cold"]["endpoint"])
print(found["cold"]["id"])
print(found["public"]["endpoint"])
print(found["private"]["endpoint"])
print(call("GET", f"/jwt/issue?function_id={found['private']['id']}")["token"])
PY
WARM="$(sed -n 1p "$WORK/setup")"
PORTS="$(sed -n 2p "$WORK/setup")"
COLD="$(sed -n 3p "$WORK/setup")"
COLD_ID="$(sed -n 4p "$WORK/setup")"
PUBLIC="$(sed -n 5p "$WORK/setup")"
PRIVATE="$(sed -n 6p "$WORK/setup")"
JWT="$(sed -n 7p "$WORK/setup")"
FIRST="${PORTS%%,*}"
NS_PID="${FIRST%%:*}"
DIRECT="http://127.0.0.1:${FIRST##*:}/"
# Direct calls and nginx run in the first instance's network namespace.
IN_NS=(nsenter "--net=/proc/$NS_PID/ns/net")
UPSTREAMS=()
for instance in ${PORTS//,/ }; do
  [ "$(readlink "/proc/${instance%%:*}/ns/net")" = "$(readlink "/proc/$NS_PID/ns/net")" ] && UPSTREAMS+=("${instance##*:}")
done

# nginx in front of the same instances, keeping connections to them open.
NGINX_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/nginx"
{
  echo "worker_processes 1; pid $WORK/nginx/pid; error_log $WORK/nginx/error.log; daemon off;"
  echo "events { worker_connections 1024; }"
  echo "http { access_log off;"
  echo "  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;"
  echo "  fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;"
  echo "  upstream fn {"
  for port in "${UPSTREAMS[@]}"; do echo "    server 127.0.0.1:$port;"; done
  echo "    keepalive 64; }"
  echo "  server { listen 127.0.0.1:$NGINX_PORT;"
  echo "    location / { proxy_pass http://fn; proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }"
} >"$WORK/nginx/nginx.conf"
"${IN_NS[@]}" nginx -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
EXTRA_PIDS+=("$NGINX_PID")
for _ in $(seq 1 50); do "${IN_NS[@]}" curl -sf "http://127.0.0.1:$NGINX_PORT/" >/dev/null && break; sleep 0.1; done
echo "nginx fronts ${#UPSTREAMS[@]} of the ${INSTANCES} warm instances (those in the first one's network namespace)"

# Prints the CPU time (user + system, in clock ticks) the processes given have used so far.
ticks() { for pid in "$@"; do cat "/proc/$pid/stat" 2>/dev/null; done | awk '{ s += $14 + $15 } END { print s + 0 }'; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
NGINX_WORKER="$(pgrep -P "$NGINX_PID" | head -1)"
# The warm instances' processes (their sandboxes' included), found by the PORT they were given:
# both proxies send to them, and what they spend per request differs (see the throughput part).
INSTANCE_PIDS=()
for instance in ${PORTS//,/ }; do INSTANCE_PIDS+=("${instance%%:*}"); done

# This VM's latency drifts by tens of microseconds from one second to the next, so direct,
# nginx and the router take turns in ROUNDS short runs, and the added latency is the median
# over rounds of (router p50 - direct p50) measured seconds apart rather than minutes apart.
echo "== warm, 1 connection (p50 latency; $ROUNDS rounds of ${ROUND_SECONDS}s, medians shown)"
added=()
nginx_added=()
router_p50s=()
for round in $(seq 1 "$ROUNDS"); do
  read -r _ direct_p50 _ < <(WRAP="${IN_NS[*]}" DURATION="$ROUND_SECONDS" measure 1 1 "$DIRECT")
  read -r _ nginx_p50 _ < <(WRAP="${IN_NS[*]}" DURATION="$ROUND_SECONDS" measure 1 1 "http://127.0.0.1:$NGINX_PORT/")
  read -r _ router_p50 _ < <(DURATION="$ROUND_SECONDS" measure 1 1 "$WARM")
  printf '  round %2d: direct p50 %6.0f us  nginx %6.0f us  router %6.0f us\n' "$round" "$direct_p50" "$nginx_p50" "$router_p50"
  added+=("$(awk -v a="$router_p50" -v b="$direct_p50" 'BEGIN { print a - b }')")
  router_p50s+=("$router_p50")
  nginx_added+=("$(awk -v a="$nginx_p50" -v b="$direct_p50" 'BEGIN { print a - b }')")
done
router_added="$(median "${added[@]}")"
nginx_added_median="$(median "${nginx_added[@]}")"
printf '  added over direct: router %s us (rounds: %s), nginx %s us\n' "$router_added" "${added[*]}" "$nginx_added_median"
echo "== warm, 32 connections (throughput; $ROUNDS rounds of ${DURATION}s each, alternating)"
ratios=()
router_rps=()
router_cpu=()
nginx_cpu=()
router_instances_cpu=()
nginx_instances_cpu=()
# Prints the CPU per request (in us) of the processes given since `ticks` printed `$1`, over `$2` requests.
per_request() { local since="$1" requests="$2"; shift 2; echo $(( ($(ticks "$@") - since) * TICK_US / (requests > 0 ? requests : 1) )); }
for round in $(seq 1 "$ROUNDS"); do
  before="$(ticks "$NGINX_WORKER")"
  instances_before="$(ticks "${INSTANCE_PIDS[@]}")"
  read -r nginx32_rps nginx32_p50 nginx32_bad nginx32_requests < <(WRAP="${IN_NS[*]}" measure 2 32 "http://127.0.0.1:$NGINX_PORT/")
  nginx_cpu+=("$(per_request "$before" "$nginx32_requests" "$NGINX_WORKER")")
  nginx_instances_cpu+=("$(per_request "$instances_before" "$nginx32_requests" "${INSTANCE_PIDS[@]}")")
  # PERF_OUT=file records where nuage spends its time during the first round (perf record -g).
  PERF_PID=""
  if [ -n "${PERF_OUT:-}" ] && [ "$round" = 1 ]; then
    perf record -q -g -p "$PID" -o "$PERF_OUT" -- sleep "$DURATION" 2>/dev/null &
    PERF_PID=$!
  fi
  before="$(ticks "$PID")"
  instances_before="$(ticks "${INSTANCE_PIDS[@]}")"
  read -r router32_rps router32_p50 router32_bad router32_requests < <(measure 2 32 "$WARM")
  router_cpu+=("$(per_request "$before" "$router32_requests" "$PID")")
  router_instances_cpu+=("$(per_request "$instances_before" "$router32_requests" "${INSTANCE_PIDS[@]}")")
  [ -n "$PERF_PID" ] && wait "$PERF_PID" 2>/dev/null || true
  printf '  round %2d: nginx %8.0f req/s (p50 %5.0f us, non-2xx %s, %s us CPU/req)  router %8.0f req/s (p50 %5.0f us, non-2xx %s, %s us CPU/req)\n' \
    "$round" "$nginx32_rps" "$nginx32_p50" "$nginx32_bad" "${nginx_cpu[-1]}" "$router32_rps" "$router32_p50" "$router32_bad" "${router_cpu[-1]}"
  ratios+=("$(awk -v r="$router32_rps" -v n="$nginx32_rps" 'BEGIN { printf "%.3f", r / n }')")
  router_rps+=("$router32_rps")
done
throughput_ratio="$(median "${ratios[@]}")"
printf '  router / nginx per round: %s\n' "${ratios[*]}"
printf '  CPU per request (user + system, median over rounds): router %s us, nginx %s us\n' \
  "$(median "${router_cpu[@]}")" "$(median "${nginx_cpu[@]}")"
# Behind the router an instance has one request at a time, as a function must; behind nginx
# it has several connections at once and handles more than one per wake-up.
printf '  CPU per request of the instances (%s processes, median over rounds): behind the router %s us, behind nginx %s us\n' \
  "${#INSTANCE_PIDS[@]}" "$(median "${router_instances_cpu[@]}")" "$(median "${nginx_instances_cpu[@]}")"

echo "== private call (token checked on every request), 1 connection, $ROUNDS rounds of ${ROUND_SECONDS}s"
private_added=()
for round in $(seq 1 "$ROUNDS"); do
  read -r _ public_p50 public_bad _ < <(DURATION="$ROUND_SECONDS" measure 1 1 "$PUBLIC")
  read -r _ private_p50 private_bad _ < <(DURATION="$ROUND_SECONDS" measure 1 1 "$PRIVATE" "X-Auth-Token: $JWT")
  printf '  round %2d: public p50 %6.0f us  private %6.0f us  non-2xx %s/%s\n' "$round" "$public_p50" "$private_p50" "$public_bad" "$private_bad"
  private_added+=("$(awk -v a="$private_p50" -v b="$public_p50" 'BEGIN { print a - b }')")
done
private_over_public="$(median "${private_added[@]}")"

echo "== cold starts ($RUNS each)"
COLD="$COLD" COLD_ID="$COLD_ID" python3 - <<'PY'
import os, socket, statistics, subprocess, time, urllib.request
from client import RUNS, alive

cold = []
for _ in range(RUNS):
    while alive(os.environ["COLD_ID"]):
        time.sleep(0.05)
    started = time.perf_counter()
    urllib.request.urlopen(os.environ["COLD"]).read()
    cold.append(time.perf_counter() - started)

# The floor: spawn the same node with a bare HTTP server and wait for its first answer.
node = subprocess.run(["node", "-e", "process.stdout.write(process.execPath)"], capture_output=True, text=True).stdout
bare = []
for _ in range(RUNS):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    started = time.perf_counter()
    process = subprocess.Popen([node, "-e", f"require('http').createServer((q, r) => r.end('hi')).listen({port})"])
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/").read()
            break
        except OSError:
            time.sleep(0.0005)
    bare.append(time.perf_counter() - started)
    process.kill(); process.wait()

p50_cold, p50_bare = statistics.median(cold) * 1000, statistics.median(bare) * 1000
print(f"  router cold start p50 {p50_cold:.1f} ms (max {max(cold) * 1000:.1f})")
print(f"  bare node server p50 {p50_bare:.1f} ms (max {max(bare) * 1000:.1f})")
print(f"  ratio {p50_cold / p50_bare:.2f} (target <= 1.3)")
PY

echo "== summary"
printf '  router alone (medians over rounds): p50 %s us at 1 connection, %s req/s at 32 connections\n' \
  "$(median "${router_p50s[@]}")" "$(median "${router_rps[@]}")"
awk -v added="$router_added" -v ratio="$throughput_ratio" -v private="$private_over_public" 'BEGIN {
  printf "  latency added by the router (median over rounds of p50 - direct p50): %.0f us (target <= 100)\n", added
  printf "  router / nginx throughput at 32 connections (median over rounds): %.2f (target >= 0.8)\n", ratio
  printf "  private call p50 over a public one (median over rounds): %.0f us (target <= 30)\n", private
}'
