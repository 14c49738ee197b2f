#!/usr/bin/env bash
# Benchmarks cron firing skew on a release build: CRONS crons of a deployed node function fire
# every second for SECONDS_RUN seconds (the test-only seconds field, crons.seconds_schedules:
# the same scheduler and firing path as 5-field schedules, 60 times more often). Prints the p50,
# p99 and max of (request sent - scheduled time), from the firings nuage records, and of
# (function reached - scheduled time), from what the function itself saw.
# Usage: bench/crons.sh   (CRONS=3 SECONDS_RUN=15 by default: 45 firings)
set -euo pipefail
cd "$(dirname "$0")/.."

CRONS="${CRONS:-3}"
SECONDS_RUN="${SECONDS_RUN:-15}"
cargo build --release --locked -q
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/nuage"
WORK="$(mktemp -d)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

NUAGE_LOG=warn NUAGE_CRONS__SECONDS_SCHEDULES=true NUAGE_ROUTER__LISTEN=127.0.0.1:0 \
  NUAGE_ROUTER__INTERNAL_LISTEN=127.0.0.1:0 \
  "$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 1 300); do [ -f "$WORK/data/endpoints.json" ] && break; sleep 0.1; done

CRONS="$CRONS" SECONDS_RUN="$SECONDS_RUN" DATA="$WORK/data" python3 - <<'PY'
import http.server, io, json, os, sqlite3, statistics, threading, time, urllib.request, zipfile

data = os.environ["DATA"]
crons, seconds = int(os.environ["CRONS"]), int(os.environ["SECONDS_RUN"])
api = json.load(open(f"{data}/endpoints.json"))["api"]
token = json.load(open(f"{data}/credentials.json"))["secret_key"]
base = f"http://{api}/functions/v1alpha2/regions/fr-par"

def call(method, path, body=None):
    request = urllib.request.Request(base + path, method=method, headers={"X-Auth-Token": token},
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request) as response:
        return json.load(response)

# The function reports each call (with the cron it came from) to this collector.
reached = []
class Collector(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reached.append((time.time(), json.loads(body)))
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
threading.Thread(target=collector.serve_forever, daemon=True).start()

buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w") as z:
    z.writestr("handler.js", """
exports.handle = async (event) => {
  await fetch(`http://127.0.0.1:${process.env.COLLECTOR}/`, { method: "POST", body: event.body });
  return "ok";
};
""")
archive = buffer.getvalue()
runtimes = call("GET", "/runtimes")["runtimes"]
node = next(r for r in runtimes if r.startswith("node"))
namespace = call("POST", "/namespaces", {"name": "bench-crons"})["id"]
while call("GET", f"/namespaces/{namespace}")["status"] != "ready":
    time.sleep(0.01)
function = call("POST", "/functions", {"namespace_id": namespace, "name": "f", "runtime": node, "min_scale": 1,
                                       "max_scale": crons, "environment_variables": {"COLLECTOR": str(collector.server_port)}})["id"]
upload = call("GET", f"/functions/{function}/upload-url?content_length={len(archive)}")
urllib.request.urlopen(urllib.request.Request(upload["url"], data=archive, method="PUT",
                                              headers={"Content-Type": "application/octet-stream"})).read()
call("POST", f"/functions/{function}/deploy", {})
while (status := call("GET", f"/functions/{function}")["status"]) not in ("ready", "error"):
    time.sleep(0.05)
assert status == "ready", status
ids = [call("POST", "/crons", {"application_id": function, "schedule": "* * * * * *", "args": {"cron": n}})["id"]
       for n in range(crons)]
time.sleep(seconds)
for cron in ids:
    call("PATCH", f"/crons/{cron}", {"schedule": "0 0 1 1 *"})
time.sleep(2)

db = sqlite3.connect(f"{data}/nuage.db")
rows = db.execute("select scheduled_at, started_at, status from cron_firings where started_at is not null").fetchall()
sent = sorted((started - scheduled) / 1000 for scheduled, started, _ in rows)
failed = sum(1 for *_, status in rows if status != "succeeded")
# The function was reached at `at`; its scheduled time is the whole second before it.
arrived = sorted((at - int(at)) * 1000 for at, _ in reached)

def line(label, values):
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    print(f"  {label:38} p50 {statistics.median(values):6.1f} ms   p99 {p99:6.1f} ms   max {max(values):6.1f} ms")

print(f"  {len(rows)} firings of {crons} crons over {seconds} s ({failed} failed), {len(reached)} calls reached the function")
line("skew, request sent - scheduled", sent)
line("skew, function reached - scheduled", arrived)
PY
