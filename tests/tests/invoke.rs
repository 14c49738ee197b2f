//! Invocations: deployed functions answer on their endpoint through the router, which starts
//! instances through the runner (scale from zero, max_scale, queue), enforces the timeout and
//! the body limit, and replaces instances that die.

use nuage_tests::apps::{deployed_node, function, node_function, processes_of, runtime, upload_and_deploy, zip};
use nuage_tests::{TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A node handler that answers with what it received and what it knows of itself.
const ECHO_JS: &[u8] = br#"
const me = Math.random().toString(36).slice(2);
exports.handle = async (event, context) => {
  if (event.path === "/crash") process.exit(3);
  if (event.path === "/hog") return String(Buffer.alloc(400 * 1024 * 1024, 1).length);
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

/// Returns how many of this process's threads are router workers.
fn router_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|name| name.starts_with("nuage-router-"))
                })
                .count()
        })
        .unwrap_or(0)
}

async fn call(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the router answers");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Returns the server's `/healthz` body.
async fn healthz(server: &TestServer) -> Value {
    nuage_tests::get_json(format!("{}/healthz", server.base_url)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_python_functions_answer_on_their_endpoint() {
    let (server, tenant) = TestServer::with_tenant().await;
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
    let id = tenant
        .create(
            "/functions",
            json!({"name": "echo", "namespace_id": namespace_id, "runtime": node,
                   "environment_variables": {"SHARED": "function"}, "memory_limit": 256}),
        )
        .await;
    nuage_tests::apps::upload(&tenant, &id, nuage_tests::apps::zip(&[("handler.js", ECHO_JS)])).await;
    nuage_tests::apps::deploy(&tenant, &id).await;
    let ready = nuage_tests::apps::settled_within(&tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();
    assert!(endpoint.starts_with(&server.functions_url), "{endpoint}");
    // Ready means an instance already runs: the first call is warm.
    assert!(!processes_of(&id).is_empty(), "an instance runs after the deploy");

    let (status, body) = call(
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
    let (_, body) = call(client.post(&endpoint).body("aGVsbG8=")).await;
    assert_eq!(body["isBase64Encoded"], true);

    let function = function(&tenant, "invoke-python", json!({"name": "echo", "runtime": python})).await;
    let python_id = function["id"].as_str().unwrap();
    let ready = upload_and_deploy(
        &tenant,
        python_id,
        zip(&[("handler.py", ECHO_PY)]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let (status, body) = call(
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
    // Three router threads: the concurrent calls below land on different ones, so a freed
    // instance wakes requests queued on another thread.
    let server = TestServer::start_with(|config| {
        config.router.idle_seconds = 1;
        config.router.queue_limit = 2;
        config.router.threads = 3;
    })
    .await;
    // A thread takes its name once it runs.
    let threads = eventually(Duration::from_secs(5), || async { router_threads() }, |n| *n == 3).await;
    assert_eq!(threads, 3, "invocations run on the router's own threads");
    let tenant = server.tenant().await;
    let client = reqwest::Client::new();
    let ready = deployed_node(
        &tenant,
        "scale",
        json!({"name": "f", "min_scale": 0, "max_scale": 2}),
        ECHO_JS,
    )
    .await;
    let id = ready["id"].as_str().unwrap().to_owned();
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();

    // Idle: back to zero instances.
    let left = eventually(Duration::from_secs(20), || async { processes_of(&id) }, Vec::is_empty).await;
    assert!(left.is_empty(), "idle instances are stopped: {left:?}");
    // Cold start: the request is held until a new instance answers.
    let (status, cold) = call(client.get(&endpoint)).await;
    assert_eq!(status, StatusCode::OK, "{cold}");
    let (_, warm) = call(client.get(&endpoint)).await;
    assert_eq!(cold["me"], warm["me"], "the second call reuses the warm instance");

    // Six concurrent slow calls (a client each: six connections), max_scale 2 and a queue of
    // 2: two run, two wait, two get 503.
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let request = reqwest::Client::new().get(format!("{endpoint}/sleep?ms=1500"));
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
    assert_eq!(refused[0]["type"], "service_unavailable", "{}", refused[0]);
    let instances: std::collections::HashSet<&str> = ok.iter().filter_map(|body| body["me"].as_str()).collect();
    assert_eq!(instances.len(), 2, "max_scale instances served: {instances:?}");

    // min_scale instances stay warm: once idle, the surplus instance stops and the other one
    // is kept (not stopped and started again: it is one of those that served).
    let changed = tenant
        .patch(&format!("/functions/{id}"), json!({"min_scale": 1, "redeploy": false}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let kept = eventually(
        Duration::from_secs(10),
        || async { processes_of(&id) },
        |pids| pids.len() == 1,
    )
    .await;
    assert_eq!(kept.len(), 1, "one instance is kept warm");
    let (status, warm) = call(client.get(&endpoint)).await;
    assert_eq!(status, StatusCode::OK, "{warm}");
    assert!(
        warm["me"].as_str().is_some_and(|me| instances.contains(me)),
        "the kept instance is one that served: {warm} {instances:?}"
    );
    assert_eq!(processes_of(&id), kept, "no other instance started");
    server.stop().await;
    assert_eq!(router_threads(), 0, "the router's threads end when nuage stops");
}

/// Returns the router's figure `name` (`queue_length`, `instances`) for `id` on `/metrics`.
async fn pool_figure(server: &TestServer, name: &str, id: &str) -> Option<u64> {
    let metrics = server.metrics().await;
    let prefix = format!("nuage_router_{name}{{application_id=\"{id}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
}

/// Returns the router's queue length for `id` on `/metrics`.
async fn queue_length(server: &TestServer, id: &str) -> Option<u64> {
    pool_figure(server, "queue_length", id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_gives_up_waiting_leaves_the_queue() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.router.queue_limit = 1).await;
    let ready = deployed_node(&tenant, "queue", json!({"name": "f", "max_scale": 1}), ECHO_JS).await;
    let id = ready["id"].as_str().unwrap().to_owned();
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();

    // The one instance is busy for a while: the pool shows on /metrics with the instance the
    // deploy started, which the request holds from the moment the pool knows it...
    let busy = tokio::spawn(reqwest::Client::new().get(format!("{endpoint}/sleep?ms=3000")).send());
    let figures = || async {
        (
            queue_length(&server, &id).await,
            pool_figure(&server, "instances", &id).await,
        )
    };
    let shown = eventually(Duration::from_secs(10), figures, |shown| *shown == (Some(0), Some(1))).await;
    assert_eq!(shown, (Some(0), Some(1)), "the pool shows on /metrics");
    // ...so the next request waits in the queue, and its client gives up and hangs up.
    let impatient = reqwest::Client::new()
        .get(format!("{endpoint}/?n=1"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        impatient.is_err(),
        "the queued request was still waiting: {impatient:?}"
    );
    let length = eventually(
        Duration::from_secs(2),
        || queue_length(&server, &id),
        |length| *length == Some(0),
    )
    .await;
    assert_eq!(length, Some(0), "a request whose client went away leaves the queue");
    // Its place is free again: the next one waits (queue_limit 1) and is answered.
    let (status, body) = call(reqwest::Client::new().get(format!("{endpoint}/?n=2"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["query"], json!({"n": "2"}));
    let busy = busy.await.unwrap().unwrap();
    assert_eq!(busy.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_oversize_bodies_and_crashes_get_json_errors() {
    let (server, tenant) = TestServer::with_tenant().await;
    let client = reqwest::Client::new();
    let ready = deployed_node(&tenant, "failures", json!({"name": "f", "timeout": "1s"}), ECHO_JS).await;
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let (status, body) = call(client.get(format!("{endpoint}/sleep?ms=5000"))).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["type"], "service_unavailable");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    let (status, body) = call(client.post(&endpoint).body(vec![b'x'; 7 << 20])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["type"], "invalid_arguments");

    let (status, body) = call(client.get(format!("{endpoint}/crash"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["type"], "service_unavailable");
    // The dead instance is replaced.
    let (status, body) = call(client.get(&endpoint)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Never deployed, and unknown: clear answers, no hang.
    let never = node_function(&tenant, "never").await;
    let (status, body) = call(client.get(never["endpoint"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], "not_found");
    // Both are `not_found`, as the gateway types a 404; the message tells them apart.
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("has never been deployed: deploy it first"),
        "{body}"
    );
    let (status, body) = call(client.get(format!("{}/nobody-here", server.functions_url))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], "not_found");
    assert_eq!(
        body["message"], "no function or container answers at `nobody-here`",
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_function_or_stopping_nuage_stops_every_process() {
    let (server, tenant) = TestServer::with_tenant().await;
    let node = runtime(&tenant, "node").await;
    let client = reqwest::Client::new();
    let first = deployed_node(&tenant, "stops", json!({"name": "a"}), ECHO_JS).await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let second = tenant
        .post(
            "/functions",
            json!({"name": "b", "runtime": node, "namespace_id": first["namespace_id"]}),
        )
        .await
        .body;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let second_done = upload_and_deploy(
        &tenant,
        &second_id,
        zip(&[("handler.js", ECHO_JS)]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(second_done["status"], "ready");
    let (status, _) = call(client.get(first["endpoint"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!processes_of(&first_id).is_empty());

    let deleted = tenant.delete(&format!("/functions/{first_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let left = eventually(
        Duration::from_secs(15),
        || async { processes_of(&first_id) },
        Vec::is_empty,
    )
    .await;
    assert!(left.is_empty(), "a deleted function's processes stop: {left:?}");
    let (status, _) = call(client.get(first["endpoint"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert!(!processes_of(&second_id).is_empty());
    server.stop().await;
    assert!(processes_of(&second_id).is_empty(), "nothing runs after nuage stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_image_runs_on_port_as_user_1000() {
    let binary = nuage_tests::go_server_or_skip!();

    let (server, tenant) = TestServer::with_tenant().await;
    let client = reqwest::Client::new();
    let namespace = tenant.ready_namespace("boxes").await;
    let namespace_id = namespace["id"].as_str().unwrap().to_owned();
    // The image goes to the namespace's repository (an OCI layout of the embedded registry).
    let registry = server.config.data_dir.join("registry");
    let id =
        nuage_tests::apps::deploy_app_container(&tenant, &registry, &namespace, &binary, json!({"GREETING": "hi"}))
            .await;
    let ready = nuage_tests::apps::container_settled(&tenant, &id, Duration::from_secs(30)).await;
    assert_eq!(ready["status"], "ready", "{ready}");

    let (status, body) = call(client.get(format!("{}/hello", ready["endpoint"].as_str().unwrap()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["greeting"], "hi");
    if std::path::Path::new("/usr/bin/bwrap").exists() {
        assert_eq!(body["uid"], 1000);
    }

    // The router keeps its connection to the instance between requests...
    let endpoint = ready["endpoint"].as_str().unwrap();
    let (_, again) = call(client.get(format!("{endpoint}/again"))).await;
    assert_eq!(again["remote"], body["remote"], "the second call reuses the connection");
    // An answer with no body completes its request too: the connection is kept after it.
    let empty = client.get(format!("{endpoint}/empty")).send().await.unwrap();
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
    let (_, after_empty) = call(client.get(format!("{endpoint}/again"))).await;
    assert_eq!(
        after_empty["remote"], body["remote"],
        "the connection is kept after a 204"
    );
    // An instance that answers before the request's body has all come: its connection is
    // busy until the upload ends, and another request does not wait behind it.
    let (address, key) = endpoint.strip_prefix("http://").unwrap().split_once('/').unwrap();
    let mut upload = tokio::net::TcpStream::connect(address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("POST /{key}/early HTTP/1.1\r\nHost: {address}\r\nContent-Length: 4000\r\n\r\n");
    upload.write_all(request.as_bytes()).await.unwrap();
    upload.write_all(&[b'x'; 100]).await.unwrap();
    let mut head = vec![0_u8; 1024];
    let read = upload.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..read]).into_owned();
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let meanwhile = client
        .get(format!("{endpoint}/meanwhile"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("a request is answered while another's upload goes on");
    assert_eq!(meanwhile.status(), StatusCode::OK);
    drop(upload);
    // ...and opens another when the instance closed it, after an answer or while it was idle
    // (the server closes connections idle for 300 ms).
    let (status, closing) = call(client.get(format!("{endpoint}/close"))).await;
    assert_eq!(status, StatusCode::OK, "{closing}");
    let mut remotes = std::collections::HashSet::new();
    for pause in [0, 0, 400, 0, 400] {
        // Idle longer than the server keeps a connection: the idle time is what is tested, and
        // nothing outside the instance shows when it closed the connection.
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let (status, answer) = call(client.get(format!("{endpoint}/after"))).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_ne!(answer["remote"], closing["remote"]);
        remotes.insert(answer["remote"].as_str().unwrap().to_owned());
    }
    assert_eq!(remotes.len(), 3, "a new connection after each close: {remotes:?}");

    // An image that is not there: the container ends in error, saying so.
    let missing = tenant
        .post("/containers", json!({"name": "missing", "namespace_id": namespace_id}))
        .await
        .body;
    let missing_id = missing["id"].as_str().unwrap();
    tenant
        .post(&format!("/containers/{missing_id}/deploy"), json!({}))
        .await;
    let failed = tenant
        .poll_until(
            &format!("/containers/{missing_id}"),
            Duration::from_secs(30),
            |answer| answer.body["status"] != "pending",
        )
        .await
        .body;
    assert_eq!(failed["status"], "error", "{failed}");
    assert!(
        failed["error_message"].as_str().unwrap().contains("missing"),
        "{failed}"
    );

    let deleted = tenant.delete(&format!("/containers/{id}")).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let left = eventually(Duration::from_secs(15), || async { processes_of(&id) }, Vec::is_empty).await;
    assert!(left.is_empty(), "a deleted container's processes stop: {left:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_under_load_fails_no_request() {
    // Two router threads share the four clients' connections.
    let (server, tenant) = TestServer::start_with_tenant(|config| config.router.threads = 2).await;
    let version = |v: &str| {
        format!("exports.handle = async () => {{ await new Promise((r) => setTimeout(r, 5)); return '{v}'; }};")
    };
    let first = version("v1");
    let ready = deployed_node(
        &tenant,
        "rolling",
        json!({"name": "f", "max_scale": 4}),
        first.as_bytes(),
    )
    .await;
    let id = ready["id"].as_str().unwrap().to_owned();
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // Answers so far, of all four clients, and of each one.
    let answered: std::sync::Arc<Vec<AtomicUsize>> = std::sync::Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let loops: Vec<_> = (0..4)
        .map(|index| {
            let (client, endpoint, stop, answered) =
                (reqwest::Client::new(), endpoint.clone(), stop.clone(), answered.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let response = client.get(&endpoint).send().await.unwrap();
                    answers.push((response.status(), response.text().await.unwrap()));
                    answered[index].fetch_add(1, Ordering::Relaxed);
                }
                answers
            })
        })
        .collect();
    let counts = || {
        let answered = answered.clone();
        async move {
            answered
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        }
    };
    // Every client is under way on the old version before the new one is deployed.
    let under_way = eventually(Duration::from_secs(10), counts, |counts| {
        counts.iter().all(|n| *n >= 10)
    })
    .await;
    assert!(under_way.iter().all(|n| *n >= 10), "answers per client: {under_way:?}");
    let second = version("v2");
    nuage_tests::apps::upload(
        &tenant,
        &id,
        nuage_tests::apps::zip(&[("handler.js", second.as_bytes())]),
    )
    .await;
    nuage_tests::apps::deploy(&tenant, &id).await;
    let done = nuage_tests::apps::settled_within(&tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
    // The clients go on for a while once it is ready: 40 more answers each.
    let ready_at = counts().await;
    let went_on = |counts: &Vec<usize>| counts.iter().zip(&ready_at).all(|(now, then)| *now >= then + 40);
    let after = eventually(Duration::from_secs(10), counts, went_on).await;
    assert!(
        went_on(&after),
        "answers per client: {after:?}, when ready: {ready_at:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for handle in loops {
        answers.extend(handle.await.unwrap());
    }
    let failed: Vec<_> = answers.iter().filter(|(status, _)| *status != StatusCode::OK).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(answers.iter().any(|(_, body)| body == "v1"));
    assert_eq!(answers.last().unwrap().1, "v2", "the new version serves once ready");
    // The old version's instances are gone.
    let (status, body) = call(reqwest::Client::new().get(&endpoint)).await;
    assert_eq!((status, body), (StatusCode::OK, Value::String("v2".into())));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_over_its_memory_limit_is_stopped_and_replaced() {
    let server = TestServer::start().await;
    let health = healthz(&server).await;
    let warnings = health["warnings"].as_array().cloned().unwrap_or_default();
    if warnings
        .iter()
        .any(|warning| warning.as_str().unwrap_or("").contains("memory"))
    {
        // /healthz says instances have no memory cap here: nothing to test.
        eprintln!("skipped: {warnings:?}");
        return;
    }
    let tenant = server.tenant().await;
    let client = reqwest::Client::new();
    let ready = deployed_node(&tenant, "hog", json!({"name": "f", "memory_limit": 128}), ECHO_JS).await;
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();
    let (status, body) = call(client.get(format!("{endpoint}/hog"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "400 MB in a 128 MB instance: {body}");
    let (status, body) = call(client.get(&endpoint)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // With room enough, the same code runs.
    let roomy = tenant
        .patch(
            &format!("/functions/{}", ready["id"].as_str().unwrap()),
            json!({"memory_limit": 1024}),
        )
        .await;
    assert_eq!(roomy.status, StatusCode::OK);
    let done = nuage_tests::apps::settled_within(&tenant, ready["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready");
    let (status, body) = call(client.get(format!("{endpoint}/hog"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_warns_when_instances_run_unsandboxed() {
    let server = TestServer::start_with(|config| config.runner.sandbox = nuage_runner::Sandbox::None).await;
    let health = healthz(&server).await;
    let warnings = health["warnings"].to_string();
    assert!(warnings.contains("no sandbox"), "{health}");
    // Still runs: a plain process.
    let tenant = server.tenant().await;
    let ready = deployed_node(&tenant, "plain", json!({"name": "f"}), ECHO_JS).await;
    let client = reqwest::Client::new();
    let (status, body) = call(client.get(format!("{}/x", ready["endpoint"].as_str().unwrap()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["path"], "/x");
    // Invocation figures are on /metrics.
    let metrics = server.metrics().await;
    let id = ready["id"].as_str().unwrap();
    assert!(
        metrics.contains(&format!(
            "nuage_router_invocations_total{{application_id=\"{id}\",status=\"200\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("nuage_router_instances{"), "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_based_endpoints_and_dead_warm_instances_are_replaced() {
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        config.applications.domain = Some("functions.nuage.test".to_owned());
        config.router.idle_seconds = 1;
    })
    .await;
    let ready = deployed_node(&tenant, "hosted", json!({"name": "f", "min_scale": 1}), ECHO_JS).await;
    let id = ready["id"].as_str().unwrap().to_owned();
    let endpoint = ready["endpoint"].as_str().unwrap();
    // `http://hosted<8-character suffix>-f.functions.nuage.test`.
    let host = endpoint.strip_prefix("http://").unwrap().to_owned();
    let label = host.strip_suffix(".functions.nuage.test").unwrap();
    assert!(
        label.starts_with("hosted") && label.ends_with("-f") && label.len() == "hosted".len() + 8 + 2,
        "{endpoint}"
    );
    // No wildcard DNS here: reach the router and name the host.
    let client = reqwest::Client::new();
    let call_host = |path: &str| {
        call(
            client
                .get(format!("{}{path}", server.functions_url))
                .header("Host", &host),
        )
    };
    let (status, body) = call_host("/path?x=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["path"], "/path",
        "with host-based endpoints the whole path is the function's"
    );

    // min_scale 1: an instance killed from outside is noticed and replaced.
    let before = processes_of(&id);
    assert!(!before.is_empty());
    for pid in &before {
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
    let replaced = |now: &Vec<u32>| !now.is_empty() && now.iter().all(|pid| !before.contains(pid));
    let now = eventually(Duration::from_secs(15), || async { processes_of(&id) }, replaced).await;
    assert!(replaced(&now), "a new warm instance starts: {now:?}");
    let (status, body) = call_host("/again").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}
