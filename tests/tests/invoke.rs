//! Invocations: deployed functions answer on their endpoint through the router, which starts
//! instances through the runner (scale from zero, max_scale, queue), enforces the timeout and
//! the body limit, and replaces instances that die.

use nuage_tests::TestServer;
use nuage_tests::apps::{deployed, function, processes_of, runtime};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A node handler that answers with what it received and what it knows of itself.
const ECHO_JS: &[u8] = br#"
const me = Math.random().toString(36).slice(2);
exports.handle = async (event, context) => {
  if (event.path === "/crash") process.exit(3);
  if (event.path === "/sleep") await new Promise((r) => setTimeout(r, Number(event.queryStringParameters.ms)));
  if (event.path === "/print") { console.log("to stdout"); console.error("to stderr"); }
  return {
    statusCode: Number(event.queryStringParameters.status || 200),
    headers: { "Content-Type": "application/json", "X-Echo": "yes" },
    body: JSON.stringify({
      me,
      path: event.path,
      method: event.httpMethod,
      query: event.queryStringParameters,
      headers: event.headers,
      body: event.body,
      isBase64Encoded: event.isBase64Encoded,
      context,
      env: {
        name: process.env.SCW_APPLICATION_NAME,
        id: process.env.SCW_APPLICATION_ID,
        public: process.env.SCW_PUBLIC,
        memory: process.env.SCW_APPLICATION_MEMORY,
        fromNamespace: process.env.FROM_NAMESPACE,
        shared: process.env.SHARED,
        uid: process.getuid(),
      },
    }),
  };
};
"#;

const ECHO_PY: &[u8] = br#"
import json, os

def handle(event, context):
    return {
        "statusCode": 202,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({
            "path": event["path"],
            "method": event["httpMethod"],
            "query": event["queryStringParameters"],
            "body": event["body"],
            "context": context,
            "name": os.environ.get("SCW_APPLICATION_NAME"),
        }),
    }
"#;

async fn call(client: &reqwest::Client, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let _ = client;
    let response = request.send().await.expect("the router answers");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_python_functions_answer_on_their_endpoint() {
    let server = TestServer::start().await;
    let tenant = server.tenant().await;
    let node = runtime(&tenant, "node").await;
    let python = runtime(&tenant, "python").await;
    let client = reqwest::Client::new();

    let namespace = tenant.create_namespace("invoke-node").await;
    let namespace_id = namespace["id"].as_str().unwrap();
    tenant.wait_ready(namespace_id).await;
    let changed = tenant
        .patch(
            &format!("/namespaces/{namespace_id}"),
            json!({"environment_variables": {"FROM_NAMESPACE": "ns", "SHARED": "namespace"}}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let created = tenant
        .post(
            "/functions",
            json!({"name": "echo", "namespace_id": namespace_id, "runtime": node,
                   "environment_variables": {"SHARED": "function"}, "memory_limit": 256}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    nuage_tests::apps::upload(&tenant, &id, nuage_tests::apps::zip(&[("handler.js", ECHO_JS)])).await;
    nuage_tests::apps::deploy(&tenant, &id).await;
    let ready = nuage_tests::apps::settled_within(&tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();
    assert!(endpoint.starts_with(&server.functions_url), "{endpoint}");
    // Ready means an instance already runs: the first call is warm.
    assert!(!processes_of(&id).is_empty(), "an instance runs after the deploy");

    let (status, body) = call(
        &client,
        client
            .post(format!("{endpoint}/some/path?a=1&b=two"))
            .header("X-Custom", "value")
            .header("Connection", "keep-alive, X-Hop")
            .header("X-Hop", "dropped")
            .body("hello"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "/some/path");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["query"], json!({"a": "1", "b": "two"}));
    assert_eq!(body["body"], "hello");
    assert_eq!(body["headers"]["X-Custom"], "value");
    assert!(
        body["headers"].get("X-Hop").is_none(),
        "hop-by-hop headers stay out: {body}"
    );
    assert_eq!(body["headers"]["X-Forwarded-For"], "127.0.0.1");
    assert_eq!(body["headers"]["X-Forwarded-Proto"], "http");
    assert!(
        body["headers"]["X-Request-Id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(body["context"]["functionName"], "echo");
    assert_eq!(body["context"]["memoryLimitInMb"], 256);
    assert_eq!(body["env"]["name"], "echo");
    assert_eq!(body["env"]["id"], id.as_str());
    assert_eq!(body["env"]["public"], "true");
    assert_eq!(body["env"]["fromNamespace"], "ns");
    assert_eq!(
        body["env"]["shared"], "function",
        "the function's variables override the namespace's"
    );
    if std::path::Path::new("/usr/bin/bwrap").exists() {
        assert_eq!(body["env"]["uid"], 1000, "instances run as user 1000 in the sandbox");
    }
    // Status codes, response headers and base64 bodies pass through.
    let response = client
        .get(format!("{endpoint}/?status=418"))
        .header("X-Request-Id", "given-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(response.headers()["x-echo"], "yes");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["headers"]["X-Request-Id"], "given-id");
    let (_, body) = call(&client, client.post(&endpoint).body("aGVsbG8=")).await;
    assert_eq!(body["isBase64Encoded"], true);

    let function = function(&tenant, "invoke-python", json!({"name": "echo", "runtime": python})).await;
    let python_id = function["id"].as_str().unwrap();
    nuage_tests::apps::upload(&tenant, python_id, nuage_tests::apps::zip(&[("handler.py", ECHO_PY)])).await;
    nuage_tests::apps::deploy(&tenant, python_id).await;
    let ready = nuage_tests::apps::settled_within(&tenant, python_id, Duration::from_secs(60)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let (status, body) = call(
        &client,
        client
            .put(format!("{}/p?q=1", ready["endpoint"].as_str().unwrap()))
            .body("py"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["path"], "/p");
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["query"], json!({"q": "1"}));
    assert_eq!(body["body"], "py");
    assert_eq!(body["name"], "echo");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_scale_from_zero_to_max_scale_and_back() {
    let server = TestServer::start_with(|config| {
        config.router.idle_seconds = 1;
        config.router.queue_limit = 2;
    })
    .await;
    let tenant = server.tenant().await;
    let node = runtime(&tenant, "node").await;
    let client = reqwest::Client::new();
    let ready = deployed(
        &tenant,
        "scale",
        json!({"name": "f", "runtime": node, "min_scale": 0, "max_scale": 2}),
        &[("handler.js", ECHO_JS)],
    )
    .await;
    let id = ready["id"].as_str().unwrap().to_owned();
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();

    // Idle: back to zero instances.
    let started = Instant::now();
    while !processes_of(&id).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "idle instances are stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cold start: the request is held until a new instance answers.
    let (status, cold) = call(&client, client.get(&endpoint)).await;
    assert_eq!(status, StatusCode::OK, "{cold}");
    let (_, warm) = call(&client, client.get(&endpoint)).await;
    assert_eq!(cold["me"], warm["me"], "the second call reuses the warm instance");

    // Six concurrent slow calls, max_scale 2 and a queue of 2: two run, two wait, two get 503.
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let request = client.get(format!("{endpoint}/sleep?ms=1500"));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let ok: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(_, body)| body)
        .collect();
    assert_eq!((ok.len(), refused.len()), (4, 2), "{answers:?}");
    assert_eq!(refused[0]["type"], "overloaded", "{}", refused[0]);
    let instances: std::collections::HashSet<&str> = ok.iter().filter_map(|body| body["me"].as_str()).collect();
    assert_eq!(instances.len(), 2, "max_scale instances served: {instances:?}");

    // min_scale instances stay warm.
    let changed = tenant
        .patch(&format!("/functions/{id}"), json!({"min_scale": 1, "redeploy": false}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(processes_of(&id).len(), 1, "one instance is kept warm");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_oversize_bodies_and_crashes_get_json_errors() {
    let server = TestServer::start().await;
    let tenant = server.tenant().await;
    let node = runtime(&tenant, "node").await;
    let client = reqwest::Client::new();
    let ready = deployed(
        &tenant,
        "failures",
        json!({"name": "f", "runtime": node, "timeout": "1s"}),
        &[("handler.js", ECHO_JS)],
    )
    .await;
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let (status, body) = call(&client, client.get(format!("{endpoint}/sleep?ms=5000"))).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["type"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    let (status, body) = call(&client, client.post(&endpoint).body(vec![b'x'; 7 << 20])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["type"], "payload_too_large");

    let (status, body) = call(&client, client.get(format!("{endpoint}/crash"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["type"], "instance_failed");
    // The dead instance is replaced.
    let (status, body) = call(&client, client.get(&endpoint)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Never deployed, and unknown: clear answers, no hang.
    let never = function(&tenant, "never", json!({"name": "f", "runtime": node})).await;
    let (status, body) = call(&client, client.get(never["endpoint"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], "not_deployed");
    let (status, body) = call(&client, client.get(format!("{}/nobody-here", server.functions_url))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], "not_found");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_function_or_stopping_nuage_stops_every_process() {
    let server = TestServer::start().await;
    let tenant = server.tenant().await;
    let node = runtime(&tenant, "node").await;
    let client = reqwest::Client::new();
    let first = deployed(
        &tenant,
        "stops",
        json!({"name": "a", "runtime": node}),
        &[("handler.js", ECHO_JS)],
    )
    .await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let second = tenant
        .post(
            "/functions",
            json!({"name": "b", "runtime": node, "namespace_id": first["namespace_id"]}),
        )
        .await
        .body;
    let second_id = second["id"].as_str().unwrap().to_owned();
    nuage_tests::apps::upload(&tenant, &second_id, nuage_tests::apps::zip(&[("handler.js", ECHO_JS)])).await;
    nuage_tests::apps::deploy(&tenant, &second_id).await;
    assert_eq!(
        nuage_tests::apps::settled_within(&tenant, &second_id, Duration::from_secs(60)).await["status"],
        "ready"
    );
    let (status, _) = call(&client, client.get(first["endpoint"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!processes_of(&first_id).is_empty());

    let deleted = tenant.delete(&format!("/functions/{first_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let started = Instant::now();
    while !processes_of(&first_id).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a deleted function's processes stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = call(&client, client.get(first["endpoint"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert!(!processes_of(&second_id).is_empty());
    server.stop().await;
    assert!(processes_of(&second_id).is_empty(), "nothing runs after nuage stops");
}
