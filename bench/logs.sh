#!/usr/bin/env bash
# Benchmarks logs on a release build, through the real path (instance stdout -> runner -> logs
# service -> database -> GET /logs):
# - ingestion: a function prints LINES lines as fast as node can (the per-instance rate limit
#   and the per-application line cap raised for the run); lines per second from the first line
#   stored to the last (nuage_logs_lines_ingested_total on /metrics, sampled every 50 ms), and
#   /logs total_count at the end;
# - delay: CALLS calls, each printing one line stamped with the time it was printed; the time
#   until a `GET /logs?follow=true` stream opened beforehand delivers it, p50 / p99 / max.
# Usage: bench/logs.sh   (LINES=100000 CALLS=200 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

LINES="${LINES:-100000}"
CALLS="${CALLS:-200}"
cargo build --release --locked -q
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/nuage"
WORK="$(mktemp -d)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# /metrics is served only with the operator's token.
METRICS_TOKEN="metrics-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
NUAGE_LOG=warn NUAGE_ROUTER__LISTEN=127.0.0.1:0 NUAGE_ROUTER__INTERNAL_LISTEN=127.0.0.1:0 \
  NUAGE_GATEWAY__METRICS_TOKEN="$METRICS_TOKEN" \
  NUAGE_RUNNER__LOG_LINES_PER_SECOND=10000000 NUAGE_LOGS__MAX_LINES_PER_APPLICATION=100000000 \
  "$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 1 300); do [ -f "$WORK/data/endpoints.json" ] && break; sleep 0.1; done

LINES="$LINES" CALLS="$CALLS" DATA="$WORK/data" METRICS_TOKEN="$METRICS_TOKEN" python3 - <<'PY'
import io, json, os, statistics, threading, time, urllib.request, zipfile

data = os.environ["DATA"]
lines, calls = int(os.environ["LINES"]), int(os.environ["CALLS"])
api = json.load(open(f"{data}/endpoints.json"))["api"]
token = json.load(open(f"{data}/credentials.json"))["secret_key"]
base = f"http://{api}/functions/v1alpha2/regions/fr-par"

def call(method, path, body=None):
    request = urllib.request.Request(base + path, method=method, headers={"X-Auth-Token": token},
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request) as response:
        return json.load(response)

handler = """
exports.handle = async (event) => {
  const q = event.queryStringParameters || {};
  if (event.path === "/flood") {
    const line = "x".repeat(80);
    let left = Number(q.n);
    await new Promise((done) => {
      (function burst() {
        for (let i = 0; i < 1000 && left > 0; i++, left--) console.log(line);
        if (left > 0) setImmediate(burst); else done();
      })();
    });
  }
  if (event.path === "/mark") console.log(`mark ${performance.timeOrigin + performance.now()}`);
  return "ok";
};
"""
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as z:
    z.writestr("handler.js", handler)
archive = buffer.getvalue()
runtimes = call("GET", "/runtimes")["runtimes"]
node = next(r for r in runtimes if r.startswith("node"))

def deployed(name):
    namespace = call("POST", "/namespaces", {"name": f"bench-logs-{name}"})["id"]
    while call("GET", f"/namespaces/{namespace}")["status"] != "ready":
        time.sleep(0.01)
    function = call("POST", "/functions", {"namespace_id": namespace, "name": "f", "runtime": node,
                                           "timeout": "300s"})["id"]
    upload = call("GET", f"/functions/{function}/upload-url?content_length={len(archive)}")
    urllib.request.urlopen(urllib.request.Request(upload["url"], data=archive, method="PUT",
                                                  headers={"Content-Type": "application/octet-stream"})).read()
    call("POST", f"/functions/{function}/deploy", {})
    while (found := call("GET", f"/functions/{function}"))["status"] not in ("ready", "error"):
        time.sleep(0.05)
    assert found["status"] == "ready", found
    return function, found["endpoint"]

def stored(function):
    return call("GET", f"/logs?application_id={function}&page_size=1")["total_count"]

def figures():
    """Lines stored and lines dropped so far (/metrics)."""
    found = {}
    request = urllib.request.Request(f"http://{api}/metrics",
                                     headers={"Authorization": f"Bearer {os.environ['METRICS_TOKEN']}"})
    with urllib.request.urlopen(request) as response:
        for line in response.read().decode().splitlines():
            for name in ("ingested", "dropped"):
                if line.startswith(f"nuage_logs_lines_{name}_total "):
                    found[name] = int(float(line.split()[1]))
    return found.get("ingested", 0), found.get("dropped", 0)

# Ingestion: from the first line stored to the last; lines the pipeline could not take as fast
# as node printed them are dropped (by design: output never waits) and reported.
function, endpoint = deployed("ingest")
stored0, dropped0 = figures()
started = time.time()
threading.Thread(target=lambda: urllib.request.urlopen(f"{endpoint}/flood?n={lines}").read(), daemon=True).start()
first = last = None
count = 0
while time.time() - started < 120:
    stored_now, dropped_now = figures()
    now = time.time()
    if stored_now - stored0 > count:
        count = stored_now - stored0
        if first is None:
            first = (now, count)
        last = now
    if count + dropped_now - dropped0 >= lines:
        break
    time.sleep(0.05)
dropped = figures()[1] - dropped0
elapsed = last - first[0]
rate = (count - first[1]) / elapsed if elapsed > 0 else float("nan")
print(f"  ingestion: {count:,} of {lines:,} lines stored at {rate:,.0f} lines/s (first to last stored, "
      f"{elapsed:.2f} s), {dropped:,} dropped; /logs total_count {stored(function):,}")

# Delay: printed -> delivered by a follow stream.
function, endpoint = deployed("delay")
arrived = {}
request = urllib.request.Request(f"{base}/logs?application_id={function}&follow=true", headers={"X-Auth-Token": token})
stream = urllib.request.urlopen(request)
def read():
    for raw in stream:
        message = json.loads(raw)["message"]
        if message.startswith("mark "):
            arrived[float(message.split()[1])] = time.time() * 1000
threading.Thread(target=read, daemon=True).start()
time.sleep(0.2)
for _ in range(calls):
    urllib.request.urlopen(f"{endpoint}/mark").read()
    time.sleep(0.02)
deadline = time.time() + 10
while len(arrived) < calls and time.time() < deadline:
    time.sleep(0.05)
delays = sorted(at - printed for printed, at in arrived.items())
p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
print(f"  delay printed -> /logs (follow): p50 {statistics.median(delays):.1f} ms   p99 {p99:.1f} ms   "
      f"max {max(delays):.1f} ms   ({len(delays)} of {calls} lines)")
PY
