//! Isolation, endpoints: namespace names are unique only within a tenant, so endpoints carry a
//! random suffix of their namespace's (`<namespace without hyphens><suffix>-<name>`) and no
//! tenant can take another's address by naming its namespace and function the same.

use nuage_tests::apps::{deployed, runtime};
use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// A node handler that says whose it is, and shows what it was sent.
fn handler(owner: &str) -> Vec<u8> {
    format!(
        "exports.handle = async (event) => ({{ statusCode: 200, body: JSON.stringify({{ owner: {owner:?}, \
         authorization: event.headers.authorization || event.headers.Authorization || null }}) }});"
    )
    .into_bytes()
}

/// Returns the label an endpoint is reached by under the router's base URL, checking its form:
/// `<namespace without hyphens><8 lowercase letters or digits>-<name>`.
fn label<'a>(server: &TestServer, endpoint: &'a str, namespace: &str, name: &str) -> &'a str {
    let label = endpoint
        .strip_prefix(&format!("{}/", server.functions_url))
        .unwrap_or_else(|| panic!("`{endpoint}` is not under the router"));
    let (prefix, rest) = label.split_once('-').unwrap();
    assert_eq!(rest, name, "{endpoint}");
    let suffix = prefix
        .strip_prefix(&namespace.replace('-', ""))
        .unwrap_or_else(|| panic!("`{endpoint}` does not start with its namespace"));
    assert_eq!(suffix.len(), 8, "{endpoint}");
    assert!(
        suffix.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{endpoint}"
    );
    label
}

async fn call(url: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .header("Authorization", "Bearer victim-secret")
        .send()
        .await
        .expect("the router answers");
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tenant_naming_its_namespace_and_function_alike_never_gets_the_first_ones_calls() {
    let (server, victim) = TestServer::with_tenant().await;
    let attacker = server.tenant().await;
    let node = runtime(&victim, "node").await;
    let body = json!({"name": "hello", "runtime": node});

    let victims = deployed(&victim, "shop", body.clone(), &[("handler.js", &handler("victim"))]).await;
    // The attacker copies the names and deploys after the victim, as the hijack did.
    let attackers = deployed(&attacker, "shop", body, &[("handler.js", &handler("attacker"))]).await;
    let victim_endpoint = victims["endpoint"].as_str().unwrap();
    let attacker_endpoint = attackers["endpoint"].as_str().unwrap();

    // Every call to the victim's endpoint, credentials included, reaches the victim's code.
    for _ in 0..10 {
        let (status, answer) = call(victim_endpoint).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["owner"], "victim", "the victim's call reached {answer}");
    }
    let (status, answer) = call(attacker_endpoint).await;
    assert_eq!(
        (status, &answer["owner"]),
        (StatusCode::OK, &json!("attacker")),
        "{answer}"
    );
    let victim_label = label(&server, victim_endpoint, "shop", "hello");
    let attacker_label = label(&server, attacker_endpoint, "shop", "hello");
    assert_ne!(victim_label, attacker_label, "two tenants share an endpoint");
    // The name-only address of before leads nowhere.
    let (status, answer) = call(&format!("{}/shop-hello", server.functions_url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    // Names that differ only by hyphens share no endpoint either, even within one tenant.
    let (hyphenated, created) = namespace_with_hello(&attacker, &node, "sh-op").await;
    let hyphenated_label = label(&server, created["endpoint"].as_str().unwrap(), "sh-op", "hello");
    assert_ne!(hyphenated_label, victim_label);
    assert_ne!(hyphenated_label, attacker_label);
    // The suffix stays internal: the namespace's JSON keeps Scaleway's fields.
    assert!(hyphenated.get("endpoint_suffix").is_none(), "{hyphenated}");
    server.stop().await;
}

/// Creates namespace `shop` with function `hello` for `tenant`; returns the function's id.
async fn shop_hello(tenant: &Tenant, node: &str) -> String {
    let (_, created) = namespace_with_hello(tenant, node, "shop").await;
    created["id"].as_str().unwrap().to_owned()
}

/// Creates namespace `name` with function `hello` on `node` for `tenant`, once the namespace is
/// ready; returns the namespace as created and the function.
async fn namespace_with_hello(tenant: &Tenant, node: &str, name: &str) -> (Value, Value) {
    let namespace = tenant.create_namespace(name).await;
    let namespace_id = namespace["id"].as_str().unwrap();
    tenant.wait_ready(namespace_id).await;
    let created = tenant
        .post(
            "/functions",
            json!({"name": "hello", "runtime": node, "namespace_id": namespace_id}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    (namespace, created.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_from_before_suffixes_get_one_and_their_applications_move_at_start_up() {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut server = TestServer::start().await;
    let victim_key = nuage::admin::create_tenant(&server.config, "victim").await.unwrap();
    let attacker_key = nuage::admin::create_tenant(&server.config, "attacker").await.unwrap();
    let victim = Tenant::new(&server.base_url, victim_key.clone());
    let attacker = Tenant::new(&server.base_url, attacker_key.clone());
    let node = runtime(&victim, "node").await;
    let victim_function = shop_hello(&victim, &node).await;
    let attacker_function = shop_hello(&attacker, &node).await;
    let namespace_id = victim.get(&format!("/functions/{victim_function}")).await.body["namespace_id"].clone();
    let container_id = victim
        .create("/containers", json!({"name": "web", "namespace_id": namespace_id}))
        .await;

    // Back to the rows of an installation from before endpoint suffixes: no suffix, and both
    // tenants' `shop-hello` on the one shared endpoint.
    let old = format!("{}/shop-hello", server.functions_url);
    let mut db = sqlx::AnyConnection::connect(&server.database_url()).await.unwrap();
    for statement in [
        "update namespaces set endpoint_suffix = null",
        "update functions set endpoint = $1",
        "update containers set endpoint = $1",
    ] {
        sqlx::query(statement).bind(&old).execute(&mut db).await.unwrap();
    }
    db.close().await.unwrap();

    let config = server.config.clone();
    server.take_server().shutdown().await.unwrap();
    let again = nuage::start(config.clone()).await.unwrap();
    let base_url = format!("http://{}", again.endpoints().api.unwrap());
    let router = format!("http://{}", again.endpoints().functions.unwrap());
    let victim = Tenant::new(&base_url, victim_key.clone());
    let attacker = Tenant::new(&base_url, attacker_key);
    let moved = |tenant: &Tenant, path: String| {
        let (tenant, router) = (tenant.clone(), router.clone());
        async move {
            let endpoint = || async { tenant.get(&path).await.body["endpoint"].as_str().unwrap().to_owned() };
            let moved = |endpoint: &String| {
                endpoint.starts_with(&format!("{router}/shop")) && !endpoint.ends_with("/shop-hello")
            };
            let endpoint = eventually(Duration::from_secs(20), endpoint, moved).await;
            assert!(moved(&endpoint), "{path} still answers on `{endpoint}`");
            endpoint
        }
    };
    let victim_endpoint = moved(&victim, format!("/functions/{victim_function}")).await;
    let attacker_endpoint = moved(&attacker, format!("/functions/{attacker_function}")).await;
    let container_endpoint = moved(&victim, format!("/containers/{container_id}")).await;
    assert_ne!(victim_endpoint, attacker_endpoint);
    // Both applications of one namespace share its suffix.
    let prefix = |endpoint: &str| {
        endpoint
            .split_once("/shop")
            .unwrap()
            .1
            .split_once('-')
            .unwrap()
            .0
            .to_owned()
    };
    assert_eq!(prefix(&victim_endpoint), prefix(&container_endpoint));
    assert!(container_endpoint.ends_with("-web"), "{container_endpoint}");
    again.shutdown().await.unwrap();

    // A later start keeps every suffix and endpoint.
    let third = nuage::start(config).await.unwrap();
    let victim = Tenant::new(&format!("http://{}", third.endpoints().api.unwrap()), victim_key);
    let answer = victim.get(&format!("/functions/{victim_function}")).await;
    let label = |endpoint: &str| endpoint.rsplit('/').next().unwrap().to_owned();
    assert_eq!(
        label(answer.body["endpoint"].as_str().unwrap()),
        label(&victim_endpoint)
    );
    third.shutdown().await.unwrap();
    server.stop().await;
}
