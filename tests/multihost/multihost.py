#!/usr/bin/env python3
"""The split shape of nuage across hosts, and what losing hosts does to it.

Hosts are network namespaces of this run on a bridge in a namespace of its own (10.77.0.0/24);
nothing touches the host's interfaces. `infra` runs a PostgreSQL of its own, SeaweedFS (S3) and
docker-registry; then, each `nuage serve --roles ...` in its own namespace:

    gw1, gw2    gateway
    svc1, svc2  iam, logs, tokens, namespaces, functions, containers
    wrk1, wrk2  crons, builder
    edge        router, runner

Every peer of a replicated service is named by both replicas' URLs (`services.<role>` with a
comma). The scenario, under steady API traffic to gw1 (namespaces and functions created,
updated, listed), a cron firing every 4 s on a deployed function, and a function redeployed
again and again: wrk1 is cut off (its link goes down) while it holds a firing, then svc1 is
killed with SIGKILL (with the other gateway, gw2), then wrk1 comes back, then wrk2 is killed with SIGKILL while a build runs. Then
every acknowledged write is read back, every deploy is checked to have ended ready exactly
once, and every occurrence of the schedule is checked to have reached the function exactly
once (the function prints the time it was called; the runner ships it to the logs).

Exits 1 when a promise is broken, printing the counts either way.
"""

import argparse
import ctypes
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile

NET = "10.77.0"
RUN = f"nmh{os.getpid() % 100000}"
SWITCH = f"{RUN}-sw"
# name: last octet of its address
HOSTS = {
    "infra": 2,
    "client": 5,
    "gw1": 11,
    "gw2": 12,
    "svc1": 21,
    "svc2": 22,
    "wrk1": 31,
    "wrk2": 32,
    "edge": 41,
}
ROLES = {
    "gw1": "gateway",
    "gw2": "gateway",
    "svc1": "iam,logs,tokens,namespaces,functions,containers",
    "svc2": "iam,logs,tokens,namespaces,functions,containers",
    "wrk1": "crons,builder",
    "wrk2": "crons,builder",
    "edge": "router,runner",
}
GRPC_PORT = 9090
API_PORT = 8080
ROUTER_PORT = 8081
ROUTER_INTERNAL_PORT = 8082
PERIOD = 4  # seconds between two cron firings
# A write sent this long after a host was lost may have gone to it before the loss was noticed
# (keep-alive pings after 2 s of silence, answered within 2 s).
IN_FLIGHT = 5.0
losses = []  # when a host was cut off or killed


def in_flight(answer, started, ended):
    """Whether a failed call was sent to a replica as it went away: its fate is unknown, so
    nuage answers 503 rather than risk doing it twice."""
    return answer.status == 503 and any(started <= at + IN_FLIGHT and ended >= at for at in losses)
SECRET = "multihost-internal-secret-" + uuid.uuid4().hex
MASTER_KEY = os.urandom(32).hex()
REGION = "fr-par"

processes = {}  # name -> Popen
work = None  # the run's directory


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ns(host):
    return f"{RUN}-{host}"


def address(host):
    return f"{NET}.{HOSTS[host]}"


def sh(*args, check=True, capture=False):
    result = subprocess.run(
        [str(a) for a in args], check=False, text=True, stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed: {result.stderr if capture else result.returncode}")
    return result.stdout if capture else None


# ---------------------------------------------------------------------------------------------
# Network


def make_network():
    sh("ip", "netns", "add", ns("sw"))
    sh("ip", "-n", ns("sw"), "link", "set", "lo", "up")
    sh("ip", "-n", ns("sw"), "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", ns("sw"), "link", "set", "br0", "up")
    for host, octet in HOSTS.items():
        sh("ip", "netns", "add", ns(host))
        sh("ip", "-n", ns("sw"), "link", "add", f"h{octet}", "type", "veth", "peer", "name", "eth0", "netns", ns(host))
        sh("ip", "-n", ns("sw"), "link", "set", f"h{octet}", "master", "br0", "up")
        sh("ip", "-n", ns(host), "addr", "add", f"{address(host)}/24", "dev", "eth0")
        sh("ip", "-n", ns(host), "link", "set", "eth0", "up")
        sh("ip", "-n", ns(host), "link", "set", "lo", "up")


def cut_off(host):
    """Takes the host's link down, on the bridge's side: it keeps running, alone."""
    sh("ip", "-n", ns("sw"), "link", "set", f"h{HOSTS[host]}", "down")


def reconnect(host):
    sh("ip", "-n", ns("sw"), "link", "set", f"h{HOSTS[host]}", "up")


def enter(host):
    """Moves this process (before it starts any thread) into the host's network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{ns(host)}", os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)


def cleanup():
    for name, process in list(processes.items()):
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 20
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes.values():
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    for host in list(HOSTS) + ["sw"]:
        # Anything left in the namespace (nothing should be) goes with it.
        pids = sh("ip", "netns", "pids", ns(host), check=False, capture=True) or ""
        for pid in pids.split():
            if pid == str(os.getpid()):
                continue
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "delete", ns(host), check=False, capture=True)
    if work and not os.environ.get("NUAGE_MULTIHOST_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Processes


def spawn(name, host, argv, env=None, user=None):
    out = open(os.path.join(work, f"{name}.log"), "wb")
    command = ["ip", "netns", "exec", ns(host)]
    if user:
        command += ["runuser", "-u", user, "--"]
    command += [str(a) for a in argv]
    process = subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True
    )
    processes[name] = process
    return process


def wait_for(what, condition, limit=60.0, every=0.25):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - still starting
            pass
        time.sleep(every)
    raise RuntimeError(f"{what}: not within {limit:.0f} s")


def tcp_open(host_address, port, net_host):
    return (
        subprocess.run(
            ["ip", "netns", "exec", ns(net_host), "bash", "-c", f"exec 3<>/dev/tcp/{host_address}/{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )


def start_infra(args):
    infra = address("infra")
    pg = os.path.join(work, "pg")
    os.makedirs(pg)
    shutil.chown(pg, "postgres", "postgres")
    sh("runuser", "-u", "postgres", "--", f"{args.pg_bin}/initdb", "-D", f"{pg}/data", "-A", "trust", "-U",
       "postgres", capture=True)
    with open(f"{pg}/data/pg_hba.conf", "a") as hba:
        hba.write(f"host all all {NET}.0/24 trust\n")
    spawn("postgres", "infra", [f"{args.pg_bin}/postgres", "-D", f"{pg}/data", "-c", f"listen_addresses={infra}",
                                "-c", "port=5432", "-c", f"unix_socket_directories={pg}", "-c",
                                "max_connections=400", "-c", "fsync=off"], user="postgres")
    s3 = os.path.join(work, "s3")
    os.makedirs(f"{s3}/data")
    with open(f"{s3}/s3.json", "w") as config:
        json.dump({"identities": [{"name": "nuage", "credentials": [
            {"accessKey": "nuage-mh", "secretKey": "nuage-mh-secret"}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, config)
    spawn("weed", "infra", [args.weed, "server", f"-dir={s3}/data", f"-ip={infra}", f"-ip.bind={infra}",
                            "-master.port=9333", "-volume.port=8880", "-volume.max=50", "-filer.port=8888",
                            "-s3", "-s3.port=8333", f"-s3.config={s3}/s3.json"])
    os.makedirs(f"{work}/registry")
    with open(f"{work}/registry.yml", "w") as config:
        config.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {work}/registry\n"
                     f"http:\n  addr: {infra}:5000\n")
    spawn("registry", "infra", [args.registry, "serve", f"{work}/registry.yml"])
    wait_for("PostgreSQL", lambda: sql_raw("postgres", "select 1").strip() == "1")
    sql_raw("postgres", "create database nuage")
    wait_for("docker-registry", lambda: tcp_open(infra, 5000, "infra"))

    # SeaweedFS is up when an unsigned request is refused five probes in a row.
    def s3_steady():
        for _ in range(5):
            code = subprocess.run(
                ["ip", "netns", "exec", ns("infra"), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 f"http://{infra}:8333/"], capture_output=True, text=True).stdout
            if code != "403":
                return False
            time.sleep(0.3)
        return True

    wait_for("SeaweedFS", s3_steady, limit=120)


def sql_raw(database, query):
    return sh("ip", "netns", "exec", ns("infra"), "psql", "-h", address("infra"), "-U", "postgres", "-d",
              database, "-Atc", query, capture=True)


def sql(query):
    return [line.split("|") for line in sql_raw("nuage", query).splitlines() if line]


def replicas(role_host_a, role_host_b, port=GRPC_PORT):
    return f"http://{address(role_host_a)}:{port},http://{address(role_host_b)}:{port}"


def nuage_env(host):
    infra = address("infra")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "NUAGE_LOG": "info",
        "NUAGE_DATABASE_URL": f"postgres://postgres@{infra}:5432/nuage",
        "NUAGE_INTERNAL_SECRET": SECRET,
        "NUAGE_MASTER_KEY": MASTER_KEY,
        "NUAGE_SERVICES__IAM": replicas("svc1", "svc2"),
        "NUAGE_SERVICES__LOGS": replicas("svc1", "svc2"),
        "NUAGE_SERVICES__TOKENS": replicas("svc1", "svc2"),
        "NUAGE_SERVICES__NAMESPACES": replicas("svc1", "svc2"),
        "NUAGE_SERVICES__FUNCTIONS": replicas("svc1", "svc2"),
        "NUAGE_SERVICES__CONTAINERS": replicas("svc1", "svc2"),
        "NUAGE_SERVICES__CRONS": replicas("wrk1", "wrk2"),
        "NUAGE_SERVICES__BUILDER": replicas("wrk1", "wrk2"),
        "NUAGE_SERVICES__RUNNER": f"http://{address('edge')}:{GRPC_PORT}",
        "NUAGE_SERVICES__ROUTER": f"http://{address('edge')}:{ROUTER_INTERNAL_PORT}",
        # A service's answer within 30 s, or the call fails (rather than the default minute).
        "NUAGE_SERVICES__DEADLINE_MS": "30000",
        # Namespace key pairs of 2048 bits: 4096 takes seconds each in a debug build.
        "NUAGE_TOKENS__KEY_BITS": "2048",
        "NUAGE_DATABASE_TIMEOUT_MS": "5000",
        # Endpoints name the router's address, wherever they are computed.
        "NUAGE_ROUTER__LISTEN": f"{address('edge')}:{ROUTER_PORT}",
        "NUAGE_ROUTER__INTERNAL_LISTEN": f"{address('edge')}:{ROUTER_INTERNAL_PORT}",
        "NUAGE_STORAGE__ENDPOINT": f"http://{infra}:8333",
        "NUAGE_STORAGE__ACCESS_KEY": "nuage-mh",
        "NUAGE_STORAGE__SECRET_KEY": "nuage-mh-secret",
        "NUAGE_BUILDER__REGISTRY": f"{infra}:5000",
        "NUAGE_BUILDER__REGISTRY_INSECURE": "true",
        "NUAGE_RUNNER__REGISTRY_INSECURE": "true",
        "NUAGE_CRONS__SECONDS_SCHEDULES": "true",
        "NUAGE_CRONS__LEASE_SECONDS": "2",
        "NUAGE_CRONS__SYNC_MS": "300",
        "NUAGE_SHUTDOWN_GRACE_SECONDS": "5",
    }
    return env


def start_nuage(args, host):
    data = os.path.join(work, host)
    os.makedirs(data, exist_ok=True)
    argv = [args.nuage, "serve", "--roles", ROLES[host], "--data-dir", data,
            "--grpc-listen", f"{address(host)}:{GRPC_PORT}", "--listen", f"{address(host)}:{API_PORT}"]
    env = nuage_env(host)
    if host == "wrk1":
        # wrk1 holds each firing it claims a moment before sending it, so that it can be cut
        # off while it holds one (the other replica must take it over).
        env["NUAGE_CRONS__HOLD_BEFORE_SEND_MS"] = "1500"
    spawn(host, host, argv, env=env)


def endpoints(host):
    with open(os.path.join(work, host, "endpoints.json")) as file:
        return json.load(file)


def start_nuages(args):
    # svc1 first: it migrates the database and makes the first tenant; the rest then together.
    start_nuage(args, "svc1")
    wait_for("svc1", lambda: endpoints("svc1")["grpc"], limit=120)
    for host in ["svc2", "wrk1", "wrk2", "edge", "gw1", "gw2"]:
        start_nuage(args, host)
    for host in ["svc2", "wrk1", "wrk2", "edge", "gw1", "gw2"]:
        wait_for(host, lambda host=host: endpoints(host), limit=120)
    for host, process in processes.items():
        if process.poll() is not None:
            raise RuntimeError(f"{host} exited with {process.returncode}; see {work}/{host}.log")


# ---------------------------------------------------------------------------------------------
# The API, from the client host


class Answer:
    def __init__(self, status, body):
        self.status = status
        self.body = body

    def __repr__(self):
        return f"{self.status} {self.body}"


class Api:
    def __init__(self, gateway, secret_key):
        self.base = f"http://{address(gateway)}:{API_PORT}/functions/v1alpha2/regions/{REGION}"
        self.secret_key = secret_key

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("X-Auth-Token", self.secret_key)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Answer(response.status, json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return Answer(error.code, json.loads(text))
            except ValueError:
                return Answer(error.code, text.decode(errors="replace"))
        except OSError as error:  # refused, reset, timed out
            return Answer(0, str(error))

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body):
        return self.call("POST", path, body)

    def patch(self, path, body):
        return self.call("PATCH", path, body)


def must(answer, what):
    if answer.status != 200:
        raise RuntimeError(f"{what}: {answer}")
    return answer.body


def poll(what, get, done, limit=120.0):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        last = get()
        if done(last):
            return last
        time.sleep(0.3)
    raise RuntimeError(f"{what}: not within {limit:.0f} s (last: {last})")


def archive(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, text in files.items():
            zipped.writestr(name, text)
    return buffer.getvalue()


def upload(api, function_id, payload):
    url = must(api.get(f"/functions/{function_id}/upload-url?content_length={len(payload)}"), "upload url")["url"]
    request = urllib.request.Request(url, data=payload, method="PUT")
    request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.status


TICKER = """import time

def handle(event, context):
    print("TICK %.3f" % time.time(), flush=True)
    return {"statusCode": 200, "body": "tick"}
"""


def build_source(version):
    return f"""def handle(event, context):
    return {{"statusCode": 200, "body": "version {version}"}}
"""


# ---------------------------------------------------------------------------------------------
# The scenario


class Traffic:
    """Creates, updates and lists namespaces and functions through one gateway, without pause,
    counting what was acknowledged and what failed."""

    def __init__(self, api, namespace_id, runtime):
        self.api = api
        self.namespace_id = namespace_id
        self.runtime = runtime
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}  # (kind, id) -> last acknowledged description
        self.attempted = {}  # (kind, id) -> descriptions sent without an answer
        self.counts = {"writes_acked": 0, "writes_failed": 0, "writes_in_flight": 0, "writes_throttled": 0,
                       "reads_ok": 0,
                       "reads_failed": 0, "reads_retried": 0}
        self.failures = []

    def count(self, key, detail=None):
        with self.lock:
            self.counts[key] += 1
            if detail is not None:
                self.failures.append((time.strftime("%H:%M:%S"), detail))

    def read(self, path):
        for attempt in range(3):
            answer = self.api.get(path)
            if answer.status == 200:
                self.count("reads_ok")
                return answer
            if attempt < 2:
                self.count("reads_retried", f"GET {path}: {answer}")
        self.count("reads_failed", f"GET {path}: {answer}")
        return None

    def write(self, kind, method, path, body):
        started = time.time()
        answer = self.api.call(method, path, body)
        if answer.status == 200:
            self.count("writes_acked")
            with self.lock:
                self.acked[(kind, answer.body["id"])] = body.get("description")
            return answer.body
        if answer.status == 429:
            # The tenant's quota of namespaces being created: a refusal, not an outage.
            self.count("writes_throttled")
            return None
        if in_flight(answer, started, time.time()):
            # Read back below either way.
            self.count("writes_in_flight", f"{method} {path}: {answer}")
        else:
            self.count("writes_failed", f"{method} {path}: {answer}")
        if method == "PATCH":
            key = (kind, path.rsplit("/", 1)[1])
            with self.lock:
                self.attempted.setdefault(key, []).append(body.get("description"))
        return None

    def run(self, worker):
        n = 0
        namespaces = 0
        mine = []
        while not self.stop.is_set():
            n += 1
            tag = f"w{worker}-{n}"
            if n % 8 == 1 and worker == 0 and namespaces < 60:
                namespaces += 1
                created = self.write("namespace", "POST", "/namespaces",
                                     {"name": f"mh-{tag}", "description": f"{tag} created"})
                if created:
                    mine.append(("namespace", created["id"]))
            elif n % 4 == 2:
                created = self.write("function", "POST", "/functions",
                                     {"name": f"fn-{tag}", "namespace_id": self.namespace_id,
                                      "runtime": self.runtime, "description": f"{tag} created",
                                      "privacy": "public"})
                if created:
                    mine.append(("function", created["id"]))
            elif n % 4 == 3 and mine:
                kind, id_ = mine[n % len(mine)]
                self.write(kind, "PATCH", f"/{kind}s/{id_}", {"description": f"{tag} updated"})
            else:
                self.read("/namespaces?page_size=10&order_by=created_at_desc")
                self.read(f"/functions?namespace_id={self.namespace_id}&page_size=10")

    def verify(self):
        missing = []
        for (kind, id_), description in sorted(self.acked.items()):
            answer = self.read(f"/{kind}s/{id_}")
            if answer is None:
                missing.append((kind, id_, "unreadable"))
                continue
            later = self.attempted.get((kind, id_), [])
            if answer.body.get("description") != description and answer.body.get("description") not in later:
                missing.append((kind, id_, f"description {answer.body.get('description')!r}, acknowledged {description!r}"))
        return missing


class Deployer:
    """Redeploys one function again and again; each deploy must end ready, exactly once."""

    def __init__(self, api, function_id):
        self.api = api
        self.function_id = function_id
        self.stop = threading.Event()
        self.deploys = []  # (version, deployed at, outcome)
        self.failures = []
        self.in_flight = []

    def run(self):
        version = 0
        while not self.stop.is_set():
            version += 1
            try:
                upload(self.api, self.function_id, archive({"handler.py": build_source(version)}))
            except OSError as error:
                self.failures.append(f"upload {version}: {error}")
                time.sleep(1)
                continue
            started = time.time()
            answer = self.api.post(f"/functions/{self.function_id}/deploy", {})
            if answer.status != 200:
                if in_flight(answer, started, time.time()):
                    self.in_flight.append(f"deploy {version}: {answer}")
                else:
                    self.failures.append(f"deploy {version}: {answer}")
                time.sleep(1)
                continue
            try:
                done = poll(f"deploy {version}", lambda: self.api.get(f"/functions/{self.function_id}"),
                            lambda a: a.status == 200 and a.body["status"] in ("ready", "error"), limit=180)
                self.deploys.append((version, started, done.body["status"], time.time() - started,
                                     done.body.get("error_message")))
            except RuntimeError as error:
                self.deploys.append((version, started, "stuck", time.time() - started, str(error)))
            time.sleep(2)


def main():
    global work
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg-bin", required=True)
    parser.add_argument("--weed", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--nuage", required=True)
    parser.add_argument("--phase-seconds", type=float, default=30)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="nuage-multihost-")
    os.chmod(work, 0o755)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        make_network()
        log(f"network {NET}.0/24 up ({RUN}); starting PostgreSQL, SeaweedFS, docker-registry")
        start_infra(args)
        log("starting nuage: " + ", ".join(f"{h} ({r})" for h, r in ROLES.items()))
        start_nuages(args)
        with open(os.path.join(work, "svc1", "credentials.json")) as file:
            secret_key = json.load(file)["secret_key"]
        enter("client")
        return scenario(args, secret_key)
    except Exception:
        import traceback

        traceback.print_exc()
        for name in ("gw1", "svc1", "svc2", "wrk2", "edge"):
            print(f"--- {name}.log (tail)")
            print(tail(name, 15))
        return 1
    finally:
        cleanup()
        if os.environ.get("NUAGE_MULTIHOST_KEEP"):
            log(f"logs kept in {work}")


def tail(name, lines=30):
    path = os.path.join(work, f"{name}.log")
    try:
        with open(path, errors="replace") as file:
            return "".join(file.readlines()[-lines:])
    except OSError:
        return ""


def scenario(args, secret_key):
    api = Api("gw1", secret_key)
    wait_for("gw1", lambda: api.get("/namespaces").status == 200, limit=60)
    runtimes = must(api.get("/runtimes"), "runtimes")["runtimes"]
    names = [r if isinstance(r, str) else r["name"] for r in runtimes]
    runtime = next(name for name in names if name.startswith("python3"))
    namespace = must(api.post("/namespaces", {"name": "mh-apps"}), "namespace")
    poll("namespace ready", lambda: api.get(f"/namespaces/{namespace['id']}"),
         lambda a: a.status == 200 and a.body["status"] == "ready")
    ticker = must(api.post("/functions", {"name": "ticker", "namespace_id": namespace["id"], "runtime": runtime,
                                          "handler": "handler.handle", "min_scale": 1, "privacy": "public"}),
                  "ticker")
    upload(api, ticker["id"], archive({"handler.py": TICKER}))
    must(api.post(f"/functions/{ticker['id']}/deploy", {}), "deploy ticker")
    done = poll("ticker ready", lambda: api.get(f"/functions/{ticker['id']}"),
                lambda a: a.status == 200 and a.body["status"] in ("ready", "error"), limit=180)
    if done.body["status"] != "ready":
        raise RuntimeError(f"ticker: {done.body}")
    builds = must(api.post("/functions", {"name": "builds", "namespace_id": namespace["id"], "runtime": runtime,
                                          "handler": "handler.handle", "privacy": "public"}), "builds")
    cron = must(api.post("/crons", {"application_id": ticker["id"], "schedule": f"*/{PERIOD} * * * * *",
                                    "args": {"from": "multihost"}}), "cron")
    poll("cron ready", lambda: api.get(f"/crons/{cron['id']}"),
         lambda a: a.status == 200 and a.body["status"] == "ready")
    log(f"ticker {ticker['id']} deployed, cron {cron['id']} every {PERIOD} s; traffic starts")

    traffic = Traffic(api, namespace["id"], runtime)
    deployer = Deployer(api, builds["id"])
    threads = [threading.Thread(target=traffic.run, args=(n,), daemon=True) for n in range(3)]
    threads.append(threading.Thread(target=deployer.run, daemon=True))
    # Firings are counted from the first whole period after the cron is ready.
    window_start = (int(time.time()) // PERIOD + 2) * PERIOD
    for thread in threads:
        thread.start()
    phase = args.phase_seconds
    time.sleep(phase)
    # Cut wrk1 off while it holds a firing: a claimed one, a moment after an occurrence, is
    # wrk1's (wrk2 sends at once).
    held_at_cut = 0
    deadline = time.time() + 10 * PERIOD
    while time.time() < deadline:
        next_occurrence = (int(time.time()) // PERIOD + 1) * PERIOD
        time.sleep(max(0.0, next_occurrence + 0.4 - time.time()))
        held_at_cut = int(sql(f"select count(*) from cron_firings where cron_id = '{cron['id']}' "
                              f"and status = 'claimed'")[0][0])
        if held_at_cut:
            break
    building_at_cut = int(sql("select count(*) from build_jobs where status = 'running'")[0][0])
    log(f"cutting wrk1 off (crons + builder replica): link down; firings held {held_at_cut}, "
        f"builds running {building_at_cut}")
    cut_at = time.time()
    losses.append(cut_at)
    cut_off("wrk1")
    time.sleep(phase)
    log("killing svc1 (iam, logs, tokens, namespaces, functions, containers replica) and gw2 with SIGKILL")
    killed_at = time.time()
    losses.append(killed_at)
    os.killpg(processes["svc1"].pid, signal.SIGKILL)
    os.killpg(processes["gw2"].pid, signal.SIGKILL)
    time.sleep(phase)
    log("wrk1 comes back: link up (what it held is another's now)")
    reconnect("wrk1")
    time.sleep(phase)
    # Kill wrk2 while a build runs (on wrk2 or wrk1): its firings and any build it held go to
    # wrk1, which is back.
    building_at_kill = 0
    deadline = time.time() + 30
    while time.time() < deadline and not building_at_kill:
        building_at_kill = int(sql("select count(*) from build_jobs where status = 'running' "
                                   "and lease_until > 0")[0][0])
        time.sleep(0.1)
    log(f"killing wrk2 (crons + builder replica) with SIGKILL; builds running {building_at_kill}")
    wrk2_killed_at = time.time()
    losses.append(wrk2_killed_at)
    os.killpg(processes["wrk2"].pid, signal.SIGKILL)
    time.sleep(phase)
    window_end = (int(time.time()) // PERIOD - 1) * PERIOD
    traffic.stop.set()
    deployer.stop.set()
    for thread in threads:
        thread.join(timeout=240)
    log("traffic stopped; reading back")

    # Every acknowledged write, read back through the surviving gateway.
    missing = traffic.verify()

    # Every occurrence of the schedule in the window reached the function once.
    time.sleep(3)  # the runner ships lines within a moment; absence is what is checked below
    ticks = []
    for (message,) in sql(f"select message from log_lines where application_id = '{ticker['id']}' "
                          f"and message like 'TICK %'"):
        ticks.append(float(message.split()[1]))
    occurrences = list(range(window_start, window_end + 1, PERIOD))
    per_occurrence = {at: 0 for at in occurrences}
    for tick in ticks:
        at = int(tick) // PERIOD * PERIOD
        if at in per_occurrence:
            per_occurrence[at] += 1
    lost = [at for at, n in per_occurrence.items() if n == 0]
    doubled = [at for at, n in per_occurrence.items() if n > 1]
    firings = sql(f"select scheduled_at, status, attempts from cron_firings where cron_id = '{cron['id']}' "
                  f"and scheduled_at >= {window_start * 1_000_000} and scheduled_at <= {window_end * 1_000_000}")
    taken_over = sum(1 for f in firings if int(f[2]) > 1)
    failed_firings = [f for f in firings if f[1] != "succeeded"]

    # Every deploy ended ready, built and rolled out once.
    jobs = sql(f"select id, status, attempts from build_jobs where function_id = '{builds['id']}' order by created_at")
    deployments = sql(f"select id, status from deployments where application_id = '{builds['id']}' order by created_at")
    started_twice = sql(f"select source_id, count(*) from log_lines where application_id = '{builds['id']}' "
                        f"and stream = 'build' and message like 'build %' group by source_id having count(*) > 1")
    not_ready = [d for d in deployer.deploys if d[2] != "ready"]
    reclaimed = [j for j in jobs if int(j[2]) > 1]
    job_ids = [j[0] for j in jobs]
    duplicated_jobs = len(job_ids) - len(set(job_ids))
    unfinished_jobs = [j for j in jobs if j[1] not in ("done", "superseded")]
    succeeded_deployments = [d for d in deployments if d[1] == "succeeded"]

    c = traffic.counts
    print()
    print("== multi-host counts")
    print(f"hosts: {', '.join(f'{h} {address(h)} ({r})' for h, r in ROLES.items())}")
    print(f"wrk1 cut off holding {held_at_cut} firing(s), {building_at_cut} build(s) running anywhere; "
          f"svc1 and gw2 killed {killed_at - cut_at:.0f} s later; wrk1 back {phase:.0f} s after that; wrk2 killed "
          f"{wrk2_killed_at - killed_at - phase:.0f} s after that with {building_at_kill} build(s) running")
    print(f"API through gw1: {c['writes_acked']} writes acknowledged, {c['writes_failed']} failed, "
          f"{c['writes_in_flight']} answered 503 as their replica went away, "
          f"{c['writes_throttled']} refused by the namespace creation quota (429); "
          f"{c['reads_ok']} reads ok, {c['reads_retried']} retried, {c['reads_failed']} failed")
    print(f"acknowledged writes read back: {len(traffic.acked) - len(missing)} of {len(traffic.acked)} "
          f"resources as last acknowledged; missing or stale: {len(missing)}")
    print(f"cron: {len(occurrences)} occurrences in the window, {len(occurrences) - len(lost)} reached the function, "
          f"lost {len(lost)}, doubled {len(doubled)}; firings recorded {len(firings)}, taken over {taken_over}, "
          f"not succeeded {len(failed_firings)}")
    print(f"deploys: {len(deployer.deploys)} ({len(deployer.deploys) - len(not_ready)} ready, "
          f"{len(not_ready)} not, {len(deployer.in_flight)} refused (503) as their replica went away), "
          f"slowest {max((d[3] for d in deployer.deploys), default=0):.1f} s; "
          f"build jobs {len(jobs)} (claimed again after a lost builder {len(reclaimed)}, started more than "
          f"once {len(started_twice)}, unfinished {len(unfinished_jobs)}), deployments succeeded {len(succeeded_deployments)} of {len(deployments)}")
    problems = []
    if c["writes_failed"] or c["reads_failed"]:
        problems.append(f"{c['writes_failed'] + c['reads_failed']} API requests failed")
    if missing:
        problems.append(f"acknowledged writes missing: {missing[:5]}")
    if lost or doubled:
        problems.append(f"cron occurrences lost {lost[:5]} doubled {doubled[:5]}")
    if not deployer.deploys or not_ready or deployer.failures:
        problems.append(f"deploys not ready: {not_ready[:5]} {deployer.failures[:5]}")
    if unfinished_jobs or duplicated_jobs:
        problems.append(f"build jobs unfinished {unfinished_jobs[:5]}, duplicated {duplicated_jobs}")
    for when, failure in traffic.failures[:20]:
        print(f"  {when} {failure[:300]}")
    for failure in deployer.failures[:10]:
        print(f"  deploy: {failure[:300]}")
    if problems:
        print("FAILED: " + "; ".join(problems))
        for name in ("gw1", "svc2", "wrk2", "edge"):
            print(f"--- {name}.log (tail)")
            print(tail(name))
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
