//! WebAssembly functions (runtime `wasm`): a `wasi:http/proxy` component in the zip, built
//! from `tests/wasm/handler.js` with componentize-js (or written by hand in WebAssembly text:
//! `tests/wasm/wat`), deployed through the API like any
//! function, compiled ahead of time by the builder and run by the router in a fresh Wasmtime
//! instance per request, within the function's timeout and memory cap, with its variables
//! and secrets, no outgoing HTTP by default, and its output in its logs.

use nuage_tests::apps::{deploy, function, settled_within, upload, zip};
use nuage_tests::components::{test_component, wat_component};
use nuage_tests::hosts::{TestHost, Witness};
use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Builds (debug Cranelift on a loaded machine) can take a while for a 13 MB component.
const BUILD_LIMIT: Duration = Duration::from_secs(240);

/// Deploys the test component (handler.js) as a function in a new namespace with `extra`
/// settings; returns its id and endpoint.
async fn wasm_function(tenant: &Tenant, namespace: &str, extra: Value) -> (String, String) {
    deployed_component(tenant, namespace, extra, &test_component()).await
}

/// Deploys `component` as a function in a new namespace with `extra` settings; returns its id
/// and endpoint.
async fn deployed_component(tenant: &Tenant, namespace: &str, extra: Value, component: &[u8]) -> (String, String) {
    let mut body = json!({"name": "hello", "runtime": "wasm", "handler": "handler.wasm"});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let created = function(tenant, namespace, body).await;
    let id = created["id"].as_str().unwrap().to_owned();
    upload(tenant, &id, zip(&[("handler.wasm", component)])).await;
    deploy(tenant, &id).await;
    let done = settled_within(tenant, &id, BUILD_LIMIT).await;
    assert_eq!(done["status"], "ready", "{done}");
    (id, done["endpoint"].as_str().unwrap().to_owned())
}

/// The files of an archive: path and content.
type Files<'a> = [(&'a str, &'a [u8])];

/// The text of an answer.
async fn text(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// The messages of the application's logs.
async fn log_lines(tenant: &Tenant, id: &str) -> Vec<String> {
    let answer = tenant.get(&format!("/logs?application_id={id}&page_size=100")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["message"].as_str().unwrap().to_owned())
        .collect()
}

/// Calls `url` of function `id`, which must fail: a 500 whose message holds `message`, and
/// a line of the function's logs holding `logged`.
async fn failed_and_logged(tenant: &Tenant, id: &str, url: &str, message: &str, logged: &str) {
    let (status, body) = text(reqwest::get(url).await.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["message"].as_str().unwrap().contains(message), "{body}");
    let holds = |lines: &Vec<String>| lines.iter().any(|line| line.contains(logged));
    let lines = eventually(Duration::from_secs(10), || log_lines(tenant, id), holds).await;
    assert!(holds(&lines), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_function_answers_with_its_query_headers_body_status_variables_and_secrets() {
    let (server, tenant) = TestServer::with_tenant().await;
    let runtimes = tenant.get("/runtimes").await.body;
    assert!(
        runtimes["runtimes"].as_array().unwrap().contains(&json!("wasm")),
        "{runtimes}"
    );
    let (id, endpoint) = wasm_function(
        &tenant,
        "wasm-hello",
        json!({"environment_variables": {"GREETING": "bonjour"},
               "secret_environment_variables": [{"key": "SECRET_WORD", "value": "hush"}]}),
    )
    .await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{endpoint}/greet?name=ada&status=201"))
        .header("x-greeting", "salut")
        .body("the body")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, body) = text(response).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"method": "POST", "path": "/greet", "query": "ada", "header": "salut", "body": "the body",
               "served": 1, "greeting": "bonjour", "secret": "hush"})
    );
    // What the instance prints reaches the function's logs, each stream as such.
    let (status, _) = text(reqwest::get(format!("{endpoint}/print?mark=m1")).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let lines = eventually(
        Duration::from_secs(10),
        || log_lines(&tenant, &id),
        |lines: &Vec<String>| {
            lines.iter().any(|line| line == "stdout line m1") && lines.iter().any(|line| line == "stderr line m1")
        },
    )
    .await;
    assert!(lines.iter().any(|line| line == "stdout line m1"), "{lines:?}");
    assert!(lines.iter().any(|line| line == "stderr line m1"), "{lines:?}");
    // Another tenant does not see them.
    let stranger = server.tenant().await;
    let theirs = stranger.get(&format!("/logs?application_id={id}")).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_function_is_stopped_at_its_timeout_and_the_next_request_is_served() {
    let (_server, tenant) = TestServer::with_tenant().await;
    let (_, endpoint) = wasm_function(&tenant, "wasm-timeout", json!({"timeout": "1s"})).await;
    let started = Instant::now();
    let (status, body) = text(reqwest::get(format!("{endpoint}/spin")).await.unwrap()).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(body.contains("did not answer within its timeout (1000 ms)"), "{body}");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The guest that spun is gone; the next request runs at once.
    let (status, body) = text(reqwest::get(format!("{endpoint}/")).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_function_is_held_to_its_memory_limit() {
    let (_server, tenant) = TestServer::with_tenant().await;
    let (id, endpoint) = wasm_function(&tenant, "wasm-memory", json!({"memory_limit": 128})).await;
    let (status, body) = text(reqwest::get(format!("{endpoint}/grow?mb=16")).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "grew 16 MiB"));
    let (status, body) = text(reqwest::get(format!("{endpoint}/grow?mb=256")).await.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("memory_limit (128 MB)"), "{body}");
    let lines = eventually(
        Duration::from_secs(10),
        || log_lines(&tenant, &id),
        |lines: &Vec<String>| lines.iter().any(|line| line.contains("memory_limit")),
    )
    .await;
    assert!(lines.iter().any(|line| line.contains("memory_limit")), "{lines:?}");
    // The cap is the instance's, not the function's: the next request has all of it again.
    let (status, body) = text(reqwest::get(format!("{endpoint}/grow?mb=16")).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "grew 16 MiB"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_aborts_answers_500_with_a_clear_body_and_is_logged() {
    let (_server, tenant) = TestServer::with_tenant().await;
    let (id, endpoint) = wasm_function(&tenant, "wasm-trap", json!({})).await;
    failed_and_logged(
        &tenant,
        &id,
        &format!("{endpoint}/trap"),
        "failed while handling the request: it exited with status 1",
        "the handler failed on purpose",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_written_by_hand_answers_and_one_that_traps_answers_500_and_is_logged() {
    let (_server, tenant) = TestServer::with_tenant().await;
    // A few kilobytes of WebAssembly text against the canonical ABI (tests/wasm/wat).
    let (_, hello) = deployed_component(&tenant, "wasm-by-hand", json!({}), &wat_component("hello")).await;
    for _ in 0..3 {
        let (status, body) = text(reqwest::get(&hello).await.unwrap()).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    }
    // A real WebAssembly trap (`unreachable`), before any answer.
    let (id, trap) = deployed_component(&tenant, "wasm-trapping", json!({}), &wat_component("trap")).await;
    failed_and_logged(
        &tenant,
        &id,
        &trap,
        "failed while handling the request: it trapped: wasm `unreachable` instruction executed",
        "`unreachable` instruction executed",
    )
    .await;
    // The next request gets a fresh instance, which traps the same way: nothing is left broken.
    let (status, _) = text(reqwest::get(&trap).await.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, body) = text(reqwest::get(&hello).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_http_is_refused_by_default() {
    let (_server, tenant) = TestServer::with_tenant().await;
    let (_, endpoint) = wasm_function(&tenant, "wasm-egress", json!({})).await;
    // A service on the host's loopback that counts who reaches it.
    let witness = Witness::bind("127.0.0.1:0").await;
    for url in [witness.url.as_str(), "http://example.com/"] {
        let (status, body) = text(reqwest::get(format!("{endpoint}/egress?url={url}")).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert!(body.starts_with("refused:"), "{body}");
    }
    assert_eq!(witness.reached(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_egress_reaches_a_public_host_and_nothing_private() {
    let (server, tenant) =
        TestServer::start_with_tenant(|config| config.runner.egress = nuage_runner::Egress::Public).await;
    let (_, endpoint) = wasm_function(&tenant, "wasm-public", json!({})).await;
    // Test hosts of this test's own: one at a private address, one at an address outside
    // every non-public range (100.200.77.0/30, routed to the host's namespace here only).
    let private = TestHost::start("10.213.78", "private-host").await;
    let public = TestHost::start("100.200.77", "public-host").await;
    let api = server.server().endpoints().api.unwrap().port();
    let (status, body) = text(
        reqwest::get(format!("{endpoint}/egress?url=http://100.200.77.2:8000/"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "reached: 200"));
    // HTTPS goes there too, and fails as it should against a host that speaks plain HTTP.
    let (status, body) = text(
        reqwest::get(format!("{endpoint}/egress?url=https://100.200.77.2:8000/"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.starts_with("refused:"), "{body}");
    for url in [
        "http://10.213.78.2:8000/".to_owned(),
        format!("http://127.0.0.1:{api}/"),
        format!("http://localhost:{api}/"),
    ] {
        let (status, body) = text(reqwest::get(format!("{endpoint}/egress?url={url}")).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{url}: {body}");
        assert!(body.starts_with("refused:"), "{url}: {body}");
    }
    drop((private, public));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_egress_never_reaches_the_hosts_own_addresses() {
    // This machine at 100.200.81.1, outside every non-public range as a host's own public
    // address is, made before nuage starts (which reads the host's networks at start); a
    // service of the host's listening there answers and counts who reaches it. An instance's
    // sandbox refuses the host's own networks; a guest runs in the router, on the host itself.
    let own_network = TestHost::start("100.200.81", "own-network").await;
    let (server, tenant) =
        TestServer::start_with_tenant(|config| config.runner.egress = nuage_runner::Egress::Public).await;
    let (_, endpoint) = wasm_function(&tenant, "wasm-own-host", json!({})).await;
    // A public host, made after nuage started as in the other egress tests.
    let public = TestHost::start("100.200.82", "public-host").await;
    let witness = Witness::bind("100.200.81.1:0").await;
    let own = &witness.url;
    // The guest's egress works: the public host answers.
    let (status, body) = text(
        reqwest::get(format!("{endpoint}/egress?url=http://100.200.82.2:8000/"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "reached: 200"));
    let (status, body) = text(reqwest::get(format!("{endpoint}/egress?url={own}")).await.unwrap()).await;
    assert_eq!(
        witness.reached(),
        0,
        "the guest reached a service on the host's own address {own}: {status} {body}"
    );
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{own}: {body}");
    assert!(body.starts_with("refused:"), "{own}: {body}");
    drop((own_network, public));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_run_in_a_fresh_instance() {
    let (_server, tenant) = TestServer::with_tenant().await;
    let (_, endpoint) = wasm_function(&tenant, "wasm-fresh", json!({"max_scale": 1})).await;
    let client = reqwest::Client::new();
    let calls = (0..24).map(|_| {
        let (client, url) = (client.clone(), format!("{endpoint}/"));
        tokio::spawn(async move { text(client.get(url).send().await.unwrap()).await })
    });
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        // A global of the guest counts the requests its instance served: always the first.
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["served"], 1, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_proxy_component_is_refused_at_build_with_a_clear_message() {
    let (_server, tenant) = TestServer::with_tenant().await;
    // A core module (the 8-byte empty one), not a component.
    let core_module: &[u8] = b"\0asm\x01\0\0\0";
    let cases: [(&str, &Files, &str); 3] = [
        (
            "wasm-text",
            &[("handler.wasm", b"hello")],
            "`handler.wasm` is not a WebAssembly component",
        ),
        (
            "wasm-core",
            &[("handler.wasm", core_module)],
            "`handler.wasm` is not a WebAssembly component",
        ),
        (
            "wasm-none",
            &[("other.wasm", core_module)],
            "handler file `handler.wasm` not found in the archive",
        ),
    ];
    for (namespace, files, expected) in cases {
        let created = function(
            &tenant,
            namespace,
            json!({"name": "broken", "runtime": "wasm", "handler": "handler.wasm"}),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        upload(&tenant, &id, zip(files)).await;
        deploy(&tenant, &id).await;
        let done = settled_within(&tenant, &id, BUILD_LIMIT).await;
        assert_eq!(done["status"], "error", "{done}");
        let message = done["error_message"].as_str().unwrap();
        assert!(message.contains(expected), "{namespace}: {message}");
    }
    // A handler that names no `.wasm` file is refused at once.
    let namespace = tenant.create_namespace("wasm-handler").await;
    tenant.wait_ready(namespace["id"].as_str().unwrap()).await;
    let answer = tenant
        .post(
            "/functions",
            json!({"name": "f", "runtime": "wasm", "handler": "handler.handle",
                   "namespace_id": namespace["id"]}),
        )
        .await;
    assert_eq!(answer.refused_argument(), "handler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasm_runtime_is_offered_only_where_enabled() {
    let (_server, tenant) = TestServer::start_with_tenant(|config| config.functions.wasm = false).await;
    let runtimes = tenant.get("/runtimes").await.body;
    assert!(
        !runtimes["runtimes"].as_array().unwrap().contains(&json!("wasm")),
        "{runtimes}"
    );
    let namespace = tenant.create_namespace("wasm-off").await;
    tenant.wait_ready(namespace["id"].as_str().unwrap()).await;
    let answer = tenant
        .post(
            "/functions",
            json!({"name": "f", "runtime": "wasm", "namespace_id": namespace["id"]}),
        )
        .await;
    assert_eq!(answer.refused_argument(), "runtime");
}
