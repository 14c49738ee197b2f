//! Namespaces over REST: the full CRUD round trip, pagination and ordering, every error
//! class, and isolation between tenants.

use nuage_tests::{Tenant, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const NAMESPACE_FIELDS: [&str; 10] = [
    "id",
    "name",
    "environment_variables",
    "organization_id",
    "status",
    "registry_namespace_id",
    "error_message",
    "registry_endpoint",
    "description",
    "region",
];

fn assert_namespace_shape(namespace: &Value) {
    let object = namespace.as_object().expect("namespace is an object");
    let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = NAMESPACE_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "namespace fields: {namespace}");
}

fn assert_invalid_argument(answer: &nuage_tests::Answer, argument: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.body["type"], "invalid_arguments", "{}", answer.body);
    assert_eq!(answer.body["message"], "invalid argument(s)");
    let details = answer.body["details"].as_array().expect("details");
    assert!(
        details
            .iter()
            .any(|d| d["argument_name"] == argument && d["help_message"].as_str().is_some_and(|h| !h.is_empty())),
        "no detail names `{argument}`: {}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_round_trip() {
    let (server, tenant) = TestServer::with_tenant().await;

    let created = tenant
        .post(
            "/namespaces",
            json!({"name": "shop", "description": "the shop", "environment_variables": {"MODE": "prod", "LEVEL": "3"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let namespace = created.body;
    assert_namespace_shape(&namespace);
    assert_eq!(namespace["status"], "pending");
    assert_eq!(namespace["name"], "shop");
    assert_eq!(namespace["description"], "the shop");
    assert_eq!(namespace["region"], "fr-par");
    assert_eq!(namespace["organization_id"], tenant.organization_id.to_string());
    assert_eq!(
        namespace["environment_variables"],
        json!({"MODE": "prod", "LEVEL": "3"})
    );
    assert_eq!(namespace["registry_endpoint"], "");
    let id = namespace["id"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&id).expect("id is a UUID");

    let ready = tenant.wait_ready(&id).await;
    assert_namespace_shape(&ready);
    assert!(!ready["registry_namespace_id"].as_str().unwrap().is_empty());
    assert!(ready["registry_endpoint"].as_str().unwrap().contains("shop"));

    let listed = tenant.get("/namespaces").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["total_count"], 1);
    assert_eq!(listed.body["namespaces"][0], ready);

    // Only the fields sent change; null means "unchanged".
    let patched = tenant
        .patch(&format!("/namespaces/{id}"), json!({"description": "new words"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["description"], "new words");
    assert_eq!(
        patched.body["environment_variables"],
        json!({"MODE": "prod", "LEVEL": "3"})
    );
    let patched = tenant
        .patch(
            &format!("/namespaces/{id}"),
            json!({"environment_variables": {"ONLY": "this"}, "description": null}),
        )
        .await;
    assert_eq!(patched.body["environment_variables"], json!({"ONLY": "this"}));
    assert_eq!(patched.body["description"], "new words");
    assert_eq!(tenant.get(&format!("/namespaces/{id}")).await.body, patched.body);

    let deleted = tenant.delete(&format!("/namespaces/{id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_namespace_shape(&deleted.body);
    assert_eq!(deleted.body["status"], "deleting");
    let gone = tenant
        .wait_gone(&format!("/namespaces/{id}"), Duration::from_secs(10))
        .await;
    assert_eq!(
        gone.body,
        json!({"message": "namespace was not found", "resource": "namespace", "resource_id": id, "type": "not_found"})
    );
    assert_eq!(
        tenant.get("/namespaces").await.body,
        json!({"namespaces": [], "total_count": 0})
    );
    assert_eq!(
        tenant.delete(&format!("/namespaces/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

fn names(answer: &nuage_tests::Answer) -> Vec<String> {
    answer.body["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_and_every_order_over_45_namespaces() {
    let (server, tenant) = TestServer::with_tenant().await;
    // A neighbour's namespaces, and the tenant's own in another region: no page and no count
    // below takes them in.
    let neighbour = server.tenant().await;
    neighbour.create_namespace("ns-00").await;
    neighbour.create_namespace("ns-99").await;
    let amsterdam = tenant.speaking(nuage_tests::conformance::Spec::FunctionsV1alpha2, "nl-ams");
    amsterdam.create_namespace("ns-98").await;
    // Creation order differs from name order: names are a permutation of 0..45.
    let created: Vec<String> = (0..45).map(|i| format!("ns-{:02}", (i * 7) % 45)).collect();
    for name in &created {
        tenant.create_namespace(name).await;
    }
    let mut by_name = created.clone();
    by_name.sort();
    let expected = [
        ("created_at_asc", created.clone()),
        ("created_at_desc", created.iter().rev().cloned().collect::<Vec<_>>()),
        ("name_asc", by_name.clone()),
        ("name_desc", by_name.iter().rev().cloned().collect::<Vec<_>>()),
    ];
    for (order, expected) in expected {
        let mut seen = Vec::new();
        for (page, size) in [(1, 20), (2, 20), (3, 5)] {
            let answer = tenant
                .get(&format!("/namespaces?order_by={order}&page={page}&page_size=20"))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            assert_eq!(answer.body["total_count"], 45, "{order} page {page}");
            assert_eq!(names(&answer).len(), size, "{order} page {page}");
            seen.extend(names(&answer));
        }
        assert_eq!(seen, expected, "order {order}");
        let past_end = tenant
            .get(&format!("/namespaces?order_by={order}&page=4&page_size=20"))
            .await;
        assert_eq!(past_end.body, json!({"namespaces": [], "total_count": 45}));
    }
    // Defaults: page 1, 20 items, oldest first.
    let default = tenant.get("/namespaces").await;
    assert_eq!(names(&default), created[..20].to_vec());
    let all = tenant.get("/namespaces?page_size=100").await;
    assert_eq!(names(&all).len(), 45);
    // The name filter is exact, and total_count counts matches only.
    let one = tenant.get("/namespaces?name=ns-07").await;
    assert_eq!(
        (names(&one), one.body["total_count"].clone()),
        (vec!["ns-07".to_owned()], json!(1))
    );
    let own = tenant
        .get(&format!(
            "/namespaces?organization_id={}&page_size=1",
            tenant.organization_id
        ))
        .await;
    assert_eq!(own.body["total_count"], 45);
    // Past its own end, the neighbour's count is its own too.
    assert_eq!(
        neighbour.get("/namespaces?page=2&page_size=20").await.body,
        json!({"namespaces": [], "total_count": 2})
    );
    assert_eq!(amsterdam.get("/namespaces").await.body["total_count"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_a_400_naming_the_argument() {
    let (server, tenant) = TestServer::with_tenant().await;
    let existing = tenant.create_namespace("taken").await;
    let id = existing["id"].as_str().unwrap();

    // Malformed JSON, a non-object, a wrong type.
    let raw = |body: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/namespaces", tenant.api))
            .header("X-Auth-Token", &tenant.secret_key)
            .header("content-type", "application/json")
            .body(body)
    };
    assert_invalid_argument(&nuage_tests::answer(raw("{\"name\": ")).await, "body");
    assert_invalid_argument(&nuage_tests::answer(raw("[1, 2]")).await, "body");
    assert_invalid_argument(&tenant.post("/namespaces", json!({"name": 42})).await, "name");
    assert_invalid_argument(
        &tenant
            .post("/namespaces", json!({"name": "a", "environment_variables": {"A": 1}}))
            .await,
        "environment_variables.A",
    );
    assert_invalid_argument(
        &tenant
            .post("/namespaces", json!({"name": "a", "environment_variables": ["A"]}))
            .await,
        "environment_variables",
    );
    // Names fit a DNS host name.
    assert_invalid_argument(&tenant.post("/namespaces", json!({})).await, "name");
    for bad in ["Upper", "under_score", "-lead", "trail-", "9start", &"x".repeat(35)] {
        assert_invalid_argument(&tenant.post("/namespaces", json!({"name": bad})).await, "name");
    }
    assert_invalid_argument(
        &tenant
            .post("/namespaces", json!({"name": "d", "description": "x".repeat(256)}))
            .await,
        "description",
    );
    // Environment variables: each violation names its variable.
    let answer = tenant
        .post(
            "/namespaces",
            json!({"name": "env", "environment_variables": {"1BAD": "x", "SCW_SECRET": "x", "LONG": "v".repeat(1001), "FINE": "ok"}}),
        )
        .await;
    for argument in [
        "environment_variables.1BAD",
        "environment_variables.SCW_SECRET",
        "environment_variables.LONG",
    ] {
        assert_invalid_argument(&answer, argument);
    }
    assert_eq!(answer.body["details"].as_array().unwrap().len(), 3);
    let many: serde_json::Map<String, Value> = (0..101).map(|i| (format!("V{i}"), json!("x"))).collect();
    assert_invalid_argument(
        &tenant
            .post("/namespaces", json!({"name": "many", "environment_variables": many}))
            .await,
        "environment_variables",
    );
    assert_invalid_argument(
        &tenant
            .patch(
                &format!("/namespaces/{id}"),
                json!({"environment_variables": {"SCW_X": "1"}}),
            )
            .await,
        "environment_variables.SCW_X",
    );
    // Path and query.
    assert_invalid_argument(&tenant.get("/namespaces/not-a-uuid").await, "namespace_id");
    assert_invalid_argument(&tenant.delete("/namespaces/123").await, "namespace_id");
    assert_invalid_argument(&tenant.get("/namespaces?order_by=size_asc").await, "order_by");
    assert_invalid_argument(&tenant.get("/namespaces?page_size=101").await, "page_size");
    assert_invalid_argument(&tenant.get("/namespaces?page_size=0").await, "page_size");
    assert_invalid_argument(&tenant.get("/namespaces?page=0").await, "page");
    assert_invalid_argument(&tenant.get("/namespaces?page=two").await, "page");
    assert_invalid_argument(&tenant.get("/namespaces?organization_id=nope").await, "organization_id");
    let region = tenant
        .get(&format!(
            "{}/functions/v1alpha2/regions/mars-1/namespaces",
            tenant.base_url
        ))
        .await;
    assert_invalid_argument(&region, "region");
    let help = region.body["details"][0]["help_message"].as_str().unwrap();
    assert!(
        help.contains("fr-par") && help.contains("nl-ams") && help.contains("pl-waw"),
        "{help}"
    );
    // Another region is another space.
    let other_region = tenant
        .get(&format!(
            "{}/functions/v1alpha2/regions/nl-ams/namespaces",
            tenant.base_url
        ))
        .await;
    assert_eq!(other_region.body["total_count"], 0);

    // Nothing above was stored.
    let listed = tenant.get("/namespaces").await;
    assert_eq!(listed.body["total_count"], 1, "{}", listed.body);
    assert_eq!(
        tenant.get(&format!("/namespaces/{id}")).await.body["environment_variables"],
        json!({})
    );

    // Duplicate names: already_exists pointing at the holder.
    let duplicate = tenant.post("/namespaces", json!({"name": "taken"})).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.body["type"], "already_exists");
    assert_eq!(duplicate.body["resource"], "namespace");
    assert_eq!(duplicate.body["resource_id"], id);
    assert!(duplicate.body["help_message"].as_str().unwrap().contains("taken"));

    // organization_id in a body must be the caller's own.
    let foreign = tenant
        .post(
            "/namespaces",
            json!({"name": "f", "organization_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.body);
    assert_eq!(foreign.body["type"], "permissions_denied");
    assert_eq!(foreign.body["message"], "insufficient permissions");
    let own = tenant
        .post(
            "/namespaces",
            json!({"name": "mine", "organization_id": tenant.organization_id}),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_invalid_argument(
        &tenant
            .post("/namespaces", json!({"name": "m", "organization_id": "bad"}))
            .await,
        "organization_id",
    );

    // Bodies over 1 MiB: 413, still JSON.
    let huge = tenant
        .post(
            "/namespaces",
            json!({"name": "big", "description": "x".repeat(1024 * 1024)}),
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.body["type"], "invalid_arguments");

    // Unknown ids and routes: 404, JSON.
    let missing = uuid::Uuid::new_v4();
    let not_found = tenant.get(&format!("/namespaces/{missing}")).await;
    assert_eq!(not_found.status, StatusCode::NOT_FOUND);
    assert_eq!(not_found.body["resource_id"], missing.to_string());
    assert_eq!(
        tenant.patch(&format!("/namespaces/{missing}"), json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(tenant.get("/nothing-here").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        tenant.send(Method::PUT, "/namespaces", None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_with_a_body_is_fine_and_create_tolerates_any_content_type() {
    let (server, tenant) = TestServer::with_tenant().await;
    // SDKs send `{}` on every GET and DELETE.
    let get = tenant.send(Method::GET, "/namespaces", Some(json!({}))).await;
    assert_eq!(get.status, StatusCode::OK);
    // curl -d sends application/x-www-form-urlencoded.
    let created = nuage_tests::answer(
        reqwest::Client::new()
            .post(format!("{}/namespaces", tenant.api))
            .header("x-auth-token", &tenant.secret_key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(r#"{"name":"curl-made"}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let deleted = tenant
        .send(Method::DELETE, &format!("/namespaces/{id}"), Some(json!({})))
        .await;
    assert_eq!(deleted.body["status"], "deleting");
    server.stop().await;
}

async fn assert_hidden(intruder: &Tenant, id: &str) {
    let path = format!("/namespaces/{id}");
    for answer in [
        intruder.get(&path).await,
        intruder.patch(&path, json!({"description": "mine now"})).await,
        intruder.delete(&path).await,
    ] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
        assert_eq!(answer.body["type"], "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_or_touch_each_others_namespaces() {
    let (server, alice) = TestServer::with_tenant().await;
    let bob = server.tenant().await;
    let namespace = alice.create_namespace("private").await;
    let id = namespace["id"].as_str().unwrap();
    alice.wait_ready(id).await;

    assert_hidden(&bob, id).await;
    assert_eq!(
        bob.get("/namespaces").await.body,
        json!({"namespaces": [], "total_count": 0})
    );
    let filtered = bob
        .get(&format!("/namespaces?organization_id={}", alice.organization_id))
        .await;
    assert_eq!(filtered.body, json!({"namespaces": [], "total_count": 0}));
    let by_name = bob.get("/namespaces?name=private").await;
    assert_eq!(by_name.body["total_count"], 0);
    // Names are per tenant: bob may use the same one.
    let bobs = bob.create_namespace("private").await;
    assert_ne!(bobs["id"], namespace["id"]);

    // Alice's namespace is untouched by bob's attempts.
    let after = alice.get(&format!("/namespaces/{id}")).await;
    assert_eq!(after.body["status"], "ready");
    assert_eq!(after.body["description"], "");
    assert_eq!(alice.get("/namespaces").await.body["total_count"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_namespace_quota_gets_quotas_exceeded() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.namespaces.max_per_organization = 2).await;
    let first = tenant.create_namespace("one").await;
    tenant.create_namespace("two").await;
    let refused = tenant.post("/namespaces", json!({"name": "three"})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(
        refused.body,
        json!({
            "details": [{"current": 2, "quota": 2, "resource": "namespaces"}],
            "message": "quota(s) exceeded for this resource",
            "type": "quotas_exceeded",
        })
    );
    assert_eq!(tenant.get("/namespaces").await.body["total_count"], 2);
    // The quota is per tenant.
    server.tenant().await.create_namespace("three").await;
    // Once a namespace is gone, its slot is free again.
    let id = first["id"].as_str().unwrap();
    tenant.delete(&format!("/namespaces/{id}")).await;
    tenant
        .wait_gone(&format!("/namespaces/{id}"), Duration::from_secs(10))
        .await;
    tenant.create_namespace("three").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_take_a_tenant_past_its_namespace_quota() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.namespaces.max_per_organization = 5).await;
    let mut created = 0;
    for answer in tenant.post_namespaces_at_once("burst", 30).await {
        match answer.status {
            StatusCode::OK => created += 1,
            StatusCode::FORBIDDEN => assert_eq!(answer.body["type"], "quotas_exceeded", "{}", answer.body),
            other => panic!("create answered {other}: {}", answer.body),
        }
    }
    assert_eq!(created, 5, "30 concurrent creates against a quota of 5");
    assert_eq!(tenant.get("/namespaces").await.body["total_count"], 5);
    server.stop().await;
}

/// Returns the public key the tokens service stored for `namespace_id`.
async fn public_key(server: &TestServer, namespace_id: &str) -> String {
    sqlx::query_scalar("select public_key from namespace_keys where namespace_id = $1")
        .bind(namespace_id)
        .fetch_one(&mut server.database().await)
        .await
        .unwrap()
}

/// Returns the figure `name` on `/metrics` (0 when it is not there yet).
async fn figure(server: &TestServer, name: &str) -> u64 {
    let metrics = server.metrics().await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_new_namespace_takes_a_key_pair_made_ahead_and_the_stock_is_refilled() {
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        config.tokens.key_stock = 1;
        config.tokens.key_workers = 1;
    })
    .await;
    let stocked = || figure(&server, "nuage_tokens_key_pairs_stocked");
    let limit = Duration::from_secs(30);
    assert_eq!(
        nuage_tests::eventually(limit, stocked, |count| *count == 1).await,
        1,
        "the stock filled"
    );

    let namespace = tenant.ready_namespace_id("from-stock").await;
    assert_eq!(figure(&server, "nuage_tokens_key_pairs_from_stock_total").await, 1);
    assert_eq!(figure(&server, "nuage_tokens_key_pairs_made_on_demand_total").await, 0);
    // The pair from the stock signs the namespace's tokens.
    let issued = tenant.get(&format!("/jwt/issue?namespace_id={namespace}")).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    assert_eq!(
        nuage_tests::eventually(limit, stocked, |count| *count == 1).await,
        1,
        "the stock refilled"
    );

    // More namespaces than the stock holds: each still gets a pair, and no pair is given twice.
    let answers = tenant.post_namespaces_at_once("burst", 3).await;
    let mut public_keys = std::collections::HashSet::from([public_key(&server, &namespace).await]);
    for answer in answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let id = answer.body["id"].as_str().unwrap().to_owned();
        tenant.wait_ready(&id).await;
        let key = public_key(&server, &id).await;
        assert!(
            public_keys.insert(key),
            "namespace {id} got a pair another namespace has"
        );
    }
    let given = figure(&server, "nuage_tokens_key_pairs_from_stock_total").await
        + figure(&server, "nuage_tokens_key_pairs_made_on_demand_total").await;
    assert_eq!(given, 4, "four namespaces, four pairs given");
    server.stop().await;
}
