//! v1beta1 and secrets, attacked after review: secrets given twice in one request, bad inputs
//! in the fields v1beta1 adds to function bodies, and a gVisor instance's bundle left on disk
//! with its secrets opened.

use nuage_tests::apps::runtime;
use nuage_tests::conformance::Spec;
use nuage_tests::{Tenant, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

fn beta(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::FunctionsV1beta1, "fr-par")
}

/// Returns a ready namespace of `tenant`'s and a function (not deployed) in it.
async fn namespace_and_function(tenant: &Tenant) -> (String, String) {
    let created = tenant.post("/namespaces", json!({"name": "probe"})).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let namespace_id = created.body["id"].as_str().unwrap().to_owned();
    tenant
        .poll_until(&format!("/namespaces/{namespace_id}"), Duration::from_secs(10), |a| {
            a.body["status"] == "ready"
        })
        .await;
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
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}: {}", answer.body);
    assert_eq!(answer.body["type"], "invalid_arguments", "{what}: {}", answer.body);
    assert_eq!(
        answer.body["details"][0]["argument_name"], argument,
        "{what}: {}",
        answer.body
    );
}

#[tokio::test]
async fn a_secret_given_twice_in_one_request_is_refused_by_name_and_changes_nothing() {
    let server = TestServer::start().await;
    let tenant = beta(&server.tenant().await);
    let (namespace_id, function_id) = namespace_and_function(&tenant).await;
    let before = tenant.get(&format!("/functions/{function_id}")).await.body;
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
    let server = TestServer::start().await;
    let tenant = beta(&server.tenant().await);
    let (namespace_id, function_id) = namespace_and_function(&tenant).await;
    let before = tenant.get(&format!("/functions/{function_id}")).await.body;
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
