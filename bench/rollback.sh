#!/usr/bin/env bash
# Benchmarks rollback on a release build: the time from POST /functions/{id}/rollback to the
# first answer from the deployment rolled back to, for a node function deployed twice (each
# deployment answers its own word), rolling back and forth RUNS times while a client loop
# calls it. Prints p50 and max, and the requests that failed meanwhile (should be 0).
# Usage: bench/rollback.sh   (RUNS=20 by default; BENCH_BINARY=path: see bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
bench_start "$WORK/data"

python3 - <<'PY'
import statistics, threading, time, urllib.error, urllib.request
from client import RUNS, archive, call, deploy, deployed, namespace, runtime, upload

handler = lambda word: {"handler.js": f"exports.handle = () => '{word}';\n"}
function = deployed(namespace("bench-rollback"), archive(handler("first")), name="f", runtime=runtime("node"))
upload(function["id"], archive(handler("second")))
deploy(function["id"], poll=0.01)
deployments = call("GET", f"/functions/{function['id']}/deployments")["deployments"]
word_of = {deployments[0]["id"]: "second", deployments[1]["id"]: "first"}

# A client calls the function throughout, noting failures.
stop, failures, answered = threading.Event(), [], [0]
def loop():
    while not stop.is_set():
        try:
            with urllib.request.urlopen(function["endpoint"]) as response:
                response.read()
            answered[0] += 1
        except (urllib.error.URLError, OSError) as error:
            failures.append(str(error))
client = threading.Thread(target=loop)
client.start()

times = []
target = deployments[1]["id"]
for _ in range(RUNS):
    started = time.perf_counter()
    call("POST", f"/functions/{function['id']}/rollback", {"deployment_id": target})
    while True:
        with urllib.request.urlopen(function["endpoint"]) as response:
            if response.read().decode() == word_of[target]:
                break
    times.append((time.perf_counter() - started) * 1000)
    # The next rollback once this one is recorded (`ready`): a rollback is refused meanwhile.
    while call("GET", f"/functions/{function['id']}")["status"] != "ready":
        time.sleep(0.002)
    target = next(id for id in word_of if id != target)
stop.set()
client.join()
print(f"  rollback, POST to first answer of the old deployment: p50 {statistics.median(times):7.1f} ms"
      f"   max {max(times):7.1f} ms   ({RUNS} rollbacks; {answered[0]} requests beside, {len(failures)} failed)")
PY
