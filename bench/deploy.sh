#!/usr/bin/env bash
# Benchmarks deploy-to-image time on a release build: POST /functions/{id}/deploy until the
# function is `ready` (archive fetched and checked, OCI image written, status reported), for a
# 1 KiB node handler and a 10 MiB python archive. Prints p50 and max over RUNS deploys each.
# Usage: bench/deploy.sh   (RUNS=20 by default; BENCH_BINARY=path: see bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/lib.sh
bench_start "$WORK/data"

python3 - <<'PY'
import random, statistics, time, zipfile
from client import RUNS, archive, call, deploy, namespace, runtime, upload

node = runtime("node")
cases = [
    ("1 KiB node handler", node, "handler.handle",
     {"handler.js": "exports.handle = () => 'hi';\n" + "// padding\n" * 90}),
    ("10 MiB python archive", "python3", "handler.handle",
     {"handler.py": "def handle(event, context):\n    return 'hi'\n",
      # Incompressible vendored data, so the archive really is about 10 MiB.
      "package/blob.bin": random.Random(7).randbytes(10 * 1024 * 1024)}),
]
for index, (label, runtime_name, handler, files) in enumerate(cases):
    namespace_id = namespace(f"bench-deploy-{index}")
    function = call("POST", "/functions", {"namespace_id": namespace_id, "name": "f", "runtime": runtime_name,
                                           "handler": handler})["id"]
    body = archive(files, zipfile.ZIP_DEFLATED)
    upload(function, body)
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        deploy(function, poll=0.002)
        times.append((time.perf_counter() - started) * 1000)
    print(f"  deploy-to-image, {label:24} ({len(body):>9} byte zip): "
          f"p50 {statistics.median(times):7.1f} ms   max {max(times):7.1f} ms   ({RUNS} deploys)")
PY
