//! Private functions and containers: per-namespace RSA keys, `GET /jwt/issue`, and the router's
//! token check (every way a token can be wrong is refused, each on its own).

use nuage_tests::apps::{deployed_private_node, runtime};
use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use std::time::Duration;

/// Answers with the token headers it received and what the platform told it.
const PRIVATE_JS: &[u8] = br#"
exports.handle = (event) => ({
  statusCode: 200,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({
    tokens: Object.keys(event.headers).filter((h) => /token/i.test(h)),
    public: process.env.SCW_PUBLIC,
    publicKey: process.env.SCW_PUBLIC_KEY,
  }),
});
"#;

async fn call(url: &str, header: Option<(&str, &str)>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn issue(tenant: &Tenant, query: &str) -> Value {
    let answer = tenant.get(&format!("/jwt/issue?{query}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

fn token(issued: &Value) -> String {
    issued["token"].as_str().unwrap().to_owned()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `claims` with the namespace's own private key, read and unsealed as the tokens
/// service does, to make tokens `/jwt/issue` would never make (not yet valid, say).
async fn signed_by_namespace(server: &TestServer, namespace_id: &str, claims: Value) -> String {
    let mut db = sqlx::AnyConnection::connect(&server.database_url()).await.unwrap();
    let sealed: String = sqlx::query_scalar("select private_key_sealed from namespace_keys where namespace_id = $1")
        .bind(namespace_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let master = nuage_core::MasterKey::load_or_create(&server.config.data_dir.join("master.key")).unwrap();
    let private = nuage_core::seal::open(
        &master.derive("namespace-keys"),
        &format!("namespace-key:{namespace_id}"),
        &sealed,
    )
    .unwrap();
    let claims: nuage_core::jwt::Claims = serde_json::from_value(claims).unwrap();
    nuage_core::jwt::sign(&private, &claims).unwrap()
}

fn claims(namespace_id: &str, application_id: &str, nbf: i64, exp: Option<i64>) -> Value {
    let now = nuage_core::clock::now_micros() / 1_000_000;
    json!({
        "application_claim": [{"namespace_id": namespace_id, "application_id": application_id}],
        "version": 2, "aud": "functions", "exp": exp, "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now, "iss": "SCALEWAY", "nbf": nbf, "sub": "token",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_functions_open_only_to_their_namespace_tokens() {
    sqlx::any::install_default_drivers();
    let (server, tenant) = TestServer::with_tenant().await;
    let node = runtime(&tenant, "node").await;
    let private = deployed_private_node(&tenant, "secret", "a", PRIVATE_JS).await;
    let namespace_id = private["namespace_id"].as_str().unwrap().to_owned();
    let id = private["id"].as_str().unwrap().to_owned();
    let endpoint = private["endpoint"].as_str().unwrap().to_owned();
    let sibling = tenant
        .post(
            "/functions",
            json!({"name": "b", "runtime": node, "namespace_id": namespace_id, "privacy": "private"}),
        )
        .await
        .body;
    let sibling_id = sibling["id"].as_str().unwrap().to_owned();
    nuage_tests::apps::upload(
        &tenant,
        &sibling_id,
        nuage_tests::apps::zip(&[("handler.js", PRIVATE_JS)]),
    )
    .await;
    nuage_tests::apps::deploy(&tenant, &sibling_id).await;
    assert_eq!(
        nuage_tests::apps::settled_within(&tenant, &sibling_id, Duration::from_secs(60)).await["status"],
        "ready"
    );

    // No token: not there.
    let (status, body) = call(&endpoint, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Tokens of each scope, in each header.
    let by_namespace = issue(&tenant, &format!("namespace_id={namespace_id}")).await;
    let by_function = issue(&tenant, &format!("function_id={id}")).await;
    let public_key = by_namespace["public_key"].as_str().unwrap();
    assert!(public_key.starts_with("-----BEGIN RSA PUBLIC KEY-----"), "{public_key}");
    assert_eq!(
        by_function["public_key"], by_namespace["public_key"],
        "one key per namespace"
    );
    for header in ["SCW_FUNCTIONS_TOKEN", "SCW-Functions-Token", "X-Auth-Token"] {
        for issued in [&by_namespace, &by_function] {
            let (status, body) = call(&endpoint, Some((header, &token(issued)))).await;
            assert_eq!(status, StatusCode::OK, "{header}: {body}");
            assert_eq!(body["tokens"], json!([]), "the token header is not forwarded: {body}");
            assert_eq!(body["public"], "false");
            assert_eq!(body["publicKey"].as_str().unwrap(), public_key);
        }
    }
    // The claims are those of a real Scaleway token.
    let payload = {
        use base64::Engine;
        let encoded = token(&by_function).split('.').nth(1).unwrap().to_owned();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .unwrap()
    };
    let claims_seen: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims_seen["iss"], "SCALEWAY");
    assert_eq!(claims_seen["aud"], "functions");
    assert_eq!(claims_seen["sub"], "token");
    assert_eq!(claims_seen["version"], 2);
    assert!(claims_seen["jti"].is_string() && claims_seen["iat"].is_i64() && claims_seen["nbf"].is_i64());
    assert!(
        claims_seen.get("exp").is_none(),
        "no expiration asked, none set: {claims_seen}"
    );
    assert_eq!(
        claims_seen["application_claim"],
        json!([{"namespace_id": "", "application_id": id}])
    );

    let forbidden = |label: &'static str, token: String| {
        let endpoint = endpoint.clone();
        async move {
            let (status, body) = call(&endpoint, Some(("X-Auth-Token", &token))).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {body}");
            assert_eq!(body["type"], "permissions_denied", "{label}: {body}");
        }
    };
    // A function-scoped token opens that function only.
    let for_sibling = issue(&tenant, &format!("function_id={sibling_id}")).await;
    forbidden("another application's token", token(&for_sibling)).await;
    // Forged: `none`, and HS256 keyed with the public key.
    let header_none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64(serde_json::to_string(&claims(&namespace_id, "", 0, None))
        .unwrap()
        .as_bytes());
    forbidden("alg none", format!("{header_none}.{body}.")).await;
    let header_hs = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{header_hs}.{body}");
    let mac = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(public_key.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    forbidden("HS256 with the public key", format!("{signing_input}.{}", b64(&mac))).await;
    // Tampered payload: the namespace token's signature over another claim.
    let genuine = token(&by_function);
    let parts: Vec<&str> = genuine.split('.').collect();
    let other_claim = b64(serde_json::to_string(&claims(&namespace_id, "", 0, None))
        .unwrap()
        .as_bytes());
    forbidden("tampered payload", format!("{}.{other_claim}.{}", parts[0], parts[2])).await;
    forbidden("garbage", "not-a-token".to_owned()).await;
    // Not yet valid, and expired (both signed with the right key).
    let now = nuage_core::clock::now_micros() / 1_000_000;
    forbidden(
        "not before in the future",
        signed_by_namespace(&server, &namespace_id, claims(&namespace_id, "", now + 3600, None)).await,
    )
    .await;
    forbidden(
        "expired",
        signed_by_namespace(
            &server,
            &namespace_id,
            claims(&namespace_id, "", now - 7200, Some(now - 3600)),
        )
        .await,
    )
    .await;
    // An expiring token works until it expires (tried until it is refused, which must not be
    // before its expiration date).
    let soon = time_in(2);
    let expiring = issue(&tenant, &format!("function_id={id}&expiration_date={soon}")).await;
    let (status, _) = call(&endpoint, Some(("X-Auth-Token", &token(&expiring)))).await;
    assert_eq!(status, StatusCode::OK);
    let attempt = || async {
        let (status, _) = call(&endpoint, Some(("X-Auth-Token", &token(&expiring)))).await;
        (status, time::OffsetDateTime::now_utc())
    };
    let (status, refused_at) = eventually(Duration::from_secs(10), attempt, |(status, _)| {
        *status != StatusCode::OK
    })
    .await;
    let expires_at = time::OffsetDateTime::parse(&soon, &time::format_description::well_known::Rfc3339).unwrap();
    assert_ne!(
        status,
        StatusCode::OK,
        "still accepted at {refused_at}, after {expires_at}"
    );
    assert!(refused_at >= expires_at, "refused at {refused_at}, before {expires_at}");
    forbidden("expired after use (cached)", token(&expiring)).await;
    // A date in the past is refused at issuance.
    let past = tenant
        .get(&format!(
            "/jwt/issue?function_id={id}&expiration_date=2020-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(past.status, StatusCode::BAD_REQUEST, "{}", past.body);
    assert_eq!(past.body["type"], "invalid_arguments");
    let none = tenant.get("/jwt/issue").await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST, "{}", none.body);
    let two = tenant
        .get(&format!("/jwt/issue?function_id={id}&namespace_id={namespace_id}"))
        .await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST, "{}", two.body);

    // Another namespace's token; another tenant may not issue for this one.
    let elsewhere_id = tenant.ready_namespace_id("elsewhere").await;
    let foreign = issue(&tenant, &format!("namespace_id={elsewhere_id}")).await;
    forbidden("another namespace's token", token(&foreign)).await;
    let stranger = server.tenant().await;
    for query in [format!("function_id={id}"), format!("namespace_id={namespace_id}")] {
        let refused = stranger.get(&format!("/jwt/issue?{query}")).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{query}: {}", refused.body);
    }

    // Public and private switch at once, without a redeploy.
    // Routers learn the change from the functions service's stream of route changes: at once,
    // but not within the PATCH's own answer, so a loaded machine may take a moment.
    let switched = |privacy: &'static str, answers: StatusCode| {
        let (tenant, id, endpoint) = (&tenant, &id, &endpoint);
        async move {
            let changed = tenant
                .patch(
                    &format!("/functions/{id}"),
                    json!({"privacy": privacy, "redeploy": false}),
                )
                .await;
            assert_eq!(changed.status, StatusCode::OK);
            eventually(
                Duration::from_secs(5),
                || call(endpoint, None),
                |(status, _)| *status == answers,
            )
            .await
        }
    };
    let (status, body) = switched("public", StatusCode::OK).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = switched("private", StatusCode::NOT_FOUND).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The private key is at rest only sealed.
    let mut db = sqlx::AnyConnection::connect(&server.database_url()).await.unwrap();
    let (public_stored, sealed): (String, String) =
        sqlx::query_as("select public_key, private_key_sealed from namespace_keys where namespace_id = $1")
            .bind(&namespace_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(public_stored, public_key);
    assert!(
        !sealed.contains("PRIVATE KEY") && !sealed.contains("MII"),
        "sealed: {}",
        &sealed[..40]
    );
    server.stop().await;
}

/// `now + seconds` in RFC 3339.
fn time_in(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_namespace_gets_a_new_key_and_old_tokens_stop() {
    sqlx::any::install_default_drivers();
    let (server, tenant) = TestServer::with_tenant().await;
    let first = deployed_private_node(&tenant, "again", "f", PRIVATE_JS).await;
    let old_namespace = first["namespace_id"].as_str().unwrap().to_owned();
    let old = issue(&tenant, &format!("namespace_id={old_namespace}")).await;
    let deleted = tenant.delete(&format!("/namespaces/{old_namespace}")).await;
    assert_eq!(deleted.status, StatusCode::OK);
    tenant
        .poll_until(
            &format!("/namespaces/{old_namespace}"),
            Duration::from_secs(20),
            |answer| answer.status == StatusCode::NOT_FOUND,
        )
        .await;
    let mut db = sqlx::AnyConnection::connect(&server.database_url()).await.unwrap();
    let left: i64 = sqlx::query_scalar("select count(*) from namespace_keys where namespace_id = $1")
        .bind(&old_namespace)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(left, 0, "deleting a namespace destroys its key");

    let second = deployed_private_node(&tenant, "again", "f", PRIVATE_JS).await;
    assert_ne!(
        second["endpoint"], first["endpoint"],
        "a namespace made again gets a new endpoint suffix"
    );
    let new = issue(
        &tenant,
        &format!("namespace_id={}", second["namespace_id"].as_str().unwrap()),
    )
    .await;
    assert_ne!(new["public_key"], old["public_key"], "a new key");
    let endpoint = second["endpoint"].as_str().unwrap();
    let (status, body) = call(endpoint, Some(("SCW_FUNCTIONS_TOKEN", &token(&old)))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the old namespace's token: {body}");
    let (status, body) = call(endpoint, Some(("SCW_FUNCTIONS_TOKEN", &token(&new)))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_containers_take_container_and_plugin_style_tokens() {
    let binary = nuage_tests::go_server_or_skip!();
    let (server, tenant) = TestServer::with_tenant().await;
    let namespace = tenant.ready_namespace("vault").await;
    let namespace_id = namespace["id"].as_str().unwrap().to_owned();
    let repository = namespace["registry_endpoint"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap()
        .1
        .to_owned();
    let layout = server.config.data_dir.join("registry").join(repository).join("box");
    nuage_tests::apps::write_image_layout(&layout, "latest", &[("server", &binary, 0o755)], &["/server"]);
    let created = tenant
        .post(
            "/containers",
            json!({"name": "box", "namespace_id": namespace_id, "privacy": "private"}),
        )
        .await
        .body;
    let id = created["id"].as_str().unwrap().to_owned();
    tenant.post(&format!("/containers/{id}/deploy"), json!({})).await;
    let ready = nuage_tests::apps::container_settled(&tenant, &id, Duration::from_secs(30)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let endpoint = ready["endpoint"].as_str().unwrap();
    let (status, _) = call(endpoint, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // container_id, and the plugin's way: a container's id sent as function_id.
    for query in [format!("container_id={id}"), format!("function_id={id}")] {
        let issued = issue(&tenant, &query).await;
        let (status, body) = call(endpoint, Some(("SCW-Functions-Token", &token(&issued)))).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(body["tokens"], "", "the token header is not forwarded: {body}");
        assert_eq!(body["public"], "false");
        assert_eq!(
            body["public_key"].as_str().unwrap(),
            issued["public_key"].as_str().unwrap()
        );
    }
    server.stop().await;
}
