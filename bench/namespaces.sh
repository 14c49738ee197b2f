#!/usr/bin/env bash
# Benchmarks how soon a new namespace is ready (POST /namespaces until `ready`; its RSA key
# pair, 4096 bits by default, is what takes time) on a release build: with the tokens stock
# (tokens.key_stock, 2 by default), one namespace at a time once the stock is full, then a
# burst of 4 at once; and the same without a stock (key_stock = 0), every pair made on demand.
# Prints p50 and max over NAMESPACE_RUNS namespaces (5 by default) and the burst's time.
# Usage: bench/namespaces.sh   (BENCH_BINARY=path: see bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
export NAMESPACE_RUNS="${NAMESPACE_RUNS:-5}" METRICS_TOKEN="bench-$RANDOM"

for stock in 2 0; do
  bench_start "$WORK/data-$stock" NUAGE_TOKENS__KEY_STOCK="$stock" NUAGE_GATEWAY__METRICS_TOKEN="$METRICS_TOKEN"
  STOCK="$stock" python3 - <<'PY'
import os, statistics, threading, time, urllib.request
from client import API, namespace

stock, runs = int(os.environ["STOCK"]), int(os.environ["NAMESPACE_RUNS"])


def stocked():
    request = urllib.request.Request(f"http://{API}/metrics",
                                     headers={"Authorization": f"Bearer {os.environ['METRICS_TOKEN']}"})
    with urllib.request.urlopen(request) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("nuage_tokens_key_pairs_stocked "):
                return int(line.split()[1])
    return 0


def full():
    while stocked() < stock:
        time.sleep(0.05)


times = []
for index in range(runs):
    full()
    started = time.perf_counter()
    namespace(f"bench-{stock}-{index}")
    times.append((time.perf_counter() - started) * 1000)
label = f"key_stock = {stock}"
print(f"  namespace ready, one at a time, {label}: p50 {statistics.median(times):8.1f} ms"
      f"   max {max(times):8.1f} ms   ({runs} namespaces)")
full()
started = time.perf_counter()
burst = [threading.Thread(target=namespace, args=(f"burst-{stock}-{index}",)) for index in range(4)]
for thread in burst:
    thread.start()
for thread in burst:
    thread.join()
print(f"  namespace ready, 4 at once, {label}: all ready after {(time.perf_counter() - started) * 1000:8.1f} ms")
PY
  bench_stop
done
