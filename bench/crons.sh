#!/usr/bin/env bash
# Benchmarks cron firing skew on a release build: CRONS crons of a deployed node function fire
# every second for SECONDS_RUN seconds (the test-only seconds field, crons.seconds_schedules:
# the same scheduler and firing path as 5-field schedules, 60 times more often). Prints the p50,
# p99 and max of (request sent - scheduled time), from the firings nuage records, and of
# (function reached - scheduled time), from what the function itself printed.
# Usage: bench/crons.sh   (CRONS=3 SECONDS_RUN=15 by default: 45 firings; BENCH_BINARY=path:
# see bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

CRONS="${CRONS:-3}"
SECONDS_RUN="${SECONDS_RUN:-15}"
source bench/lib.sh
bench_start "$WORK/data" NUAGE_CRONS__SECONDS_SCHEDULES=true

CRONS="$CRONS" SECONDS_RUN="$SECONDS_RUN" python3 - <<'PY'
import json, os, sqlite3, statistics, time
from client import DATA, archive, call, deployed, namespace, runtime

crons, seconds = int(os.environ["CRONS"]), int(os.environ["SECONDS_RUN"])

# The function prints when it was reached (an instance reaches nothing outside itself: what it
# prints is read back through GET /logs).
code = archive({"handler.js": """
exports.handle = async (event) => {
  console.log(JSON.stringify({ reached: Date.now(), body: event.body }));
  return "ok";
};
"""})
function = deployed(namespace("bench-crons"), code, name="f", runtime=runtime("node"), min_scale=1,
                    max_scale=crons)["id"]
ids = [call("POST", "/crons", {"application_id": function, "schedule": "* * * * * *", "args": {"cron": n}})["id"]
       for n in range(crons)]
time.sleep(seconds)
for cron in ids:
    call("PATCH", f"/crons/{cron}", {"schedule": "0 0 1 1 *"})
time.sleep(2)

db = sqlite3.connect(f"{DATA}/nuage.db")
rows = db.execute("select scheduled_at, started_at, status from cron_firings where started_at is not null").fetchall()
sent = sorted((started - scheduled) / 1000 for scheduled, started, _ in rows)
failed = sum(1 for *_, status in rows if status != "succeeded")

def reached():
    """When the function was reached (Unix seconds), for each call it printed so far."""
    times = []
    for page in range(1, 1000):
        logs = call("GET", f"/logs?application_id={function}&order_by=timestamp_asc&page_size=100&page={page}")["logs"]
        for log in logs:
            try:
                times.append(json.loads(log["message"])["reached"] / 1000)
            except (ValueError, KeyError, TypeError):
                pass  # the build's and the crons' own lines
        if len(logs) < 100:
            return times

# Every call's line, once stored.
deadline = time.time() + 10
while len(arrivals := reached()) < len(rows) - failed and time.time() < deadline:
    time.sleep(0.1)
# The function was reached at `at`; its scheduled time is the whole second before it.
arrived = sorted((at - int(at)) * 1000 for at in arrivals)

def line(label, values):
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    print(f"  {label:38} p50 {statistics.median(values):6.1f} ms   p99 {p99:6.1f} ms   max {max(values):6.1f} ms")

print(f"  {len(rows)} firings of {crons} crons over {seconds} s ({failed} failed), {len(arrivals)} calls reached the function")
line("skew, request sent - scheduled", sent)
line("skew, function reached - scheduled", arrived)
PY
