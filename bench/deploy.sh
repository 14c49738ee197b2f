#!/usr/bin/env bash
# Benchmarks deploy-to-image time on a release build: POST /functions/{id}/deploy until the
# function is `ready` (archive fetched and checked, OCI image written, status reported), for a
# 1 KiB node handler and a 10 MiB python archive. Prints p50 and max over RUNS deploys each.
# Usage: bench/deploy.sh   (RUNS=20 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-20}"
cargo build --release --locked -q
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/nuage"
WORK="$(mktemp -d)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

NUAGE_LOG=warn "$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 1 300); do [ -f "$WORK/data/endpoints.json" ] && break; sleep 0.1; done

RUNS="$RUNS" DATA="$WORK/data" python3 - <<'PY'
import io, json, os, random, statistics, time, urllib.request, zipfile

data = os.environ["DATA"]
runs = int(os.environ["RUNS"])
api = json.load(open(f"{data}/endpoints.json"))["api"]
token = json.load(open(f"{data}/credentials.json"))["secret_key"]
base = f"http://{api}/functions/v1alpha2/regions/fr-par"

def call(method, path, body=None):
    request = urllib.request.Request(base + path, method=method, headers={"X-Auth-Token": token},
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request) as response:
        return json.load(response)

def archive(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buffer.getvalue()

runtimes = call("GET", "/runtimes")["runtimes"]
node = next(r for r in runtimes if r.startswith("node"))
cases = [
    ("1 KiB node handler", node, "handler.handle",
     {"handler.js": "exports.handle = () => 'hi';\n" + "// padding\n" * 90}),
    ("10 MiB python archive", "python3", "handler.handle",
     {"handler.py": "def handle(event, context):\n    return 'hi'\n",
      # Incompressible vendored data, so the archive really is about 10 MiB.
      "package/blob.bin": random.Random(7).randbytes(10 * 1024 * 1024)}),
]
for index, (label, runtime, handler, files) in enumerate(cases):
    namespace = call("POST", "/namespaces", {"name": f"bench-deploy-{index}"})["id"]
    while call("GET", f"/namespaces/{namespace}")["status"] != "ready":
        time.sleep(0.01)
    function = call("POST", "/functions", {"namespace_id": namespace, "name": "f", "runtime": runtime,
                                           "handler": handler})["id"]
    body = archive(files)
    upload = call("GET", f"/functions/{function}/upload-url?content_length={len(body)}")
    put = urllib.request.Request(upload["url"], data=body, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(put).read()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call("POST", f"/functions/{function}/deploy", {})
        while True:
            status = call("GET", f"/functions/{function}")["status"]
            if status in ("ready", "error"):
                break
            time.sleep(0.002)
        assert status == "ready", call("GET", f"/functions/{function}")
        times.append((time.perf_counter() - started) * 1000)
    print(f"  deploy-to-image, {label:24} ({len(body):>9} byte zip): "
          f"p50 {statistics.median(times):7.1f} ms   max {max(times):7.1f} ms   ({runs} deploys)")
PY
