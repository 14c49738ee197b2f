//! Tenant isolation, attacked the way a hostile tenant would: a function of its own that runs
//! whatever it is sent, trying to reach other tenants' instances, the host's services, root's
//! powers, nuage's secrets and more than its share of the machine. Each attack must be refused.
//! (Endpoints: `isolation_endpoints.rs`; archives and images: `isolation_archives.rs`; keys
//! and `/metrics`: `auth.rs` and `server.rs`.)

use nuage_tests::apps::{
    deployed, deployed_node, deployed_private_node, processes_of, runtime, upload_and_deploy, zip,
};
use nuage_tests::hosts::{TestHost, Witness};
use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Runs what it is sent: `{"sh": script}` or `{"py": code}`; answers with the status and output.
const ATTACKER_PY: &[u8] = br#"
import json, subprocess, sys

def handle(event, context):
    order = json.loads(event["body"])
    line = ["/bin/sh", "-c", order["sh"]] if "sh" in order else [sys.executable, "-c", order["py"]]
    done = subprocess.run(line, capture_output=True, text=True, timeout=60)
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"status": done.returncode, "out": done.stdout, "err": done.stderr}),
    }
"#;

/// Deploys the attacker's function in a namespace of `tenant`'s; returns its endpoint and id.
async fn attacker(tenant: &Tenant, namespace: &str, extra: Value) -> (String, String) {
    let python = runtime(tenant, "python").await;
    let mut body = json!({"name": "attacker", "runtime": python});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let function = deployed(tenant, namespace, body, &[("handler.py", ATTACKER_PY)]).await;
    (
        function["endpoint"].as_str().unwrap().to_owned(),
        function["id"].as_str().unwrap().to_owned(),
    )
}

/// Has the attacker run `order`; returns (exit status, stdout, stderr).
async fn run(endpoint: &str, order: Value) -> (i64, String, String) {
    let response = reqwest::Client::new()
        .post(endpoint)
        .body(order.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    (
        answer["status"].as_i64().unwrap(),
        answer["out"].as_str().unwrap().to_owned(),
        answer["err"].as_str().unwrap().to_owned(),
    )
}

/// Connects to every listening TCP port the instance can see, and to `ports` on loopback;
/// prints what answered an HTTP GET, and `refused <port>` for the others.
const PROBE_PY: &str = r#"
import socket, sys
ports = set(int(p) for p in sys.argv[1:])
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
for port in sorted(ports):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.settimeout(2)
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while len(answer) < 65536:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
            print("open", port, answer.decode("latin-1"))
    except OSError as error:
        print("refused", port, error)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_private_function_and_the_hosts_services_cannot_be_reached() {
    let server = TestServer::start().await;
    let (victim, hostile) = (server.tenant().await, server.tenant().await);
    let secret = format!("victim-secret-{}", uuid::Uuid::new_v4());
    let code = format!("exports.handle = async () => ({{statusCode: 200, body: '{secret}'}});");
    let private = deployed_private_node(&victim, "vault", "private", code.as_bytes()).await;
    let answer = reqwest::get(private["endpoint"].as_str().unwrap()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND, "the router wants a token");
    let (endpoint, _) = attacker(&hostile, "probe", json!({})).await;

    // Every port nuage and the machine's services listen on, and whatever the instance sees.
    let endpoints = server.server().endpoints();
    let mut ports: Vec<u16> = [
        endpoints.api,
        endpoints.grpc,
        endpoints.s3,
        endpoints.functions,
        endpoints.router_internal,
    ]
    .into_iter()
    .flatten()
    .map(|address| address.port())
    .collect();
    ports.extend([5432, 3306, 6379, 4222, 5672, 1883]);
    let arguments: Vec<String> = ports.iter().map(u16::to_string).collect();
    let script = format!(
        "python3 -c '{}' {}",
        PROBE_PY.replace('\'', "'\"'\"'"),
        arguments.join(" ")
    );
    let (status, out, err) = run(&endpoint, json!({"sh": script})).await;
    assert_eq!(status, 0, "{err}");
    assert!(
        !out.contains(&secret),
        "the victim's private function answered the attacker:\n{out}"
    );
    for port in &ports {
        assert!(
            out.contains(&format!("refused {port} ")),
            "port {port} of the host answered the attacker:\n{out}"
        );
    }
    // Nothing but its loopback: no route to link-local (cloud metadata) or private ranges.
    let (_, out, _) = run(
        &endpoint,
        json!({"sh": "cat /proc/net/dev; echo ROUTES; cat /proc/net/route"}),
    )
    .await;
    let interfaces: Vec<&str> = out
        .lines()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.trim()))
        .filter(|name| !name.contains('|'))
        .collect();
    assert_eq!(interfaces, ["lo"], "{out}");
    let routes = out.split_once("ROUTES").unwrap().1;
    assert_eq!(routes.trim().lines().count(), 1, "only the header, no route: {routes}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_is_no_host_root_and_sees_nothing_of_nuage() {
    let (server, tenant) = TestServer::with_tenant().await;
    let canary = format!("canary-{}", uuid::Uuid::new_v4());
    let (endpoint, id) = attacker(&tenant, "root", json!({"environment_variables": {"CANARY": canary}})).await;

    // Root's powers: the kernel's settings (each written with the value it has, so that a
    // failure of this test leaves the host as it was), new user namespaces, capabilities.
    let order = "cat /proc/sys/vm/swappiness > /proc/sys/vm/swappiness && echo WROTE-SWAPPINESS; \
                 cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern && echo WROTE-CORE; \
                 unshare -U true && echo USERNS-OK; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status";
    let (_, out, _) = run(&endpoint, json!({"sh": order})).await;
    assert!(!out.contains("WROTE-"), "{out}");
    assert!(!out.contains("USERNS-OK"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "a syscall filter: {out}");
    let pids = processes_of(&id);
    assert!(!pids.is_empty());
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|line| line.starts_with("Uid:")).unwrap();
        assert!(
            uid.split_whitespace().skip(1).all(|id| id != "0"),
            "host ids of the instance: {uid}"
        );
    }

    // nuage's own environment (this test process's: nextest's and cargo's variables) reaches
    // no process of the instance, and the tenant's variables are on no command line.
    let (_, out, _) = run(&endpoint, json!({"sh": "cat /proc/*/environ | tr '\\0' '\\n'"})).await;
    assert!(out.contains(&format!("CANARY={canary}")), "{out}");
    let ours: Vec<String> = std::env::vars()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with("CARGO") || key.starts_with("NEXTEST") || key.starts_with("RUST"))
        .collect();
    assert!(!ours.is_empty());
    for key in &ours {
        assert!(
            !out.contains(&format!("{key}=")),
            "`{key}` reached the instance:\n{out}"
        );
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(line) = std::fs::read(entry.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&line);
            assert!(
                !line.contains(&canary),
                "a command line shows a tenant's variable: {line}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variables_value_adds_no_option_to_the_sandbox() {
    let (server, tenant) = TestServer::with_tenant().await;
    // bubblewrap reads the instance's variables from its `--args` file as `--setenv KEY VALUE`,
    // NUL-separated: a NUL inside a value ends it, and what follows is read as bubblewrap's own
    // options, here a writable bind of the host's root into the sandbox. Plain and secret
    // variables reach that file alike.
    let value = "x\0--bind\0/\0/nuage-host";
    let python = runtime(&tenant, "python").await;
    let namespace_id = tenant.ready_namespace_id("smuggler").await;
    for (argument, variables) in [
        (
            "secret_environment_variables",
            json!([{"key": "SMUGGLED", "value": value}]),
        ),
        ("environment_variables", json!({"SMUGGLED": value})),
    ] {
        let mut body = json!({"name": format!("attacker-{}", argument.len()), "runtime": python,
                              "namespace_id": namespace_id});
        body[argument] = variables;
        let answer = tenant.post("/functions", body).await;
        if answer.status != StatusCode::BAD_REQUEST {
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            let id = answer.body["id"].as_str().unwrap().to_owned();
            let archive = zip(&[("handler.py", ATTACKER_PY)]);
            let done = upload_and_deploy(&tenant, &id, archive, Duration::from_secs(60)).await;
            assert_eq!(done["status"], "ready", "{done}");
            let canary = format!("nuage-smuggled-{}", uuid::Uuid::new_v4());
            let order = format!(
                "test -e /nuage-host/proc/{pid}/cmdline && echo HOST-PROCESSES; \
                 touch /nuage-host/var/tmp/{canary} && echo HOST-WRITTEN; ls /nuage-host",
                pid = std::process::id()
            );
            let (_, out, _) = run(done["endpoint"].as_str().unwrap(), json!({"sh": order})).await;
            let written = std::path::Path::new("/var/tmp").join(&canary);
            let on_host = written.exists();
            let _ = std::fs::remove_file(&written);
            assert!(
                !out.contains("HOST-PROCESSES"),
                "through {argument}, the instance sees the host's processes:\n{out}"
            );
            assert!(
                !on_host && !out.contains("HOST-WRITTEN"),
                "through {argument}, the instance wrote on the host:\n{out}"
            );
        }
        let refused = answer.refused_argument();
        assert!(
            refused.starts_with(argument),
            "no process can be given a variable holding NUL: {argument} is refused, not {refused}"
        );
    }
    server.stop().await;
}

/// A container that tries, on each request, what a bind of the host's root at `/nuage-host`
/// would give it: the host's processes, and a file written on the host (`/var/tmp/$CANARY`).
const SMUGGLER_GO: &str = r#"package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, seen := os.Stat("/nuage-host/proc/1/cmdline")
		written := os.WriteFile("/nuage-host/var/tmp/"+os.Getenv("CANARY"), []byte("from a tenant"), 0o644)
		fmt.Fprintf(w, `{"host_processes":%t,"host_written":%t}`, seen == nil, written == nil)
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		panic(err)
	}
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_images_variable_adds_no_option_to_the_sandbox() {
    let binary = nuage_tests::go_server_or_skip!(SMUGGLER_GO);
    let (server, tenant) = TestServer::with_tenant().await;
    let namespace = tenant.ready_namespace("smuggling-image").await;
    // The variables of the image's own config reach bubblewrap's `--args` file as the
    // tenant's do: a NUL in one must not become options of the tenant's choosing.
    let canary = format!("nuage-smuggled-{}", uuid::Uuid::new_v4());
    let repository = namespace["registry_endpoint"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap()
        .1;
    let layout = server
        .config
        .data_dir
        .join("registry")
        .join(repository)
        .join("smuggler");
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Regular);
    layer.append_data(&mut header, "server", &binary[..]).unwrap();
    nuage_tests::apps::write_image_layout_with(
        &layout,
        "latest",
        layer.into_inner().unwrap(),
        json!({"User": "1000", "Entrypoint": ["/server"], "WorkingDir": "/",
               "Env": ["PATH=/", format!("CANARY={canary}"), "SMUGGLED=x\u{0}--bind\u{0}/\u{0}/nuage-host"]}),
    );
    let id = tenant
        .create(
            "/containers",
            json!({"name": "smuggler", "namespace_id": namespace["id"]}),
        )
        .await;
    let deploying = tenant.post(&format!("/containers/{id}/deploy"), json!({})).await;
    assert_eq!(deploying.status, StatusCode::OK, "{}", deploying.body);
    let settled = nuage_tests::apps::container_settled(&tenant, &id, Duration::from_secs(60)).await;
    let written = std::path::Path::new("/var/tmp").join(&canary);
    if settled["status"] == "ready" {
        let answer = nuage_tests::get_json(format!("{}/", settled["endpoint"].as_str().unwrap())).await;
        let on_host = written.exists();
        let _ = std::fs::remove_file(&written);
        assert_eq!(
            answer["host_processes"], false,
            "the instance sees the host's processes: {answer}"
        );
        assert!(
            !on_host && answer["host_written"] == false,
            "the instance wrote on the host: {answer}"
        );
    } else {
        // Refused at deploy, naming the variable, is the other right answer.
        assert_eq!(settled["status"], "error", "{settled}");
        let message = settled["error_message"].as_str().unwrap_or_default();
        assert!(message.contains("SMUGGLED"), "{settled}");
        assert!(!written.exists(), "{settled}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_processes_open_files_and_tmp_are_limited() {
    // Limits other than nuage's own (its open files are not capped at 512 here).
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        config.runner.max_processes = 64;
        config.runner.max_open_files = 512;
    })
    .await;
    // 256 MB: 140 thousandths of a core.
    let (endpoint, _) = attacker(&tenant, "hog", json!({"memory_limit": 256})).await;

    let busy = "import time\nstart, cpu = time.time(), time.process_time()\n\
                while time.time() - start < 2: pass\n\
                print((time.process_time() - cpu) / (time.time() - start))";
    let (_, out, err) = run(&endpoint, json!({"py": busy})).await;
    let share: f64 = out.trim().parse().unwrap_or_else(|_| panic!("{out} {err}"));
    assert!(share < 0.3, "a busy loop got {share:.2} of a core (quota: 0.14)");

    let fork = "import subprocess\nstarted = []\n\
                for _ in range(200):\n    try: started.append(subprocess.Popen(['sleep', '30']))\n    except OSError: break\n\
                print(len(started))\nfor p in started: p.kill()";
    let (_, out, err) = run(&endpoint, json!({"py": fork})).await;
    let started: u32 = out.trim().parse().unwrap_or_else(|_| panic!("{out} {err}"));
    assert!(started > 0 && started < 64, "{started} processes started (limit 64)");

    let (_, out, _) = run(&endpoint, json!({"sh": "ulimit -n"})).await;
    assert_eq!(out.trim(), "512");
    let (status, _, err) = run(&endpoint, json!({"sh": "dd if=/dev/zero of=/tmp/fill bs=1M count=200"})).await;
    assert_ne!(status, 0);
    assert!(err.contains("No space left"), "/tmp is half of memory_limit: {err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gvisor_sandbox_runs_node_and_python_functions() {
    let (server, tenant) =
        TestServer::start_with_tenant(|config| config.runner.sandbox = nuage_runner::Sandbox::Gvisor).await;
    let code = b"exports.handle = async () => ({statusCode: 200, body: require('os').release()});";
    let function = deployed_node(&tenant, "gvisor-node", json!({"name": "hello"}), code).await;
    let answer = reqwest::get(function["endpoint"].as_str().unwrap()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let release = answer.text().await.unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(release.trim(), host.trim(), "gVisor's kernel answers, not the host's");

    let (endpoint, _) = attacker(&tenant, "gvisor-python", json!({})).await;
    let (status, out, err) = run(&endpoint, json!({"sh": "uname -r; id -u; cat /proc/net/dev"})).await;
    assert_eq!(status, 0, "{err}");
    assert!(!out.contains(host.trim()), "{out}");
    assert!(!out.lines().any(|line| line.trim().starts_with("eth")), "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_egress_reaches_public_addresses_and_nothing_private() {
    let (server, tenant) =
        TestServer::start_with_tenant(|config| config.runner.egress = nuage_runner::Egress::Public).await;
    // Made after nuage started (it reads the host's own networks at start, and blocks them):
    // a host at a private address, and one at an address outside every blocked range (TEST-NET-2
    // stands for the public Internet here).
    let private = TestHost::start("10.213.77", "private-host").await;
    let public = TestHost::start("198.51.100", "public-host").await;
    // The host's own address on that link, which it gained after nuage started and before the
    // function's instance starts (at its deploy): a service of the host's listens there,
    // counting who reaches it.
    let own = Witness::bind("198.51.100.1:0").await;
    let own_url = &own.url;
    let (endpoint, _) = attacker(&tenant, "egress", json!({})).await;
    let api = server.server().endpoints().api.unwrap().port();
    let probe = format!(
        "import urllib.request\n\
         open('/tmp/first-run', 'w').close()\n\
         for url in ['http://10.213.77.2:8000/', 'http://198.51.100.2:8000/', 'http://127.0.0.1:{api}/', '{own_url}']:\n    \
         try: print(url, urllib.request.urlopen(url, timeout=5).read().decode())\n    \
         except Exception as error: print(url, 'refused', error)"
    );
    let (status, out, err) = run(&endpoint, json!({"py": probe})).await;
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("http://198.51.100.2:8000/ public-host"), "{out}");
    assert!(out.contains("http://10.213.77.2:8000/ refused"), "{out}");
    assert!(out.contains(&format!("http://127.0.0.1:{api}/ refused")), "{out}");
    assert!(out.contains(&format!("{own_url} refused")), "{out}");
    assert_eq!(own.reached(), 0, "{out}");
    // An address the host gains while the instance runs: refused to it too, once the runner
    // saw the change (it follows the host's addresses; until then it may still be reached).
    let _later = TestHost::start("100.200.91", "later-host").await;
    let gained = Witness::bind("100.200.91.1:0").await;
    let gained_url = &gained.url;
    let probe = format!(
        "import os, urllib.request\n\
         print('instance', 'the same' if os.path.exists('/tmp/first-run') else 'another')\n\
         try: print('{gained_url}', urllib.request.urlopen('{gained_url}', timeout=5).read().decode())\n\
         except Exception as error: print('{gained_url}', 'refused', error)"
    );
    let (_, out, _) = eventually(
        Duration::from_secs(10),
        || run(&endpoint, json!({"py": probe.as_str()})),
        |(_, out, _): &(i64, String, String)| out.contains(&format!("{gained_url} refused")),
    )
    .await;
    assert!(out.contains(&format!("{gained_url} refused")), "{out}");
    assert!(out.contains("instance the same"), "the instance was replaced: {out}");
    let reached = gained.reached();
    let (_, out, _) = run(&endpoint, json!({"py": probe.as_str()})).await;
    assert!(out.contains(&format!("{gained_url} refused")), "{out}");
    assert_eq!(gained.reached(), reached, "{out}");
    // The filter is out of the instance's reach.
    let (_, out, _) = run(
        &endpoint,
        json!({"sh": "nft flush ruleset && echo FLUSHED; ip route del default && echo DELETED"}),
    )
    .await;
    assert!(!out.contains("FLUSHED") && !out.contains("DELETED"), "{out}");
    drop((private, public));
    server.stop().await;
}
