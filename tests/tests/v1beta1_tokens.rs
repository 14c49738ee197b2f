//! v1beta1 `/tokens`: tokens that open private functions, shown once, listed, and deleted; a
//! deleted token stops opening its function within 5 seconds on every router (revocation by
//! `jti`), in this process and in a router of its own; v1alpha2 `/jwt/issue` keeps working;
//! bad inputs name their argument; another tenant reaches none of it.

use nuage_tests::apps::deployed_private_node;
use nuage_tests::conformance::Spec;
use nuage_tests::{Tenant, TestServer, eventually_every};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PRIVATE_JS: &[u8] = b"exports.handle = async () => ({statusCode: 200, body: 'opened'});\n";

/// How long a deleted token may still open its function.
const REVOCATION_LIMIT: Duration = Duration::from_secs(5);

fn beta(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::FunctionsV1beta1, "fr-par")
}

/// Calls `url` with `token` in `X-Auth-Token`; returns the status and the body.
async fn call(url: &str, token: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("X-Auth-Token", token)
        .send()
        .await
        .expect("the router answers");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Creates a token through v1beta1 with `body`; returns the answer's body.
async fn create(beta: &Tenant, body: Value) -> Value {
    let created = beta.post("/tokens", body.clone()).await;
    assert_eq!(created.status, StatusCode::OK, "{body}: {}", created.body);
    created.body
}

/// Deploys private function `guarded` in a new namespace `namespace` (through v1alpha2);
/// returns its id, its namespace's id and its endpoint.
async fn guarded(tenant: &Tenant, namespace: &str) -> (String, String, String) {
    let function = deployed_private_node(tenant, namespace, "guarded", PRIVATE_JS).await;
    let text = |field: &str| function[field].as_str().unwrap().to_owned();
    (text("id"), text("namespace_id"), text("endpoint"))
}

/// Deletes `token` (whose id is `token_id`) and measures how long `url` still opens with it:
/// calls it every 50 ms until it is refused. Returns that time, after asserting the refusal
/// is a 403 and came within [`REVOCATION_LIMIT`].
async fn delete_and_time_refusal(beta: &Tenant, token_id: &str, token: &str, url: &str) -> Duration {
    let deleted = beta.delete(&format!("/tokens/{token_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["status"], "deleting", "{}", deleted.body);
    let since = Instant::now();
    let (status, body) = eventually_every(
        Duration::from_millis(50),
        REVOCATION_LIMIT + Duration::from_secs(5),
        || call(url, token),
        |(status, _)| *status != StatusCode::OK,
    )
    .await;
    let took = since.elapsed();
    assert_eq!(status, StatusCode::FORBIDDEN, "still opens after {took:?}: {body}");
    assert!(body.contains("permissions_denied"), "{body}");
    assert!(
        took < REVOCATION_LIMIT,
        "a deleted token opened the function for {took:?}"
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_opens_its_private_function_until_it_is_deleted() {
    let (server, alpha) = TestServer::with_tenant().await;
    let beta = beta(&alpha);
    let (function_id, namespace_id, endpoint) = guarded(&alpha, "tokens").await;

    // A function token, with an expiry the Python SDK writes for a naive datetime (no
    // offset: UTC); the token and the key are in this answer only.
    let by_function = create(
        &beta,
        json!({"function_id": function_id, "description": "ci", "expires_at": "2030-01-01T00:00:00"}),
    )
    .await;
    let function_token = by_function["token"].as_str().unwrap().to_owned();
    let function_token_id = by_function["id"].as_str().unwrap().to_owned();
    assert!(!function_token.is_empty(), "{by_function}");
    assert!(
        by_function["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN RSA PUBLIC KEY-----"),
        "{by_function}"
    );
    assert_eq!(by_function["function_id"], function_id.as_str());
    assert!(by_function.get("namespace_id").is_none(), "{by_function}");
    assert_eq!(by_function["status"], "ready");
    assert_eq!(by_function["description"], "ci");
    assert_eq!(by_function["expires_at"], "2030-01-01T00:00:00Z");
    // Its JWT's `jti` is its id: what revocation goes by.
    let payload: Value = {
        use base64::Engine;
        let encoded = function_token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(payload["jti"], function_token_id.as_str(), "{payload}");
    assert_eq!(payload["exp"], 1_893_456_000, "{payload}");

    // A namespace token, its expiry given with an offset and answered in UTC.
    let by_namespace = create(
        &beta,
        json!({"namespace_id": namespace_id, "expires_at": "2031-07-04T18:49:39+02:00"}),
    )
    .await;
    let namespace_token = by_namespace["token"].as_str().unwrap().to_owned();
    let namespace_token_id = by_namespace["id"].as_str().unwrap().to_owned();
    assert_eq!(by_namespace["namespace_id"], namespace_id.as_str());
    assert!(by_namespace.get("function_id").is_none(), "{by_namespace}");
    assert_eq!(by_namespace["expires_at"], "2031-07-04T16:49:39Z");
    assert_eq!(by_namespace["description"], "");
    // A v1alpha2 token of the same function.
    let issued = alpha.get(&format!("/jwt/issue?function_id={function_id}")).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let alpha_token = issued.body["token"].as_str().unwrap().to_owned();

    for (label, token) in [
        ("function", &function_token),
        ("namespace", &namespace_token),
        ("v1alpha2", &alpha_token),
    ] {
        let (status, body) = call(&endpoint, token).await;
        assert_eq!(status, StatusCode::OK, "{label} token: {body}");
        assert_eq!(body, "opened");
    }

    // Read later: no token text, no key.
    let read = beta.get(&format!("/tokens/{function_token_id}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["token"], "");
    assert_eq!(read.body["public_key"], "");
    assert_eq!(read.body["expires_at"], "2030-01-01T00:00:00Z");
    // Lists: by function, by namespace (its namespace-scoped tokens), all, newest first, paged.
    let ids = |answer: &nuage_tests::Answer| -> Vec<String> {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|token| {
                assert_eq!(token["token"], "", "{token}");
                token["id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let listed = beta.get(&format!("/tokens?function_id={function_id}")).await;
    assert_eq!(ids(&listed), [function_token_id.as_str()]);
    assert_eq!(listed.body["total_count"], 1);
    let listed = beta.get(&format!("/tokens?namespace_id={namespace_id}")).await;
    assert_eq!(ids(&listed), [namespace_token_id.as_str()]);
    let listed = beta.get("/tokens?order_by=created_at_desc").await;
    assert_eq!(ids(&listed), [namespace_token_id.as_str(), function_token_id.as_str()]);
    assert_eq!(listed.body["total_count"], 2);
    let listed = beta.get("/tokens?page_size=1&page=2").await;
    assert_eq!(ids(&listed), [namespace_token_id.as_str()]);
    assert_eq!(listed.body["total_count"], 2);

    // Deleted: refused within 5 s; the other tokens still open it.
    let took = delete_and_time_refusal(&beta, &function_token_id, &function_token, &endpoint).await;
    eprintln!("the deleted token was refused after {took:?}");
    for (label, token) in [("namespace", &namespace_token), ("v1alpha2", &alpha_token)] {
        let (status, body) = call(&endpoint, token).await;
        assert_eq!(status, StatusCode::OK, "{label} token after another's deletion: {body}");
    }
    let gone = beta.get(&format!("/tokens/{function_token_id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    assert_eq!(gone.body["type"], "not_found");
    let again = beta.delete(&format!("/tokens/{function_token_id}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    assert_eq!(ids(&beta.get("/tokens").await), [namespace_token_id.as_str()]);
    // The namespace token goes the same way.
    delete_and_time_refusal(&beta, &namespace_token_id, &namespace_token, &endpoint).await;
    let (status, body) = call(&endpoint, &alpha_token).await;
    assert_eq!(status, StatusCode::OK, "the v1alpha2 token: {body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_requests_name_their_argument_and_other_tenants_reach_nothing() {
    let (server, alpha) = TestServer::with_tenant().await;
    let beta = beta(&alpha);
    let (function_id, namespace_id, endpoint) = guarded(&alpha, "owned").await;

    let cases = [
        (json!({}), "function_id"),
        (
            json!({"function_id": function_id, "namespace_id": namespace_id}),
            "namespace_id",
        ),
        (json!({"function_id": "not-a-uuid"}), "function_id"),
        (json!({"namespace_id": 12}), "namespace_id"),
        (
            json!({"function_id": function_id, "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"function_id": function_id, "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"function_id": function_id, "description": 5}), "description"),
    ];
    beta.assert_each_refused("/tokens", cases).await;
    assert_eq!(
        beta.get("/tokens?order_by=name_asc").await.refused_argument(),
        "order_by"
    );
    assert_eq!(beta.get("/tokens?page_size=1000").await.refused_argument(), "page_size");
    assert_eq!(
        beta.get("/tokens?function_id=x").await.refused_argument(),
        "function_id"
    );
    assert_eq!(beta.get("/tokens/x").await.refused_argument(), "token_id");
    assert_eq!(beta.delete("/tokens/x").await.refused_argument(), "token_id");

    // Another tenant, as it would try: make a token for this function or namespace, read,
    // list and delete this tenant's token.
    let token = create(&beta, json!({"namespace_id": namespace_id})).await;
    let token_id = token["id"].as_str().unwrap().to_owned();
    let stranger = server.tenant().await.speaking(Spec::FunctionsV1beta1, "fr-par");
    for body in [
        json!({"function_id": function_id}),
        json!({"namespace_id": namespace_id}),
    ] {
        let refused = stranger.post("/tokens", body.clone()).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{body}: {}", refused.body);
    }
    let read = stranger.get(&format!("/tokens/{token_id}")).await;
    assert_eq!(read.status, StatusCode::NOT_FOUND, "{}", read.body);
    for query in ["", "?namespace_id=", "?function_id="] {
        let filter = match query {
            "?namespace_id=" => namespace_id.as_str(),
            "?function_id=" => function_id.as_str(),
            _ => "",
        };
        let listed = stranger.get(&format!("/tokens{query}{filter}")).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        assert_eq!(listed.body["total_count"], 0, "{query}: {}", listed.body);
    }
    let deleted = stranger.delete(&format!("/tokens/{token_id}")).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND, "{}", deleted.body);
    // Still this tenant's, still opening its function.
    assert_eq!(beta.get(&format!("/tokens/{token_id}")).await.status, StatusCode::OK);
    let (status, body) = call(&endpoint, token["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Nor does another region see it.
    let elsewhere = alpha.speaking(Spec::FunctionsV1beta1, "nl-ams");
    let read = elsewhere.get(&format!("/tokens/{token_id}")).await;
    assert_eq!(read.status, StatusCode::NOT_FOUND, "{}", read.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_in_another_process_refuses_a_deleted_token_within_5_seconds() {
    let secret = "tokens-revocation";
    let (server, alpha) = TestServer::start_with_tenant(|config| {
        config.internal_secret = Some(nuage_core::Secret::new(secret));
    })
    .await;
    let beta = beta(&alpha);
    let (function_id, _, endpoint) = guarded(&alpha, "far").await;

    // A second router, `nuage serve --roles router`, over the same services.
    let grpc = format!("http://{}", server.server().endpoints().grpc.unwrap());
    let port = nuage_tests::free_port();
    let env: Vec<(String, String)> = [
        ("NUAGE_DATABASE_URL", server.database_url()),
        ("NUAGE_INTERNAL_SECRET", secret.to_owned()),
        ("NUAGE_SERVICES__FUNCTIONS", grpc.clone()),
        ("NUAGE_SERVICES__CONTAINERS", grpc.clone()),
        ("NUAGE_SERVICES__RUNNER", grpc.clone()),
        ("NUAGE_SERVICES__TOKENS", grpc),
        ("NUAGE_ROUTER__LISTEN", format!("127.0.0.1:{port}")),
        ("NUAGE_ROUTER__INTERNAL_LISTEN", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut router = nuage_tests::Process::serve(env!("CARGO_BIN_EXE_nuage"), dir.path(), &["--roles", "router"], &env);
    router.wait_listening(port).await;
    // The same endpoint on the other router: its path names the function.
    let label = endpoint.trim_end_matches('/').rsplit('/').next().unwrap();
    let far_endpoint = format!("http://127.0.0.1:{port}/{label}");

    let token = create(&beta, json!({"function_id": function_id})).await;
    let text = token["token"].as_str().unwrap().to_owned();
    let token_id = token["id"].as_str().unwrap().to_owned();
    // Opened on both routers (the far one learns the route on its first request).
    for url in [&endpoint, &far_endpoint] {
        let (status, body) = eventually_every(
            Duration::from_millis(100),
            Duration::from_secs(10),
            || call(url, &text),
            |(status, _)| *status == StatusCode::OK,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{url}: {body}\n{}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
        );
    }
    let took = delete_and_time_refusal(&beta, &token_id, &text, &far_endpoint).await;
    eprintln!("the far router refused the deleted token after {took:?}");
    // Each router looks at the revocations on its own clock: this process's too, within the
    // same 5 s of the delete (it may look a little after the far one did).
    let (status, body) = eventually_every(
        Duration::from_millis(50),
        Duration::from_secs(5).saturating_sub(took),
        || call(&endpoint, &text),
        |(status, _)| *status == StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "this process's router too: {body}");
    router.kill();
    server.stop().await;
}
