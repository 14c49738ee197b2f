//! v1beta1 and secrets, attacked after review: secrets given twice in one request, bad inputs
//! in the fields v1beta1 adds to function bodies, and a gVisor instance's bundle left on disk
//! with its secrets opened.

use nuage_tests::apps::{deployed, runtime};
use nuage_tests::conformance::Spec;
use nuage_tests::{Tenant, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

fn beta(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::FunctionsV1beta1, "fr-par")
}

/// Starts a server with a tenant speaking v1beta1 that has a ready namespace and a function (not
/// deployed) in it; returns them, the ids of both and the function as it is before the test.
async fn with_namespace_and_function() -> (TestServer, Tenant, String, String, Value) {
    let server = TestServer::start().await;
    let tenant = beta(&server.tenant().await);
    let (namespace_id, function_id) = namespace_and_function(&tenant).await;
    let before = tenant.get(&format!("/functions/{function_id}")).await.body;
    (server, tenant, namespace_id, function_id, before)
}

/// Returns a ready namespace of `tenant`'s and a function (not deployed) in it.
async fn namespace_and_function(tenant: &Tenant) -> (String, String) {
    let namespace_id = tenant.create("/namespaces", json!({"name": "probe"})).await;
    tenant.wait_ready(&namespace_id).await;
    let node = runtime(tenant, "node").await;
    let created = tenant
        .post(
            "/functions",
            json!({"namespace_id": namespace_id, "name": "probe", "runtime": node,
                   "secret_environment_variables": [{"key": "KEPT", "value": "v"}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    (namespace_id, created.body["id"].as_str().unwrap().to_owned())
}

/// Checks a 400 naming `argument` first.
fn assert_refused(answer: &nuage_tests::Answer, argument: &str, what: &Value) {
    assert_eq!(answer.refused_argument(), argument, "{what}: {}", answer.body);
}

#[tokio::test]
async fn a_secret_given_twice_in_one_request_is_refused_by_name_and_changes_nothing() {
    let (server, tenant, namespace_id, function_id, before) = with_namespace_and_function().await;
    for (path, body) in [
        (
            format!("/functions/{function_id}"),
            json!({"secret_environment_variables": [{"key": "KEPT", "value": "one"}, {"key": "KEPT"}]}),
        ),
        (
            format!("/namespaces/{namespace_id}"),
            json!({"secret_environment_variables": [{"key": "TWICE", "value": "1"}, {"key": "TWICE", "value": "2"}]}),
        ),
    ] {
        let refused = tenant.patch(&path, body.clone()).await;
        let key = body["secret_environment_variables"][0]["key"].as_str().unwrap();
        assert_refused(&refused, &format!("secret_environment_variables.{key}"), &body);
    }
    let created = tenant
        .post(
            "/namespaces",
            json!({"name": "twice", "secret_environment_variables": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]}),
        )
        .await;
    assert_refused(&created, "secret_environment_variables.A", &json!("create"));
    assert_eq!(tenant.get("/namespaces?name=twice").await.body["total_count"], 0);
    assert_eq!(tenant.get(&format!("/functions/{function_id}")).await.body, before);
    let namespace = tenant.get(&format!("/namespaces/{namespace_id}")).await.body;
    assert_eq!(namespace["secret_environment_variables"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn bad_v1beta1_fields_of_a_function_body_are_refused_naming_the_argument() {
    let (server, tenant, namespace_id, function_id, before) = with_namespace_and_function().await;
    let cases = [
        (json!({"tags": "x"}), "tags"),
        (json!({"tags": ["ok", 1]}), "tags[1]"),
        (
            json!({"secret_environment_variables": {"key": "A"}}),
            "secret_environment_variables",
        ),
        (
            json!({"secret_environment_variables": [{"key": null, "value": "v"}]}),
            "secret_environment_variables[0].key",
        ),
        (
            json!({"secret_environment_variables": [{"key": "A", "value": 3}]}),
            "secret_environment_variables[0].value",
        ),
        (json!({"sandbox": 2}), "sandbox"),
        (json!({"http_option": true}), "http_option"),
    ];
    for (body, argument) in &cases {
        let refused = tenant.patch(&format!("/functions/{function_id}"), body.clone()).await;
        assert_refused(&refused, argument, body);
        let mut create = body.clone();
        create["namespace_id"] = json!(namespace_id);
        create["name"] = json!("other");
        create["runtime"] = before["runtime"].clone();
        let refused = tenant.post("/functions", create.clone()).await;
        assert_refused(&refused, argument, &create);
    }
    assert_eq!(tenant.get(&format!("/functions/{function_id}")).await.body, before);
    let listed = tenant
        .get(&format!("/functions?namespace_id={namespace_id}"))
        .await
        .body;
    assert_eq!(listed["total_count"], 1, "{listed}");
    server.stop().await;
}

/// Returns the files under `directory` whose bytes contain `needle`.
fn files_containing(directory: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|entry| entry.path()));
            }
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|window| window == needle)
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gvisor_instance_leaves_no_file_of_its_own_with_its_secrets() {
    let server = TestServer::start_with(|config| config.runner.sandbox = nuage_runner::Sandbox::Gvisor).await;
    let tenant = beta(&server.tenant().await);
    let node = runtime(&tenant, "node").await;
    let code = b"exports.handle = async () => ({statusCode: 200, body: process.env.HUSH ?? 'none'});";
    let function = deployed(
        &tenant,
        "gvisor-secrets",
        json!({"name": "hello", "runtime": node,
               "secret_environment_variables": [{"key": "HUSH", "value": "gvisor-hush-value"}]}),
        &[("handler.js", code)],
    )
    .await;
    let endpoint = format!("http://{}", function["domain_name"].as_str().unwrap());
    let answer = reqwest::get(&endpoint).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.text().await.unwrap(),
        "gvisor-hush-value",
        "the instance has its secret"
    );
    // The instance runs on: the bundle it was started from has done its work.
    let instances = server.config.data_dir.join("runner").join("instances");
    assert!(instances.is_dir(), "{} holds the instances' files", instances.display());
    let left = files_containing(&instances, b"gvisor-hush-value");
    assert!(left.is_empty(), "secrets in clear on disk: {left:?}");
    let again = reqwest::get(&endpoint).await.unwrap();
    assert_eq!(again.text().await.unwrap(), "gvisor-hush-value");
    // Once it is deleted, runsc's own record of the instance (which holds its variables) is
    // gone too: the instance was torn down without its bundle.
    let function_id = function["id"].as_str().unwrap();
    let deleted = tenant.delete(&format!("/functions/{function_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let data_dir = server.config.data_dir.clone();
    let left = nuage_tests::eventually(
        Duration::from_secs(20),
        || {
            let data_dir = data_dir.clone();
            async move { files_containing(&data_dir, b"gvisor-hush-value") }
        },
        Vec::is_empty,
    )
    .await;
    assert!(left.is_empty(), "secrets in clear on disk after the delete: {left:?}");
    server.stop().await;
}
