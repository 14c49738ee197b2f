//! Scaleway Containers v1 (`/containers/v1/regions/{region}`, the Python SDK's
//! `ContainerV1API`): namespaces and containers in v1's shapes, sent as its SDKs send them
//! (every unset field as a zero, an empty map or list, or `unknown_*`), over the same services
//! as the other versions. Every 200 body is checked against Scaleway's containers v1 spec.

use nuage_tests::apps::{PROBED_GO, push_server_image};
use nuage_tests::conformance::Spec;
use nuage_tests::{Answer, Tenant, TestServer, ok};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const MIB: u64 = 1 << 20;

fn v1(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::ContainersV1, "fr-par")
}

/// What the Python SDK's `create_container` sends for what it is not given.
fn sdk_create_defaults() -> Value {
    json!({"environment_variables": {}, "secret_environment_variables": {}, "min_scale": 0, "max_scale": 0,
           "memory_limit_bytes": 0, "mvcpu_limit": 0, "privacy": "unknown_privacy", "protocol": "unknown_protocol",
           "port": 0, "https_connections_only": false, "sandbox": "unknown_sandbox", "local_storage_limit_bytes": 0,
           "tags": [], "command": [], "args": []})
}

fn merged(base: Value, extra: Value) -> Value {
    let mut base = base;
    base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    base
}

/// Waits until container `id` has left its transient states.
async fn settled(api: &Tenant, id: &str) -> Value {
    api.poll_until(&format!("/containers/{id}"), Duration::from_secs(60), |answer| {
        !["creating", "updating"].contains(&answer.body["status"].as_str().unwrap_or_default())
    })
    .await
    .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_made_through_v1_as_the_sdk_sends_it_is_deployed_keeps_unset_fields_and_is_the_same_container_elsewhere()
 {
    let binary = nuage_tests::go_server_or_skip!(PROBED_GO);
    // Answers are checked against the spec: it describes these routes.
    nuage_tests::conformance::assert_describes(
        Spec::ContainersV1,
        &[
            ("GET", "/containers/x"),
            ("PATCH", "/containers/x"),
            ("POST", "/namespaces"),
        ],
    );
    let (server, alpha) = TestServer::with_tenant().await;
    let api = v1(&alpha);
    assert_eq!(ok(&api.get("").await)["version"], "v1");

    let created = api
        .post(
            "/namespaces",
            json!({"name": "v-one", "project_id": alpha.project_id, "description": "",
                   "environment_variables": {"MODE": "prod"}, "secret_environment_variables": {"SHARED": "ns-secret"},
                   "tags": []}),
        )
        .await;
    let namespace_id = ok(&created)["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["status"], "creating");
    let shared_hash = created.body["secret_environment_variables"]["SHARED"].as_str().unwrap();
    assert!(shared_hash.starts_with("$argon2id$"), "{shared_hash}");
    let namespace = api.wait_ready(&namespace_id).await;
    // The namespace's registry is not part of v1's namespace: v1beta1 shows it.
    let beta_namespace = alpha
        .speaking(Spec::ContainersV1beta1, "fr-par")
        .get(&format!("/namespaces/{namespace_id}"))
        .await;
    let endpoint = ok(&beta_namespace)["registry_endpoint"].as_str().unwrap().to_owned();
    assert_eq!(namespace["environment_variables"], json!({"MODE": "prod"}));
    push_server_image(&server, &endpoint, "probed", &binary);

    let body = merged(
        sdk_create_defaults(),
        json!({"namespace_id": namespace_id, "name": "web", "image": format!("{endpoint}/probed:latest"),
               "port": 3000, "args": ["3000", "500ms"], "memory_limit_bytes": 512 * MIB, "mvcpu_limit": 500,
               "secret_environment_variables": {"TOKEN": "s3cret"}, "timeout": "60s",
               "startup_probe": {"failure_threshold": 20, "interval": "0.2s", "timeout": "1s", "http": {"path": "/healthz"}, "tcp": null}}),
    );
    let made = api.post("/containers", body).await;
    let container = ok(&made).clone();
    let id = container["id"].as_str().unwrap().to_owned();
    // v1 deploys what it makes.
    assert_eq!(container["status"], "creating", "{container}");
    assert_eq!(container["memory_limit_bytes"], 512 * MIB);
    assert_eq!(container["mvcpu_limit"], 500);
    assert_eq!(container["port"], 3000);
    assert_eq!(container["min_scale"], 0);
    assert_eq!(container["max_scale"], 20);
    assert_eq!(container["timeout"], "60s");
    assert_eq!(container["startup_probe"]["http"]["path"], "/healthz");
    let token_hash = container["secret_environment_variables"]["TOKEN"].as_str().unwrap();
    assert!(
        token_hash.starts_with("$argon2id$") && !token_hash.contains("s3cret"),
        "{token_hash}"
    );

    let ready = settled(&api, &id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let answer = nuage_tests::get_json(ready["public_endpoint"].as_str().unwrap()).await;
    assert_eq!(answer["command"], "/server 3000 500ms", "{answer}");

    // The same container through containers v1beta1 and functions v1alpha2.
    let beta = alpha
        .speaking(Spec::ContainersV1beta1, "fr-par")
        .get(&format!("/containers/{id}"))
        .await;
    assert_eq!(ok(&beta)["port"], 3000);
    assert_eq!(beta.body["memory_limit"], 512);
    assert_eq!(beta.body["cpu_limit"], 500);
    assert_eq!(ok(&alpha.get(&format!("/containers/{id}")).await)["status"], "ready");

    // An update as the SDK sends it: only the description is set; the rest stays, and the
    // change redeploys it.
    let update = json!({"environment_variables": {}, "secret_environment_variables": {}, "min_scale": 0, "max_scale": 0,
                        "memory_limit_bytes": 0, "mvcpu_limit": 0, "privacy": "unknown_privacy", "description": "the web",
                        "protocol": "unknown_protocol", "port": 0, "https_connection_only": false,
                        "sandbox": "unknown_sandbox", "local_storage_limit_bytes": 0, "tags": [], "command": [], "args": []});
    let updated = api.patch(&format!("/containers/{id}"), update).await;
    let updated = ok(&updated).clone();
    assert_eq!(updated["description"], "the web");
    assert_eq!(updated["status"], "updating", "{updated}");
    assert_eq!(updated["port"], 3000);
    assert_eq!(updated["args"], json!(["3000", "500ms"]));
    assert_eq!(updated["memory_limit_bytes"], 512 * MIB);
    assert_eq!(
        updated["secret_environment_variables"]["TOKEN"],
        container["secret_environment_variables"]["TOKEN"]
    );
    assert_eq!(settled(&api, &id).await["status"], "ready");

    // Redeploy: the same container again.
    let redeploying = api.post(&format!("/containers/{id}/redeploy"), json!({})).await;
    assert_eq!(ok(&redeploying)["status"], "updating");
    assert_eq!(settled(&api, &id).await["status"], "ready");

    let listed = api.get(&format!("/containers?namespace_id={namespace_id}")).await;
    assert_eq!(ok(&listed)["total_count"], 1);
    let deleted = api.delete(&format!("/containers/{id}")).await;
    assert_eq!(ok(&deleted)["status"], "deleting");
    server.stop().await;
}

#[tokio::test]
async fn bad_v1_requests_name_their_argument_and_other_tenants_reach_nothing() {
    let (server, alpha) = TestServer::with_tenant().await;
    let api = v1(&alpha);
    let namespace_id = api
        .create("/namespaces", json!({"name": "strict", "project_id": alpha.project_id}))
        .await;
    api.wait_ready(&namespace_id).await;
    let base = merged(
        sdk_create_defaults(),
        json!({"namespace_id": namespace_id, "name": "refused", "image": "registry.example.com/team/app:1"}),
    );
    for (extra, argument) in [
        (json!({"image": ""}), "image"),
        (json!({"image": "Not An Image"}), "image"),
        (json!({"memory_limit_bytes": 123}), "memory_limit_bytes"),
        (json!({"memory_limit_bytes": 100 * MIB}), "memory_limit_bytes"),
        (json!({"mvcpu_limit": 10}), "mvcpu_limit"),
        (
            json!({"liveness_probe": {"failure_threshold": 3, "tcp": {}}}),
            "liveness_probe",
        ),
        (json!({"https_connections_only": true}), "https_connections_only"),
        (
            json!({"startup_probe": {"http": {"path": "x"}}}),
            "startup_probe.http.path",
        ),
        (
            json!({"secret_environment_variables": ["TOKEN"]}),
            "secret_environment_variables",
        ),
        (json!({"protocol": "h2c"}), "protocol"),
        (json!({"timeout": "forever"}), "timeout"),
    ] {
        let refused = api.post("/containers", merged(base.clone(), extra.clone())).await;
        assert_eq!(refused.refused_argument(), argument, "{extra}: {}", refused.body);
    }
    let listed = api.get(&format!("/containers?namespace_id={namespace_id}")).await;
    assert_eq!(ok(&listed)["total_count"], 0, "{}", listed.body);

    // Made without deploying (through v1beta1), then reached by another tenant through v1.
    let beta = alpha.speaking(Spec::ContainersV1beta1, "fr-par");
    let id = beta
        .create(
            "/containers",
            json!({"namespace_id": namespace_id, "name": "mine", "registry_image": "registry.example.com/team/app:1"}),
        )
        .await;
    let stranger = v1(&server.tenant().await);
    let path = format!("/containers/{id}");
    for answer in [
        stranger.get(&path).await,
        stranger.patch(&path, json!({"description": "theirs"})).await,
        stranger.post(&format!("{path}/redeploy"), json!({})).await,
        stranger.delete(&path).await,
        stranger.get(&format!("/namespaces/{namespace_id}")).await,
        stranger
            .patch(&format!("/namespaces/{namespace_id}"), json!({"description": "theirs"}))
            .await,
    ] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    }
    stranger
        .assert_lists_nothing([format!("/containers?namespace_id={namespace_id}")])
        .await;
    let made_here = stranger
        .post("/containers", merged(base.clone(), json!({"name": "intruder"})))
        .await;
    assert_eq!(made_here.status, StatusCode::NOT_FOUND, "{}", made_here.body);
    let mine = api.get(&path).await;
    assert_eq!(ok(&mine)["name"], "mine");
    assert_eq!(mine.body["description"], "");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_domains_carry_tags_list_without_a_container_and_are_the_same_domains_through_v1beta1() {
    let (server, alpha) = TestServer::start_with_tenant(|config| {
        config.applications.domains.check = nuage_applications::DomainCheck::None;
        config.applications.domains.recheck_ms = 100;
    })
    .await;
    let api = v1(&alpha);
    let beta = alpha.speaking(Spec::ContainersV1beta1, "fr-par");
    // Two containers in two namespaces, made without deploying (through v1beta1).
    let mut containers = Vec::new();
    let mut namespaces = Vec::new();
    for name in ["shop", "blog"] {
        let namespace_id = api.ready_namespace_id(name).await;
        let made = beta
            .post(
                "/containers",
                json!({"namespace_id": namespace_id, "name": "web", "registry_image": "registry.example.com/team/app:1"}),
            )
            .await;
        containers.push(ok(&made)["id"].as_str().unwrap().to_owned());
        namespaces.push(namespace_id);
    }

    let made = api
        .post(
            "/domains",
            json!({"container_id": containers[0], "hostname": "Shop.Example.com", "tags": ["prod", "eu"]}),
        )
        .await;
    let domain = ok(&made).clone();
    let id = domain["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &domain["hostname"],
            &domain["container_id"],
            &domain["status"],
            &domain["tags"]
        ),
        (
            &json!("shop.example.com"),
            &json!(containers[0]),
            &json!("creating"),
            &json!(["prod", "eu"])
        )
    );
    assert!(
        domain["created_at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{domain}"
    );
    let ready = api
        .poll_until(&format!("/domains/{id}"), Duration::from_secs(20), |answer| {
            answer.body["status"] == "ready"
        })
        .await;
    assert_eq!(ready.body["error_message"], "", "{}", ready.body);
    ok(&api
        .post(
            "/domains",
            json!({"container_id": containers[1], "hostname": "blog.example.com"}),
        )
        .await);

    // Tags change by PATCH; a body without them changes nothing.
    let changed = api.patch(&format!("/domains/{id}"), json!({"tags": ["prod"]})).await;
    assert_eq!(ok(&changed)["tags"], json!(["prod"]));
    let unchanged = api.patch(&format!("/domains/{id}"), json!({})).await;
    assert_eq!(ok(&unchanged)["tags"], json!(["prod"]));

    // Listed without naming a container, or by container, namespace or project.
    let hostnames = |answer: &Answer| -> Vec<String> {
        ok(answer)["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|domain| domain["hostname"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        hostnames(&api.get("/domains?order_by=hostname_asc").await),
        ["blog.example.com", "shop.example.com"]
    );
    assert_eq!(
        hostnames(&api.get(&format!("/domains?container_id={}", containers[1])).await),
        ["blog.example.com"]
    );
    assert_eq!(
        hostnames(&api.get(&format!("/domains?namespace_id={}", namespaces[0])).await),
        ["shop.example.com"]
    );
    assert_eq!(
        hostnames(
            &api.get(&format!(
                "/domains?project_id={}&order_by=hostname_desc",
                alpha.project_id
            ))
            .await
        ),
        ["shop.example.com", "blog.example.com"]
    );
    let others = api
        .get(&format!("/domains?organization_id={}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(ok(&others)["total_count"], 0, "{}", others.body);

    // The same domain through v1beta1, where a list still names its container.
    let through_beta = beta.get(&format!("/domains/{id}")).await;
    assert_eq!(ok(&through_beta)["hostname"], "shop.example.com");
    assert_eq!(beta.get("/domains").await.refused_argument(), "container_id");

    // Bad inputs name their argument; nothing changes.
    for (body, argument) in [
        (
            json!({"container_id": containers[0], "hostname": "x.example.com", "tags": [""]}),
            "tags.0",
        ),
        (
            json!({"container_id": containers[0], "hostname": "x.example.com", "tags": "prod"}),
            "tags",
        ),
        (json!({"hostname": "x.example.com"}), "container_id"),
        (
            json!({"container_id": containers[0], "hostname": "127.0.0.1"}),
            "hostname",
        ),
    ] {
        let refused = api.post("/domains", body.clone()).await;
        assert_eq!(refused.refused_argument(), argument, "{body}: {}", refused.body);
    }
    let refused = api.patch(&format!("/domains/{id}"), json!({"tags": ["a\u{7}"]})).await;
    assert_eq!(refused.refused_argument(), "tags.0", "{}", refused.body);
    assert_eq!(api.patch("/domains/x", json!({})).await.refused_argument(), "domain_id");
    assert_eq!(
        api.get("/domains?namespace_id=x").await.refused_argument(),
        "namespace_id"
    );

    // Another tenant, as it would try: read, change, delete, list, and a domain on this
    // container.
    let stranger = v1(&server.tenant().await);
    let path = format!("/domains/{id}");
    for answer in [
        stranger.get(&path).await,
        stranger.patch(&path, json!({"tags": ["theirs"]})).await,
        stranger.delete(&path).await,
        stranger
            .post(
                "/domains",
                json!({"container_id": containers[0], "hostname": "stolen.example.com"}),
            )
            .await,
    ] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    }
    for query in [
        String::new(),
        format!("container_id={}", containers[0]),
        format!("namespace_id={}", namespaces[0]),
        format!("project_id={}", alpha.project_id),
        format!("organization_id={}", alpha.organization_id),
    ] {
        let listed = stranger.get(&format!("/domains?{query}")).await;
        assert_eq!(ok(&listed)["total_count"], 0, "{query}: {}", listed.body);
    }
    let mine = api.get(&path).await;
    assert_eq!(ok(&mine)["tags"], json!(["prod"]));

    let deleted = api.delete(&path).await;
    assert_eq!(ok(&deleted)["status"], "deleting");
    assert_eq!(api.get(&path).await.status, StatusCode::NOT_FOUND);
    server.stop().await;
}
