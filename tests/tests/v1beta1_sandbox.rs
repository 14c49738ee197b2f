//! A sandbox per function and container (`sandbox`: `v1` bubblewrap, `v2` gVisor, unset or
//! `unknown_sandbox` the installation's default): each instance shows, from the inside, the
//! kernel of the sandbox it asked for; a change of sandbox rolls the application out in the
//! new one; a sandbox the installation does not offer is refused at the API, naming `sandbox`,
//! and a runner that stopped offering one refuses to start an instance rather than run it in
//! another.

use nuage_runner::{Sandbox, SandboxKind};
use nuage_tests::apps::{deploy, push_server_image, runtime, settled_within, upload, zip};
use nuage_tests::conformance::Spec;
use nuage_tests::{Answer, Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Answers with the kernel it runs on (`/proc/version`) and its own `/proc/self/status`.
const KERNEL_JS: &[u8] = br#"
const fs = require('fs');
exports.handle = async () => ({
  statusCode: 200,
  headers: {'Content-Type': 'application/json'},
  body: JSON.stringify({
    version: fs.readFileSync('/proc/version', 'utf8').trim(),
    status: fs.readFileSync('/proc/self/status', 'utf8'),
  }),
});
"#;

/// The same, as a container image's static server.
const KERNEL_GO: &str = r#"package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		version, _ := os.ReadFile("/proc/version")
		status, _ := os.ReadFile("/proc/self/status")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"version": strings.TrimSpace(string(version)),
			"status":  string(status),
		})
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		panic(err)
	}
}
"#;

fn beta(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::FunctionsV1beta1, "fr-par")
}

/// Starts a server offering both sandboxes, with `default` for applications that name none.
/// Fails (rather than skips) where `bwrap` or `runsc` is missing: `.ci/run` installs both.
async fn server_offering_both(default: Sandbox) -> TestServer {
    TestServer::start_with(|config| {
        config.runner.sandbox = default;
        config.runner.sandboxes = Some(SandboxKind::ALL.to_vec());
    })
    .await
}

/// Returns the id of a new ready namespace of `tenant`'s.
async fn ready_namespace(tenant: &Tenant, name: &str) -> String {
    let id = tenant.create("/namespaces", json!({"name": name})).await;
    tenant.wait_ready(&id).await;
    id
}

/// Creates function `name` running [`KERNEL_JS`] with `sandbox` (left out when null) in
/// `namespace_id`, uploads its code and deploys it; returns its create answer.
async fn kernel_function(tenant: &Tenant, namespace_id: &str, name: &str, sandbox: Value) -> Value {
    let created = post_node_function(tenant, namespace_id, name, sandbox).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    upload(tenant, id, zip(&[("handler.js", KERNEL_JS)])).await;
    deploy(tenant, id).await;
    created.body
}

/// Asks `tenant` to create function `name` on the node runtime in namespace `namespace_id`, in
/// `sandbox` (none named when null); returns the answer.
async fn post_node_function(tenant: &Tenant, namespace_id: &str, name: &str, sandbox: Value) -> Answer {
    let node = runtime(tenant, "node").await;
    let mut body = json!({"namespace_id": namespace_id, "name": name, "runtime": node});
    if !sandbox.is_null() {
        body["sandbox"] = sandbox;
    }
    tenant.post("/functions", body).await
}

/// Waits until function `id` is ready; returns it.
async fn ready(tenant: &Tenant, id: &str) -> Value {
    let done = settled_within(tenant, id, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "ready", "{done}");
    done
}

/// Returns which sandbox the instance answering at `url` runs in, as seen from inside it:
/// `v1` where it sees the host's own kernel, held by a syscall filter without new privileges
/// (bubblewrap, not a plain process), `v2` where it sees another kernel (gVisor's).
async fn sandbox_seen(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let inside: Value = response.json().await.unwrap();
    let host = std::fs::read_to_string("/proc/version").unwrap();
    let (version, status) = (inside["version"].as_str().unwrap(), inside["status"].as_str().unwrap());
    if version == host.trim() {
        assert!(
            status.contains("Seccomp:\t2") && status.contains("NoNewPrivs:\t1"),
            "the host's kernel without bubblewrap's filter: a plain process?\n{status}"
        );
        "v1".to_owned()
    } else {
        assert!(version.starts_with("Linux version"), "{version}");
        "v2".to_owned()
    }
}

/// Returns the URL of a v1beta1 function (its `domain_name`).
fn url_of(function: &Value) -> String {
    format!("http://{}", function["domain_name"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_and_a_v2_function_each_run_in_their_sandbox_and_unknown_sandbox_in_the_default() {
    let server = server_offering_both(Sandbox::Bubblewrap).await;
    let alpha = server.tenant().await;
    let tenant = beta(&alpha);
    let namespace_id = ready_namespace(&tenant, "boxes").await;
    // gVisor first: the functions below run the same image (the same code, built alike), whose
    // unpacked copy the runner shares between instances of either sandbox; what one instance
    // did to it must not break the next.
    let first = kernel_function(&tenant, &namespace_id, "first", json!("v2")).await;
    let first = ready(&tenant, first["id"].as_str().unwrap()).await;
    assert_eq!(sandbox_seen(&url_of(&first)).await, "v2");
    let cases = [
        ("bubble", json!("v1"), "v1"),
        ("visor", json!("v2"), "v2"),
        ("either", json!("unknown_sandbox"), "v1"),
        ("unset", Value::Null, "v1"),
    ];
    let mut functions = Vec::new();
    for (name, sandbox, shown) in cases {
        let created = kernel_function(&tenant, &namespace_id, name, sandbox).await;
        assert_eq!(created["sandbox"], shown, "{name}: {created}");
        functions.push((created["id"].as_str().unwrap().to_owned(), shown));
    }
    for (id, shown) in &functions {
        let function = ready(&tenant, id).await;
        assert_eq!(function["sandbox"], *shown, "{function}");
        assert_eq!(sandbox_seen(&url_of(&function)).await, *shown, "{function}");
    }
    // A v1alpha2 body may name the sandbox too: the same field, the same function.
    let created = post_node_function(&alpha, &namespace_id, "alpha", json!("v2")).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(tenant.get(&format!("/functions/{id}")).await.body["sandbox"], "v2");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_sandbox_rolls_the_function_out_in_the_new_one() {
    let server = server_offering_both(Sandbox::Bubblewrap).await;
    let tenant = beta(&server.tenant().await);
    let namespace_id = ready_namespace(&tenant, "moving").await;
    let created = kernel_function(&tenant, &namespace_id, "mover", json!("v1")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let function = ready(&tenant, &id).await;
    let url = url_of(&function);
    assert_eq!(sandbox_seen(&url).await, "v1");

    // Go clients' zero value changes nothing, and so redeploys nothing.
    let kept = tenant
        .patch(&format!("/functions/{id}"), json!({"sandbox": "unknown_sandbox"}))
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    assert_eq!(
        (&kept.body["sandbox"], &kept.body["status"]),
        (&json!("v1"), &json!("ready"))
    );

    let moved = tenant
        .patch(&format!("/functions/{id}"), json!({"sandbox": "v2"}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["sandbox"], "v2");
    assert_eq!(
        moved.body["status"], "pending",
        "a new sandbox is rolled out: {}",
        moved.body
    );
    let function = ready(&tenant, &id).await;
    assert_eq!(function["sandbox"], "v2");
    // The router drains the bubblewrap instance once it learns of the new version.
    let seen = eventually(
        Duration::from_secs(10),
        || sandbox_seen(&url),
        |seen: &String| seen == "v2",
    )
    .await;
    assert_eq!(seen, "v2", "after the roll-out the function runs under gVisor");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_sandbox_and_one_not_offered_are_refused_naming_sandbox() {
    let (server, alpha) = TestServer::start_with_tenant(|config| {
        config.runner.sandbox = Sandbox::Bubblewrap;
        config.runner.sandboxes = Some(vec![SandboxKind::Bubblewrap]);
    })
    .await;
    let tenant = beta(&alpha);
    let namespace_id = ready_namespace(&tenant, "picky").await;
    let node = runtime(&tenant, "node").await;
    for (sandbox, says) in [
        (json!("v2"), "not offered"),
        (json!("v3"), "not one of v1, v2"),
        (json!(2), "invalid type"),
    ] {
        let body = json!({"namespace_id": namespace_id, "name": "refused", "runtime": node, "sandbox": sandbox});
        for client in [&tenant, &alpha] {
            let refused = client.post("/functions", body.clone()).await;
            assert_eq!(refused.refused_argument(), "sandbox", "{sandbox}: {}", refused.body);
            assert!(refused.body.to_string().contains(says), "{sandbox}: {}", refused.body);
        }
    }
    let listed = tenant.get(&format!("/functions?namespace_id={namespace_id}")).await;
    assert_eq!(listed.body["total_count"], 0, "nothing was made: {}", listed.body);

    let created = post_node_function(&tenant, &namespace_id, "kept", json!("v1")).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let before = tenant.get(&format!("/functions/{id}")).await.body;
    let refused = tenant
        .patch(&format!("/functions/{id}"), json!({"sandbox": "v2"}))
        .await;
    assert_eq!(refused.refused_argument(), "sandbox", "{}", refused.body);
    assert!(
        refused.body["details"][0]["help_message"]
            .as_str()
            .is_some_and(|help| help.contains("gVisor") && help.contains("offers v1")),
        "{}",
        refused.body
    );
    assert_eq!(tenant.get(&format!("/functions/{id}")).await.body, before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_offering_only_gvisor_runs_functions_naming_none_under_it_and_refuses_v1() {
    let server = TestServer::start_with(|config| {
        config.runner.sandbox = Sandbox::Gvisor;
        config.runner.sandboxes = Some(vec![SandboxKind::Gvisor]);
    })
    .await;
    let tenant = beta(&server.tenant().await);
    let namespace_id = ready_namespace(&tenant, "visored").await;
    let created = kernel_function(&tenant, &namespace_id, "default", json!("unknown_sandbox")).await;
    assert_eq!(created["sandbox"], "v2", "the default is shown: {created}");
    let function = ready(&tenant, created["id"].as_str().unwrap()).await;
    assert_eq!(sandbox_seen(&url_of(&function)).await, "v2");
    let refused = post_node_function(&tenant, &namespace_id, "weaker", json!("v1")).await;
    assert_eq!(refused.refused_argument(), "sandbox", "{}", refused.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_no_longer_offers_a_functions_sandbox_refuses_to_start_it_in_another() {
    let mut server = server_offering_both(Sandbox::Bubblewrap).await;
    let alpha = server.tenant().await;
    let tenant = beta(&alpha);
    let namespace_id = ready_namespace(&tenant, "stranded").await;
    let created = kernel_function(&tenant, &namespace_id, "visor", json!("v2")).await;
    let function = ready(&tenant, created["id"].as_str().unwrap()).await;
    let url = url_of(&function);
    assert_eq!(sandbox_seen(&url).await, "v2");

    // The operator takes gVisor off this machine's offer and restarts nuage.
    server.take_server().shutdown().await.expect("clean shutdown");
    let mut config = server.config.clone();
    config.runner.sandboxes = Some(vec![SandboxKind::Bubblewrap]);
    let restarted = nuage::start(config).await.expect("server restarts");
    let router = format!("http://{}", restarted.endpoints().functions.unwrap());
    let path = url.splitn(4, '/').nth(3).unwrap();
    let response = reqwest::get(format!("{router}/{path}")).await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body.contains("the sandbox `gvisor` is not offered by this runner"),
        "the instance is refused, not run under bubblewrap: {body}"
    );
    restarted.shutdown().await.expect("clean shutdown");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_run_in_the_sandbox_they_name() {
    // The container image is a Go static binary; .ci/run installs Go.
    let binary = nuage_tests::go_server_or_skip!(KERNEL_GO);
    let server = server_offering_both(Sandbox::Bubblewrap).await;
    let tenant = server.tenant().await;
    let namespace = tenant.create_namespace("boxed").await;
    let namespace = tenant.wait_ready(namespace["id"].as_str().unwrap()).await;
    // The image goes to the namespace's repository (an OCI layout of the embedded registry).
    let image = push_server_image(
        &server,
        namespace["registry_endpoint"].as_str().unwrap(),
        "kernel",
        &binary,
    );
    let mut ids = Vec::new();
    for (name, sandbox) in [("bubble", "v1"), ("visor", "v2")] {
        // Through v1alpha2, whose bodies may name the sandbox as v1beta1's do.
        let id = tenant
            .create(
                "/containers",
                json!({"name": name, "namespace_id": namespace["id"], "registry_image": image, "sandbox": sandbox}),
            )
            .await;
        let deploying = tenant.post(&format!("/containers/{id}/deploy"), json!({})).await;
        assert_eq!(deploying.status, StatusCode::OK, "{}", deploying.body);
        ids.push((id, sandbox));
    }
    for (id, sandbox) in ids {
        let container = tenant
            .poll_until(&format!("/containers/{id}"), Duration::from_secs(60), |answer| {
                answer.body["status"] != "pending"
            })
            .await
            .body;
        assert_eq!(container["status"], "ready", "{container}");
        assert_eq!(
            sandbox_seen(container["endpoint"].as_str().unwrap()).await,
            sandbox,
            "{container}"
        );
    }
    server.stop().await;
}
