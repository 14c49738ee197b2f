//! Scaleway Functions v1beta1 (`/functions/v1beta1/regions/{region}`): namespaces, functions,
//! runtimes, upload and download URLs and deploys, over the same services as v1alpha2. Every
//! 200 body is checked against Scaleway's v1beta1 spec, and a resource made through one version
//! is read, changed and deleted through the other.

use nuage_tests::apps::{deploy, runtime, settled_within, upload, zip};
use nuage_tests::conformance::Spec;
use nuage_tests::{Tenant, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const HELLO_JS: &[u8] = b"exports.handle = async () => ({statusCode: 200, body: 'beta'});\n";

fn beta(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::FunctionsV1beta1, "fr-par")
}

/// Checks an RFC 3339 UTC timestamp as Scaleway writes it (`2026-07-03T15:02:02.663407Z`).
fn assert_timestamp(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("a timestamp, got {value}"));
    assert!(
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
            && text.ends_with('Z'),
        "{text}"
    );
}

/// Returns the field `id` of a 200 answer.
fn id_of(answer: &nuage_tests::Answer) -> String {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_namespace_and_function_made_through_v1beta1_run_and_are_the_same_through_v1alpha2() {
    let (server, alpha) = TestServer::with_tenant().await;
    let beta = beta(&alpha);

    // As the Python SDK sends it: `project_id` always present, null without a default.
    let created = beta
        .post(
            "/namespaces",
            json!({"name": "shop", "project_id": null, "environment_variables": {"MODE": "prod"},
                   "tags": ["blue", "team a"], "secret_environment_variables": []}),
        )
        .await;
    let namespace_id = id_of(&created);
    assert_eq!(created.body["status"], "pending");
    assert_eq!(created.body["project_id"], alpha.project_id.to_string());
    assert_eq!(created.body["organization_id"], alpha.organization_id.to_string());
    assert_eq!(created.body["tags"], json!(["blue", "team a"]));
    assert_eq!(created.body["error_message"], Value::Null);
    assert_timestamp(&created.body["created_at"]);
    let ready = beta.wait_ready(&namespace_id).await;
    assert!(!ready["registry_endpoint"].as_str().unwrap().is_empty(), "{ready}");

    // The same namespace through v1alpha2: changed there, seen here, and the other way round.
    let through_alpha = alpha
        .patch(
            &format!("/namespaces/{namespace_id}"),
            json!({"description": "from alpha"}),
        )
        .await;
    assert_eq!(through_alpha.status, StatusCode::OK, "{}", through_alpha.body);
    let seen = beta.get(&format!("/namespaces/{namespace_id}")).await.body;
    assert_eq!(seen["description"], "from alpha");
    assert_eq!(
        seen["tags"],
        json!(["blue", "team a"]),
        "a v1alpha2 change keeps the tags"
    );
    let retagged = beta
        .patch(&format!("/namespaces/{namespace_id}"), json!({"tags": ["green"]}))
        .await;
    assert_eq!(retagged.body["tags"], json!(["green"]));
    assert_eq!(retagged.body["environment_variables"], json!({"MODE": "prod"}));
    let listed = beta.get("/namespaces?name=shop&order_by=name_desc").await.body;
    assert_eq!(listed["total_count"], 1, "{listed}");

    // A function with the Go SDK's duration and zero values.
    let node = runtime(&beta, "node").await;
    let created = beta
        .post(
            "/functions",
            json!({"namespace_id": namespace_id, "name": "hello", "runtime": node,
                   "timeout": "10.000000000s", "privacy": "unknown_privacy",
                   "http_option": "unknown_http_option", "sandbox": "unknown_sandbox",
                   "tags": ["fn"], "secret_environment_variables": []}),
        )
        .await;
    let function_id = id_of(&created);
    let function = &created.body;
    assert_eq!(function["status"], "created");
    assert_eq!(function["timeout"], "10s");
    assert_eq!(function["privacy"], "public");
    assert_eq!(function["http_option"], "enabled");
    assert_eq!(function["ready_at"], Value::Null);
    assert_eq!(function["build_message"], Value::Null);
    assert_eq!(function["tags"], json!(["fn"]));
    assert_eq!(function["secret_environment_variables"], json!([]));
    assert_timestamp(&function["created_at"]);
    let domain_name = function["domain_name"].as_str().unwrap().to_owned();
    assert!(!domain_name.contains("://"), "a host name, not a URL: {domain_name}");

    // v1alpha2 sees the same function, with its timeout in milliseconds.
    let same = alpha.get(&format!("/functions/{function_id}")).await.body;
    assert_eq!(same["timeout"], 10_000);
    assert_eq!(same["name"], "hello");

    // v1beta1 signs the upload for its size, which it requires.
    let unsized_upload = beta.get(&format!("/functions/{function_id}/upload-url")).await;
    assert_eq!(unsized_upload.refused_argument(), "content_length");
    upload(&beta, &function_id, zip(&[("handler.js", HELLO_JS)])).await;
    deploy(&beta, &function_id).await;
    let ready = settled_within(&beta, &function_id, Duration::from_secs(60)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_timestamp(&ready["ready_at"]);
    let download = beta.get(&format!("/functions/{function_id}/download-url")).await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.body);

    // It answers at its domain name.
    let answer = reqwest::get(format!("http://{domain_name}")).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "beta");

    // Lists need the namespace, as the spec says.
    let unfiltered = beta.get("/functions").await;
    assert_eq!(unfiltered.refused_argument(), "namespace_id");
    let listed = beta.get(&format!("/functions?namespace_id={namespace_id}")).await.body;
    assert_eq!(listed["total_count"], 1, "{listed}");

    // Deleted through v1alpha2, gone through v1beta1.
    let deleting = alpha.delete(&format!("/functions/{function_id}")).await;
    assert_eq!(deleting.status, StatusCode::OK, "{}", deleting.body);
    beta.wait_gone(&format!("/functions/{function_id}"), Duration::from_secs(20))
        .await;
    let deleting = beta.delete(&format!("/namespaces/{namespace_id}")).await;
    assert_eq!(deleting.body["status"], "deleting");
    alpha
        .wait_gone(&format!("/namespaces/{namespace_id}"), Duration::from_secs(20))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn go_clients_zero_values_leave_things_unchanged_and_what_is_not_offered_is_refused_by_name() {
    let (server, alpha) = TestServer::with_tenant().await;
    let beta = beta(&alpha);
    let namespace_id = id_of(&beta.post("/namespaces", json!({"name": "zero"})).await);
    beta.wait_ready(&namespace_id).await;
    let node = runtime(&beta, "node").await;
    let created = beta
        .post(
            "/functions",
            json!({"namespace_id": namespace_id, "name": "kept", "runtime": node, "privacy": "private",
                   "tags": ["a"], "timeout": "2.5s"}),
        )
        .await;
    let function_id = id_of(&created);
    assert_eq!(created.body["timeout"], "2.5s");

    // What Terraform and the CLI send on PATCH: every enum's zero value and nulls.
    let patched = beta
        .patch(
            &format!("/functions/{function_id}"),
            json!({"runtime": "unknown_runtime", "privacy": "unknown_privacy",
                   "http_option": "unknown_http_option", "sandbox": "unknown_sandbox",
                   "secret_environment_variables": null, "tags": null, "description": "d"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["runtime"], node.as_str());
    assert_eq!(patched.body["privacy"], "private");
    assert_eq!(patched.body["tags"], json!(["a"]));
    assert_eq!(patched.body["description"], "d");

    // Each refusal names its argument and changes nothing.
    // Sandboxes not offered are refused too: `v1beta1_sandbox.rs`.
    let sandbox = patched.body["sandbox"].as_str().unwrap().to_owned();
    for (body, argument) in [
        (json!({"http_option": "redirected"}), "http_option"),
        (json!({"http_option": "sometimes"}), "http_option"),
        (json!({"sandbox": "v3"}), "sandbox"),
        (
            json!({"secret_environment_variables": [{"key": "SCW_K", "value": "v"}]}),
            "secret_environment_variables.SCW_K",
        ),
        (
            json!({"secret_environment_variables": [{"key": "1BAD", "value": "v"}]}),
            "secret_environment_variables.1BAD",
        ),
        (
            json!({"private_network_id": "5c3bb4d1-76b6-4a04-9b49-35c3c1b0a8a1"}),
            "private_network_id",
        ),
        (json!({"tags": [""]}), "tags.0"),
        (json!({"timeout": "soon"}), "timeout"),
    ] {
        let refused = beta.patch(&format!("/functions/{function_id}"), body.clone()).await;
        assert_eq!(refused.refused_argument(), argument, "{body}: {}", refused.body);
    }
    let same = beta
        .patch(&format!("/functions/{function_id}"), json!({"sandbox": sandbox}))
        .await;
    assert_eq!(
        same.status,
        StatusCode::OK,
        "the installation's own sandbox is accepted: {}",
        same.body
    );
    let unchanged = beta.get(&format!("/functions/{function_id}")).await.body;
    assert_eq!(unchanged["tags"], json!(["a"]));
    assert_eq!(unchanged["secret_environment_variables"], json!([]));
    assert_eq!(unchanged["timeout"], "2.5s");
    let secret_namespace = beta
        .post(
            "/namespaces",
            json!({"name": "secretive", "secret_environment_variables": [{"key": "bad-name", "value": "v"}]}),
        )
        .await;
    assert_eq!(
        secret_namespace.refused_argument(),
        "secret_environment_variables.bad-name"
    );
    assert_eq!(beta.get("/namespaces?name=secretive").await.body["total_count"], 0);

    // v1beta1's regions; others are refused by name.
    let amsterdam = alpha.speaking(Spec::FunctionsV1beta1, "nl-ams");
    assert_eq!(amsterdam.get("/namespaces").await.body["total_count"], 0);
    let nowhere = alpha.speaking(Spec::FunctionsV1beta1, "xx-nowhere");
    let refused = nowhere.get("/namespaces").await;
    assert_eq!(refused.refused_argument(), "region");

    // Runtimes are described, each with the handler it calls by default.
    let runtimes = beta.get("/runtimes").await.body;
    let described = runtimes["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|runtime| runtime["name"] == node.as_str())
        .unwrap()
        .clone();
    assert_eq!(described["language"], "Node");
    assert_eq!(described["default_handler"], "handler.handle");
    assert_eq!(described["extension"], "js");
    assert_eq!(runtimes["total_count"], runtimes["runtimes"].as_array().unwrap().len());
    server.stop().await;
}

#[tokio::test]
async fn another_tenant_cannot_reach_a_tenants_resources_through_v1beta1() {
    let server = TestServer::start().await;
    let owner = beta(&server.tenant().await);
    let intruder = beta(&server.tenant().await);
    let namespace_id = id_of(
        &owner
            .post("/namespaces", json!({"name": "mine", "tags": ["secret"]}))
            .await,
    );
    owner.wait_ready(&namespace_id).await;
    let node = runtime(&owner, "node").await;
    let function_id = id_of(
        &owner
            .post(
                "/functions",
                json!({"namespace_id": namespace_id, "name": "private-fn", "runtime": node}),
            )
            .await,
    );

    for path in [
        format!("/namespaces/{namespace_id}"),
        format!("/functions/{function_id}"),
        format!("/functions/{function_id}/upload-url?content_length=10"),
        format!("/functions/{function_id}/download-url"),
    ] {
        let answer = intruder.get(&path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {}", answer.body);
    }
    let changed = intruder
        .patch(&format!("/functions/{function_id}"), json!({"tags": ["mine now"]}))
        .await;
    assert_eq!(changed.status, StatusCode::NOT_FOUND);
    let deleted = intruder.delete(&format!("/namespaces/{namespace_id}")).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    let in_their_namespace = intruder
        .post(
            "/functions",
            json!({"namespace_id": namespace_id, "name": "squatter", "runtime": node}),
        )
        .await;
    assert_eq!(
        in_their_namespace.status,
        StatusCode::NOT_FOUND,
        "{}",
        in_their_namespace.body
    );
    // Listing by the owner's project or namespace shows nothing of theirs.
    let by_project = intruder
        .get(&format!("/namespaces?project_id={}", owner.project_id))
        .await;
    assert_eq!(by_project.body["total_count"], 0);
    let by_namespace = intruder.get(&format!("/functions?namespace_id={namespace_id}")).await;
    assert_eq!(by_namespace.body["total_count"], 0, "{}", by_namespace.body);
    // Nothing changed for the owner.
    let mine = owner.get(&format!("/functions/{function_id}")).await.body;
    assert_eq!(mine["tags"], json!([]));
    assert_eq!(
        owner.get(&format!("/namespaces/{namespace_id}")).await.body["status"],
        "ready"
    );
    server.stop().await;
}

const ENVIRONMENT_JS: &[u8] = b"exports.handle = async () => ({statusCode: 200, body: JSON.stringify({\
ns: process.env.NS_SECRET ?? null, fn: process.env.FN_SECRET ?? null, shared: process.env.SHARED ?? null, \
other: process.env.NS_OTHER ?? null})});\n";

/// Returns the keys of a `secret_environment_variables` answer, checking each hash is an
/// argon2id hash of `values[key]`.
fn hashed_keys(secrets: &Value, values: &[(&str, &str)]) -> Vec<String> {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    secrets
        .as_array()
        .unwrap()
        .iter()
        .map(|secret| {
            let key = secret["key"].as_str().unwrap();
            let hash = PasswordHash::new(secret["hashed_value"].as_str().unwrap()).unwrap();
            assert_eq!(hash.algorithm.as_str(), "argon2id");
            let value = values.iter().find(|(name, _)| *name == key).unwrap().1;
            assert!(
                argon2::Argon2::default()
                    .verify_password(value.as_bytes(), &hash)
                    .is_ok(),
                "{key}'s hash is of its value"
            );
            key.to_owned()
        })
        .collect()
}

#[tokio::test]
async fn secrets_are_write_only_sealed_at_rest_merged_on_update_and_reach_the_function() {
    let (server, alpha) = TestServer::with_tenant().await;
    let beta = beta(&alpha);
    let created = beta
        .post(
            "/namespaces",
            json!({"name": "vault", "environment_variables": {"SHARED": "plain"},
                   "secret_environment_variables": [{"key": "NS_SECRET", "value": "ns-hush-1"},
                                                    {"key": "NS_OTHER", "value": "ns-hush-other"}]}),
        )
        .await;
    let namespace_id = id_of(&created);
    assert_eq!(
        hashed_keys(
            &created.body["secret_environment_variables"],
            &[("NS_SECRET", "ns-hush-1"), ("NS_OTHER", "ns-hush-other")]
        ),
        ["NS_OTHER", "NS_SECRET"]
    );
    beta.wait_ready(&namespace_id).await;
    let node = runtime(&beta, "node").await;
    let created = beta
        .post(
            "/functions",
            json!({"namespace_id": namespace_id, "name": "reader", "runtime": node,
                   "secret_environment_variables": [{"key": "FN_SECRET", "value": "fn-hush-1"},
                                                    {"key": "SHARED", "value": "fn-hush-shared"}]}),
        )
        .await;
    let function_id = id_of(&created);
    hashed_keys(
        &created.body["secret_environment_variables"],
        &[("FN_SECRET", "fn-hush-1"), ("SHARED", "fn-hush-shared")],
    );
    upload(&beta, &function_id, zip(&[("handler.js", ENVIRONMENT_JS)])).await;
    deploy(&beta, &function_id).await;
    let ready = settled_within(&beta, &function_id, Duration::from_secs(60)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let call = || async {
        let domain_name = ready["domain_name"].as_str().unwrap();
        let answer = reqwest::get(format!("http://{domain_name}")).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        answer.json::<Value>().await.unwrap()
    };
    // A secret overrides a plain variable of the same name.
    assert_eq!(
        call().await,
        json!({"ns": "ns-hush-1", "fn": "fn-hush-1", "shared": "fn-hush-shared", "other": "ns-hush-other"})
    );

    // Merged on update: a key with no value goes, one with a value changes, the rest stay.
    let changed = beta
        .patch(
            &format!("/namespaces/{namespace_id}"),
            json!({"secret_environment_variables": [{"key": "NS_OTHER"}, {"key": "NS_SECRET", "value": "ns-hush-2"}]}),
        )
        .await;
    assert_eq!(
        hashed_keys(
            &changed.body["secret_environment_variables"],
            &[("NS_SECRET", "ns-hush-2")]
        ),
        ["NS_SECRET"]
    );
    let changed = beta
        .patch(
            &format!("/functions/{function_id}"),
            json!({"secret_environment_variables": [{"key": "SHARED", "value": null}], "description": "redeploy"}),
        )
        .await;
    assert_eq!(
        hashed_keys(
            &changed.body["secret_environment_variables"],
            &[("FN_SECRET", "fn-hush-1")]
        ),
        ["FN_SECRET"]
    );
    deploy(&beta, &function_id).await;
    let ready = settled_within(&beta, &function_id, Duration::from_secs(60)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        call().await,
        json!({"ns": "ns-hush-2", "fn": "fn-hush-1", "shared": "plain", "other": null})
    );

    // No answer of either version ever carries a value, nor does any row at rest.
    for answer in [
        beta.get(&format!("/namespaces/{namespace_id}")).await,
        beta.get(&format!("/functions/{function_id}")).await,
        beta.get("/namespaces").await,
        beta.get(&format!("/functions?namespace_id={namespace_id}")).await,
        alpha.get(&format!("/functions/{function_id}")).await,
        alpha.get(&format!("/namespaces/{namespace_id}")).await,
    ] {
        assert!(!answer.body.to_string().contains("hush"), "{}", answer.body);
    }
    for table in [
        "namespaces",
        "functions",
        "runner_applications",
        "deployments",
        "build_jobs",
    ] {
        let found = nuage_tests::rows_containing(&server.database_url(), table, "hush").await;
        assert!(found.is_empty(), "secrets in clear at rest: {found:?}");
    }
    // Another tenant sees none of it.
    let other = beta_of(&server).await;
    assert_eq!(
        other.get(&format!("/namespaces/{namespace_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

async fn beta_of(server: &TestServer) -> Tenant {
    beta(&server.tenant().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_secret_changes_to_one_namespace_are_all_kept() {
    let server = TestServer::start().await;
    let beta = beta(&server.tenant().await);
    let namespace_id = id_of(&beta.post("/namespaces", json!({"name": "busy"})).await);
    // Each request adds its own secret; merged from what each read, none may undo another.
    let mut patches = tokio::task::JoinSet::new();
    for index in 0..6 {
        let beta = beta.clone();
        let path = format!("/namespaces/{namespace_id}");
        patches.spawn(async move {
            let key = format!("KEY_{index}");
            beta.patch(
                &path,
                json!({"secret_environment_variables": [{"key": key, "value": "v"}]}),
            )
            .await
        });
    }
    while let Some(answer) = patches.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let kept = beta.get(&format!("/namespaces/{namespace_id}")).await.body;
    let keys = nuage_tests::fields(&kept["secret_environment_variables"], "key");
    assert_eq!(keys, ["KEY_0", "KEY_1", "KEY_2", "KEY_3", "KEY_4", "KEY_5"]);
    server.stop().await;
}
