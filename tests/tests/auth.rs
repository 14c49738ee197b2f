//! Authentication: `X-Auth-Token` on every call, revocation within 10 s, throttling of
//! failing addresses, and only hashes at rest.

use nuage_tests::TestServer;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Row};
use std::time::{Duration, Instant};

fn denied() -> serde_json::Value {
    json!({"message": "authentication is denied", "method": "api_key", "reason": "invalid_argument", "type": "denied_authentication"})
}

async fn get_with_token(url: &str, token: Option<(&str, &str)>) -> nuage_tests::Answer {
    let mut request = reqwest::Client::new().get(url);
    if let Some((header, value)) = token {
        request = request.header(header, value);
    }
    nuage_tests::answer(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_unknown_and_malformed_tokens_get_401() {
    let (server, tenant) = TestServer::with_tenant().await;
    let url = format!("{}/namespaces", tenant.api);
    for token in [None, Some(("X-Auth-Token", "")), Some(("X-Auth-Token", "not-a-uuid"))] {
        let answer = get_with_token(&url, token).await;
        assert_eq!((answer.status, answer.body), (StatusCode::UNAUTHORIZED, denied()));
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let answer = get_with_token(&url, Some(("X-Auth-Token", &unknown))).await;
    assert_eq!((answer.status, answer.body), (StatusCode::UNAUTHORIZED, denied()));
    // Every route of the API needs it, writes included, and nothing is written without it.
    let write = nuage_tests::answer(reqwest::Client::new().post(&url).json(&json!({"name": "sneaky"}))).await;
    assert_eq!(write.status, StatusCode::UNAUTHORIZED);
    // The header name is case-insensitive (the Python SDK sends it in lowercase).
    for header in ["x-auth-token", "X-AUTH-TOKEN"] {
        assert_eq!(
            get_with_token(&url, Some((header, &tenant.secret_key))).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(tenant.get("/namespaces").await.body["total_count"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_working_within_ten_seconds() {
    let (server, tenant) = TestServer::with_tenant().await;
    let second = nuage::admin::create_key(&server.config, tenant.organization_id)
        .await
        .unwrap();
    let other = nuage_tests::Tenant::new(&server.base_url, second);
    assert_eq!(tenant.create_namespace("kept").await["name"], "kept");
    // Warm the cache, so revocation has to get past it.
    assert_eq!(tenant.get("/namespaces").await.status, StatusCode::OK);

    nuage::admin::revoke_key(&server.config, &tenant.access_key)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    let answer = tenant
        .poll_until("/namespaces", Duration::from_secs(10), |a| {
            a.status == StatusCode::UNAUTHORIZED
        })
        .await;
    assert_eq!(answer.body, denied());
    assert!(revoked_at.elapsed() < Duration::from_secs(10));
    // The organization's other key still works and sees the same data.
    let listed = other.get("/namespaces").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["total_count"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_from_one_address_are_throttled() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.gateway.auth_failure_limit = 5).await;
    let url = format!("{}/namespaces", tenant.api);
    for _ in 0..5 {
        let wrong = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            get_with_token(&url, Some(("X-Auth-Token", &wrong))).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = get_with_token(&url, Some(("X-Auth-Token", "whatever"))).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", throttled.body);
    assert_eq!(throttled.body["type"], "too_many_requests");
    assert_eq!(throttled.body["limit"]["quota"], 5);
    server.stop().await;
}

/// Every tenant's functions share the host's address: one tenant guessing keys from it must
/// not lock the others out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_an_address_never_refuse_a_valid_key_from_it() {
    let (server, attacker) = TestServer::with_tenant().await;
    let victim = server.tenant().await;
    let limit = server.config.gateway.auth_failure_limit as usize;
    let url = format!("{}/namespaces", attacker.api);
    let mut statuses = Vec::new();
    for _ in 0..limit + 5 {
        let wrong = uuid::Uuid::new_v4().to_string();
        statuses.push(get_with_token(&url, Some(("X-Auth-Token", &wrong))).await.status);
    }
    let mut expected = vec![StatusCode::UNAUTHORIZED; limit];
    expected.extend([StatusCode::TOO_MANY_REQUESTS; 5]);
    assert_eq!(statuses, expected);
    // A key the gateway has never seen (so not cached), from the same address, at once.
    let answer = victim.get("/namespaces").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(attacker.get("/namespaces").await.status, StatusCode::OK);
    // The address's failures are still throttled.
    let wrong = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        get_with_token(&url, Some(("X-Auth-Token", &wrong))).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_argon2id_hashes_of_secrets_are_stored() {
    let (server, tenant) = TestServer::with_tenant().await;
    let mut connection = sqlx::AnyConnection::connect(&server.database_url()).await.unwrap();
    let rows = sqlx::query("select access_key, secret_hash, secret_digest from api_keys")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    // The bootstrap tenant's key and this test's.
    assert_eq!(rows.len(), 2);
    for row in rows {
        let hash: String = row.get("secret_hash");
        let digest: String = row.get("secret_digest");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(&tenant.secret_key) && !digest.contains(&tenant.secret_key));
        assert_eq!(digest.len(), 64);
    }
    server.stop().await;
}
