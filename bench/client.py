"""The bench scripts' client of the nuage that bench/lib.sh started (its data dir is DATA): the
REST API as its default tenant, and the steps from code to a deployed function."""

import io
import json
import os
import time
import urllib.request
import zipfile

DATA = os.environ["DATA"]
ENDPOINTS = json.load(open(f"{DATA}/endpoints.json"))
TOKEN = json.load(open(f"{DATA}/credentials.json"))["secret_key"]
API = ENDPOINTS["api"]
BASE = f"http://{API}/functions/v1alpha2/regions/fr-par"
# How many times a script repeats what it times (bench/lib.sh exports it).
RUNS = int(os.environ.get("RUNS", "20"))


def call(method, path, body=None, raw=None, url=None):
    """Sends a request to BASE + path (or to url) with `body` as JSON or `raw` bytes; returns
    the JSON answer (None when empty)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url or BASE + path, method=method, data=data,
                                     headers={"X-Auth-Token": TOKEN})
    if raw is not None:
        request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None


def archive(files, compression=zipfile.ZIP_STORED):
    """Returns a zip holding `files` (name: content)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buffer.getvalue()


def runtime(prefix):
    """Returns the first installed runtime whose name starts with `prefix`."""
    return next(r for r in call("GET", "/runtimes")["runtimes"] if r.startswith(prefix))


def namespace(name):
    """Creates a namespace and waits until it is ready; returns its id."""
    namespace_id = call("POST", "/namespaces", {"name": name})["id"]
    while call("GET", f"/namespaces/{namespace_id}")["status"] != "ready":
        time.sleep(0.01)
    return namespace_id


def upload(function_id, code):
    """Uploads the zip `code` as the function's through its presigned URL."""
    upload_url = call("GET", f"/functions/{function_id}/upload-url?content_length={len(code)}")
    call("PUT", None, raw=code, url=upload_url["url"])


def deployed(namespace_id, code, **fields):
    """Creates a function (`fields`: name, runtime...) in the namespace, uploads the zip `code`
    and deploys it; returns the function once ready."""
    function = call("POST", "/functions", {"namespace_id": namespace_id, **fields})
    upload(function["id"], code)
    return deploy(function["id"])


def deploy(function_id, poll=0.05):
    """Deploys the function's uploaded archive, looking every `poll` seconds until it is
    settled; returns the function once ready."""
    call("POST", f"/functions/{function_id}/deploy", {})
    while (found := call("GET", f"/functions/{function_id}"))["status"] not in ("ready", "error"):
        time.sleep(poll)
    assert found["status"] == "ready", found
    return found


def alive(application_id):
    """Whether a process of the application (an instance) runs on this machine."""
    needle = f"SCW_APPLICATION_ID={application_id}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle in open(f"/proc/{pid}/environ", "rb").read().split(b"\0"):
                return True
        except OSError:
            pass
    return False
