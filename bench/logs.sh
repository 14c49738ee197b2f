#!/usr/bin/env bash
# Benchmarks logs on a release build, through the real path (instance stdout -> runner -> logs
# service -> database -> GET /logs):
# - ingestion: a function prints LINES lines as fast as node can (the per-instance rate limit
#   and the per-application line cap raised for the run); lines per second from the first line
#   stored to the last (nuage_logs_lines_ingested_total on /metrics, sampled every 50 ms), and
#   /logs total_count at the end;
# - delay: CALLS calls, each printing one line stamped with the time it was printed; the time
#   until a `GET /logs?follow=true` stream opened beforehand delivers it, p50 / p99 / max.
# Usage: bench/logs.sh   (LINES=100000 CALLS=200 by default; BENCH_BINARY=path: see bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

LINES="${LINES:-100000}"
CALLS="${CALLS:-200}"
source bench/lib.sh
# /metrics is served only with the operator's token.
METRICS_TOKEN="metrics-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
bench_start "$WORK/data" NUAGE_GATEWAY__METRICS_TOKEN="$METRICS_TOKEN" \
  NUAGE_RUNNER__LOG_LINES_PER_SECOND=10000000 NUAGE_LOGS__MAX_LINES_PER_APPLICATION=100000000

LINES="$LINES" CALLS="$CALLS" METRICS_TOKEN="$METRICS_TOKEN" python3 - <<'PY'
import json, os, statistics, threading, time, urllib.request
from client import API, BASE, TOKEN, archive, call, deployed, namespace, runtime

lines, calls = int(os.environ["LINES"]), int(os.environ["CALLS"])

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
code = archive({"handler.js": handler})
node = runtime("node")

def printer(name):
    found = deployed(namespace(f"bench-logs-{name}"), code, name="f", runtime=node, timeout="300s")
    return found["id"], found["endpoint"]

def stored(function):
    return call("GET", f"/logs?application_id={function}&page_size=1")["total_count"]

def figures():
    """Lines stored and lines dropped so far (/metrics)."""
    found = {}
    request = urllib.request.Request(f"http://{API}/metrics",
                                     headers={"Authorization": f"Bearer {os.environ['METRICS_TOKEN']}"})
    with urllib.request.urlopen(request) as response:
        for line in response.read().decode().splitlines():
            for name in ("ingested", "dropped"):
                if line.startswith(f"nuage_logs_lines_{name}_total "):
                    found[name] = int(float(line.split()[1]))
    return found.get("ingested", 0), found.get("dropped", 0)

# Ingestion: from the first line stored to the last; lines the pipeline could not take as fast
# as node printed them are dropped (by design: output never waits) and reported.
function, endpoint = printer("ingest")
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
function, endpoint = printer("delay")
arrived = {}
request = urllib.request.Request(f"{BASE}/logs?application_id={function}&follow=true", headers={"X-Auth-Token": TOKEN})
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
