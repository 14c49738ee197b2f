//! What the Serverless plugin (serverless-scaleway-functions 0.5.0) calls on functions and
//! containers v1beta1 beyond Scaleway's specs (reference serverless-plugin.md §2.11, §2.12,
//! §2.14): the nested lists `/namespaces/{id}/functions|containers`, `/issue-jwt` (with the
//! unencoded date the plugin sends, and a container's id as `function_id`), and
//! `/functions/{id}/logs` and `/containers/{id}/logs`, newest first. Tokens they issue open
//! the private function or container through the router; a PATCH naming the function's own
//! runtime (as the plugin's second deploy sends) changes nothing; bad inputs name their argument;
//! another tenant reaches none of it, and a function's id is no container's.

use nuage_tests::apps::{deployed_private_node, push_server_image, runtime};
use nuage_tests::conformance::Spec;
use nuage_tests::{Tenant, TestServer, eventually, ok};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// A private function that logs each call with its path.
const LOGGER_JS: &[u8] = br#"
exports.handle = async (event) => {
  console.log(`logger called: ${event.path}`);
  return { statusCode: 200, body: `answered ${event.path}` };
};
"#;

/// A container that logs each call with its path, on `$PORT`.
const LOGGER_GO: &str = r#"package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("box called:", r.URL.Path)
		fmt.Fprintf(w, "answered %s", r.URL.Path)
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		panic(err)
	}
}
"#;

/// An expiry as the plugin sends it: now + 1 year, JavaScript's `toISOString()`, unencoded.
const PLUGIN_EXPIRY: &str = "2035-11-21T18:20:08.241Z";

/// Calls `url`, with `token` in `SCW_FUNCTIONS_TOKEN` when given; returns the status and body.
async fn call(url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.header("SCW_FUNCTIONS_TOKEN", token);
    }
    let response = request.send().await.expect("the router answers");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Returns the token `/issue-jwt?<query>` issues, asserting it does.
async fn issue(api: &Tenant, query: &str) -> String {
    let issued = api
        .get(&format!("/issue-jwt?{query}&expiration_date={PLUGIN_EXPIRY}"))
        .await;
    ok(&issued)["token"].as_str().unwrap().to_owned()
}

/// Returns the messages of `path` (a logs route), asserting it answers.
async fn messages(api: &Tenant, path: &str) -> Vec<String> {
    ok(&api.get(path).await)["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["message"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `path` lists a line containing each of `needles`; returns its messages.
async fn logged(api: &Tenant, path: &str, needles: &[&str]) -> Vec<String> {
    eventually(
        Duration::from_secs(15),
        || messages(api, path),
        |lines: &Vec<String>| {
            needles
                .iter()
                .all(|needle| lines.iter().any(|line| line.contains(needle)))
        },
    )
    .await
}

/// Returns where the first line containing `needle` is in `lines`.
fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in {lines:?}"))
}

/// Checks that `stranger` reaches none of `paths` (404) and lists none of the `kind` (functions,
/// containers) of another tenant's namespace `namespace_id` (a 404, or an empty list); returns
/// the paths' answers.
async fn assert_reaches_none<'a>(
    stranger: &nuage_tests::Tenant,
    paths: &'a [String],
    namespace_id: &str,
    kind: &str,
) -> Vec<(&'a String, nuage_tests::Answer)> {
    let mut answers = Vec::new();
    for path in paths {
        let answer = stranger.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {}", answer.body);
        answers.push((path, answer));
    }
    let theirs = stranger.get(&format!("/namespaces/{namespace_id}/{kind}")).await;
    assert!(
        theirs.status == StatusCode::NOT_FOUND || theirs.body[kind] == json!([]),
        "{}",
        theirs.body
    );
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_v1beta1_lists_issues_tokens_and_shows_logs_as_the_plugin_asks() {
    let (server, alpha) = TestServer::with_tenant().await;
    let beta = alpha.speaking(Spec::FunctionsV1beta1, "fr-par");
    let node = runtime(&alpha, "node").await;
    let function = deployed_private_node(&alpha, "plugin", "logger", LOGGER_JS).await;
    let id = function["id"].as_str().unwrap().to_owned();
    let namespace_id = function["namespace_id"].as_str().unwrap().to_owned();
    let endpoint = function["endpoint"].as_str().unwrap().to_owned();

    // The nested list, in v1beta1's shape (checked against its ListFunctionsResponse).
    let listed = beta.get(&format!("/namespaces/{namespace_id}/functions")).await;
    let functions = ok(&listed)["functions"].as_array().unwrap();
    assert_eq!(functions.len(), 1, "{}", listed.body);
    assert_eq!(functions[0]["id"], id.as_str());
    assert_eq!(functions[0]["privacy"], "private");
    assert_eq!(functions[0]["secret_environment_variables"], json!([]));

    // Tokens for the function and for its namespace, as `serverless jwt` asks; each opens it.
    let (status, _) = call(&endpoint, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a private function without a token");
    let function_token = issue(&beta, &format!("function_id={id}")).await;
    let namespace_token = issue(&beta, &format!("namespace_id={namespace_id}")).await;
    for (path, token) in [("/first", &function_token), ("/second", &namespace_token)] {
        let (status, body) = call(&format!("{endpoint}{path}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, format!("answered {path}"));
    }

    // Its logs, newest first as `serverless logs` expects (it prints them reversed), or
    // oldest first on request.
    let logs = format!("/functions/{id}/logs");
    let newest_first = logged(&beta, &logs, &["called: /first", "called: /second"]).await;
    assert!(position(&newest_first, "called: /second") < position(&newest_first, "called: /first"));
    let oldest_first = messages(&beta, &format!("{logs}?order_by=timestamp_asc&page_size=100")).await;
    assert!(position(&oldest_first, "called: /first") < position(&oldest_first, "called: /second"));
    let alpha_lines = messages(&alpha, &format!("/logs?application_id={id}")).await;
    assert_eq!(newest_first, alpha_lines, "the same lines as v1alpha2's /logs");

    // A PATCH as the plugin sends it on a second deploy names the function's own runtime,
    // which changes nothing; another runtime is refused by name.
    let patched = beta
        .patch(
            &format!("/functions/{id}"),
            json!({"redeploy": false, "runtime": node, "privacy": "private", "timeout": "30s",
                   "secret_environment_variables": [], "description": "by the plugin"}),
        )
        .await;
    assert_eq!(ok(&patched)["runtime"], node.as_str());
    assert_eq!(patched.body["description"], "by the plugin");
    let other = beta
        .patch(&format!("/functions/{id}"), json!({"runtime": "python3"}))
        .await;
    assert_eq!(other.refused_argument(), "runtime");
    let garbled = beta.patch(&format!("/functions/{id}"), json!({"runtime": 7})).await;
    assert_eq!(garbled.refused_argument(), "runtime");

    // Bad inputs name their argument.
    assert_eq!(beta.get("/issue-jwt").await.refused_argument(), "namespace_id");
    let past = beta
        .get(&format!(
            "/issue-jwt?function_id={id}&expiration_date=2001-01-01T00:00:00.000Z"
        ))
        .await;
    assert_eq!(past.refused_argument(), "expiration_date");
    let garbled = beta
        .get(&format!("/issue-jwt?function_id={id}&expiration_date=soon"))
        .await;
    assert_eq!(garbled.refused_argument(), "expiration_date");
    assert_eq!(
        beta.get("/issue-jwt?function_id=nope").await.refused_argument(),
        "function_id"
    );
    assert_eq!(beta.get("/functions/nope/logs").await.refused_argument(), "function_id");
    assert_eq!(
        beta.get(&format!("{logs}?order_by=newest")).await.refused_argument(),
        "order_by"
    );
    assert_eq!(
        beta.get(&format!("{logs}?page_size=0")).await.refused_argument(),
        "page_size"
    );
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        beta.get(&format!("/functions/{unknown}/logs")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        beta.get(&format!("/issue-jwt?function_id={unknown}")).await.status,
        StatusCode::NOT_FOUND
    );

    // Another tenant reaches none of it, as if it did not exist.
    let stranger = server.tenant().await.speaking(Spec::FunctionsV1beta1, "fr-par");
    let paths = [
        logs.clone(),
        format!("/issue-jwt?function_id={id}&expiration_date={PLUGIN_EXPIRY}"),
        format!("/issue-jwt?namespace_id={namespace_id}"),
    ];
    for (path, answer) in assert_reaches_none(&stranger, &paths, &namespace_id, "functions").await {
        assert_eq!(answer.body["type"], "not_found", "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_v1beta1_lists_issues_tokens_for_a_container_named_function_id_and_shows_its_logs() {
    let binary = nuage_tests::go_server_or_skip!(LOGGER_GO);
    let (server, alpha) = TestServer::with_tenant().await;
    let api = alpha.speaking(Spec::ContainersV1beta1, "fr-par");
    let namespace_id = api.create("/namespaces", json!({"name": "boxes"})).await;
    let namespace = api.wait_ready(&namespace_id).await;
    let registry_endpoint = namespace["registry_endpoint"].as_str().unwrap();
    push_server_image(&server, registry_endpoint, "box", &binary);
    let id = api
        .create(
            "/containers",
            json!({"namespace_id": namespace_id, "name": "box", "privacy": "private",
                   "registry_image": format!("{registry_endpoint}/box:latest"),
                   "health_check": null, "scaling_option": null}),
        )
        .await;
    ok(&api.post(&format!("/containers/{id}/deploy"), json!({})).await);
    let ready = nuage_tests::apps::container_settled(&api, &id, Duration::from_secs(60)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let url = format!("http://{}", ready["domain_name"].as_str().unwrap());

    // The nested list, in containers v1beta1's shape.
    let listed = api.get(&format!("/namespaces/{namespace_id}/containers")).await;
    let containers = ok(&listed)["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{}", listed.body);
    assert_eq!(containers[0]["id"], id.as_str());
    assert_eq!(containers[0]["status"], "ready");

    // `serverless jwt` asks for a container's token with `function_id`; `container_id` works
    // too, and so does the namespace's.
    let (status, _) = call(&url, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a private container without a token");
    for (index, query) in [
        format!("function_id={id}"),
        format!("container_id={id}"),
        format!("namespace_id={namespace_id}"),
    ]
    .iter()
    .enumerate()
    {
        let token = issue(&api, query).await;
        let (status, body) = call(&format!("{url}/call{index}"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(body, format!("answered /call{index}"));
    }

    // Its logs, newest first.
    let logs = format!("/containers/{id}/logs");
    let lines = logged(&api, &logs, &["box called: /call0", "box called: /call2"]).await;
    assert!(position(&lines, "box called: /call2") < position(&lines, "box called: /call0"));

    // A container is no function: functions v1beta1 does not find it by that name.
    let functions = alpha.speaking(Spec::FunctionsV1beta1, "fr-par");
    let wrong_kind = functions.get(&format!("/functions/{id}/logs")).await;
    assert_eq!(wrong_kind.status, StatusCode::NOT_FOUND, "{}", wrong_kind.body);
    assert_eq!(
        api.get("/containers/nope/logs").await.refused_argument(),
        "container_id"
    );

    // Another tenant reaches none of it.
    let stranger = server.tenant().await.speaking(Spec::ContainersV1beta1, "fr-par");
    let paths = [
        logs.clone(),
        format!("/issue-jwt?function_id={id}"),
        format!("/issue-jwt?container_id={id}"),
    ];
    assert_reaches_none(&stranger, &paths, &namespace_id, "containers").await;
    server.stop().await;
}
