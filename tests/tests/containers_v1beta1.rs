//! Scaleway Containers v1beta1 (`/containers/v1beta1/regions/{region}`, reference part B.6):
//! namespaces, containers with their own settings (`port`, `command`, `args`, `health_check`,
//! `max_concurrency`, `scaling_option`, `protocol`, `local_storage_limit`, `cpu_limit`), crons
//! and tokens naming `container_id`, over the same services as the functions APIs. Every 200
//! body is checked against part B.6 (Scaleway publishes no spec for this version), and a
//! container made here is the same container through functions v1alpha2.

use nuage_tests::apps::{PROBED_GO, push_server_image};
use nuage_tests::conformance::Spec;
use nuage_tests::{Tenant, TestServer, ok};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

fn containers(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::ContainersV1beta1, "fr-par")
}

/// Makes a ready namespace through containers v1beta1 and pushes the probed server, whose
/// image runs `/server` with no argument, as `<its repository>/probed:latest`.
async fn namespace_with_image(server: &TestServer, api: &Tenant, name: &str, binary: &[u8]) -> Value {
    let id = api
        .create("/namespaces", json!({"name": name, "project_id": null}))
        .await;
    let namespace = api.wait_ready(&id).await;
    push_server_image(
        server,
        namespace["registry_endpoint"].as_str().unwrap(),
        "probed",
        binary,
    );
    namespace
}

/// Deploys container `id` and waits until it is no longer `pending`.
async fn deployed(api: &Tenant, id: &str) -> Value {
    let deploying = api.post(&format!("/containers/{id}/deploy"), json!({})).await;
    assert_eq!(ok(&deploying)["status"], "pending");
    nuage_tests::apps::container_settled(api, id, Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_listens_on_its_port_runs_its_command_and_takes_traffic_once_its_health_check_passes() {
    let binary = nuage_tests::go_server_or_skip!(PROBED_GO);
    let (server, alpha) = TestServer::with_tenant().await;
    let api = containers(&alpha);
    let namespace = namespace_with_image(&server, &api, "probed", &binary).await;

    // Healthy 1 s after it starts; checked every 0.2 s, up to 30 times.
    let created = api
        .post(
            "/containers",
            json!({"namespace_id": namespace["id"], "name": "probed", "port": 3000,
                   "command": ["/server"], "args": ["3000", "1s"], "max_concurrency": 7,
                   "health_check": {"failure_threshold": 30, "interval": "0.2s", "http": {"path": "/healthz"}},
                   "protocol": "unknown_protocol", "tags": ["probe"], "sandbox": "unknown_sandbox"}),
        )
        .await;
    let container = ok(&created).clone();
    let id = container["id"].as_str().unwrap().to_owned();
    assert_eq!(container["status"], "created");
    assert_eq!(container["port"], 3000);
    assert_eq!(container["command"], json!(["/server"]));
    assert_eq!(container["args"], json!(["3000", "1s"]));
    assert_eq!(container["max_concurrency"], 7);
    assert_eq!(container["scaling_option"], json!({"concurrent_requests_threshold": 7}));
    assert_eq!(
        container["health_check"],
        json!({"failure_threshold": 30, "interval": "0.2s", "http": {"path": "/healthz"}})
    );
    assert_eq!(container["protocol"], "http1");
    assert_eq!(container["local_storage_limit"], 1000);
    assert_eq!(container["tags"], json!(["probe"]));
    let endpoint = namespace["registry_endpoint"].as_str().unwrap();
    assert_eq!(container["registry_image"], format!("{endpoint}/probed:latest"));

    let started = std::time::Instant::now();
    let ready = deployed(&api, &id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    // Not before its health check passed.
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    let url = format!("http://{}", ready["domain_name"].as_str().unwrap());
    let answer = nuage_tests::get_json(&url).await;
    assert_eq!(answer["command"], "/server 3000 1s", "{answer}");
    assert_eq!(answer["listening"], "3000");
    assert_eq!(answer["env_port"], "3000", "PORT names the container's port: {answer}");

    // Two requests at once: one instance takes 7, so one answers both; once it takes 1, the
    // router starts a second.
    let instances = || async {
        let slow = format!("{url}/slow");
        let (a, b) = tokio::join!(reqwest::get(&slow), reqwest::get(&slow));
        let mut seen = Vec::new();
        for answer in [a, b] {
            let answer: Value = answer.unwrap().json().await.unwrap();
            seen.push(answer["instance"].as_str().unwrap().to_owned());
        }
        seen.sort();
        seen.dedup();
        seen.len()
    };
    assert_eq!(instances().await, 1);
    let one_at_a_time = api
        .patch(
            &format!("/containers/{id}"),
            json!({"max_concurrency": 1, "redeploy": false}),
        )
        .await;
    assert_eq!(
        ok(&one_at_a_time)["scaling_option"],
        json!({"concurrent_requests_threshold": 1})
    );
    // The router learns the change from the containers service's stream of route changes, an
    // instant after the answer: until then the pair may still go to one instance.
    let seen = nuage_tests::eventually(Duration::from_secs(20), instances, |count| *count == 2).await;
    assert_eq!(seen, 2);

    // The same container through functions v1alpha2.
    let through_alpha = alpha.get(&format!("/containers/{id}")).await;
    assert_eq!(ok(&through_alpha)["status"], "ready");
    assert_eq!(through_alpha.body["registry_image"], container["registry_image"]);

    // Go clients send zeros and `unknown_*` meaning "unchanged"; a CPU threshold is kept and
    // shown, the concurrency stays.
    let patched = api
        .patch(
            &format!("/containers/{id}"),
            json!({"port": 0, "protocol": "unknown_protocol", "max_concurrency": 0, "http_option": "unknown_http_option",
                   "scaling_option": {"cpu_usage_threshold": 70}, "redeploy": false}),
        )
        .await;
    let patched = ok(&patched);
    assert_eq!(patched["port"], 3000);
    assert_eq!(patched["max_concurrency"], 1);
    assert_eq!(patched["scaling_option"], json!({"cpu_usage_threshold": 70}));
    assert_eq!(patched["health_check"]["http"]["path"], "/healthz");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_whose_health_check_never_passes_ends_in_error_saying_why() {
    let binary = nuage_tests::go_server_or_skip!(PROBED_GO);
    let server = TestServer::start().await;
    let api = containers(&server.tenant().await);
    let namespace = namespace_with_image(&server, &api, "sick", &binary).await;
    // It listens on 8080 as `PORT` says, but `/healthz` answers 503 for an hour.
    let id = api
        .create(
            "/containers",
            json!({"namespace_id": namespace["id"], "name": "probed", "args": ["8080", "1h"],
                   "health_check": {"failure_threshold": 3, "interval": "0.2s", "http": {"path": "/healthz"}}}),
        )
        .await;
    let failed = deployed(&api, &id).await;
    assert_eq!(failed["status"], "error", "{failed}");
    let message = failed["error_message"].as_str().unwrap();
    assert!(
        message.contains("health check GET /healthz failed 3 times") && message.contains("503"),
        "{message}"
    );

    // A TCP check (the default) passes at once: the same image is ready.
    let tcp = api
        .patch(
            &format!("/containers/{id}"),
            json!({"health_check": {"failure_threshold": 3, "interval": "0.2s", "tcp": {}}}),
        )
        .await;
    assert_eq!(
        ok(&tcp)["health_check"],
        json!({"failure_threshold": 3, "interval": "0.2s", "tcp": {}})
    );
    assert_eq!(deployed(&api, &id).await["status"], "ready");
    server.stop().await;
}

#[tokio::test]
async fn bad_container_settings_are_refused_naming_the_argument_and_nothing_is_made() {
    let server = TestServer::start().await;
    let api = containers(&server.tenant().await);
    let namespace_id = api.create("/namespaces", json!({"name": "strict"})).await;
    api.wait_ready(&namespace_id).await;

    let base = json!({"namespace_id": namespace_id, "name": "refused"});
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    for (extra, argument) in [
        (json!({"protocol": "h2c"}), "protocol"),
        (json!({"protocol": "spdy"}), "protocol"),
        (json!({"port": 70000}), "port"),
        (json!({"port": "http"}), "port"),
        (json!({"max_concurrency": 5000}), "max_concurrency"),
        (json!({"cpu_limit": 10}), "cpu_limit"),
        (json!({"local_storage_limit": 1_000_000}), "local_storage_limit"),
        (json!({"command": "ls -l"}), "command"),
        (json!({"args": [1, 2]}), "args[0]"),
        (
            json!({"health_check": {"http": {"path": "/x"}, "tcp": {}}}),
            "health_check",
        ),
        (
            json!({"health_check": {"http": {"path": "x"}}}),
            "health_check.http.path",
        ),
        (json!({"health_check": {"http": {}}}), "health_check.http.path"),
        (json!({"health_check": {"interval": "soon"}}), "health_check.interval"),
        (
            json!({"health_check": {"failure_threshold": 1000}}),
            "health_check.failure_threshold",
        ),
        (json!({"health_check": {"grpc": {}}}), "health_check.grpc"),
        (
            json!({"scaling_option": {"concurrent_requests_threshold": 5, "cpu_usage_threshold": 50}}),
            "scaling_option",
        ),
        (
            json!({"scaling_option": {"memory_usage_threshold": 500}}),
            "scaling_option.memory_usage_threshold",
        ),
        (json!({"sandbox": "v9"}), "sandbox"),
        (json!({"http_option": "redirected"}), "http_option"),
    ] {
        let refused = api.post("/containers", with(extra.clone())).await;
        assert_eq!(refused.refused_argument(), argument, "{extra}: {}", refused.body);
    }
    let listed = api.get(&format!("/containers?namespace_id={namespace_id}")).await;
    assert_eq!(ok(&listed)["total_count"], 0, "{}", listed.body);
    // v1beta1 lists need their namespace.
    assert_eq!(api.get("/containers").await.refused_argument(), "namespace_id");

    // The same checks on update, which changes nothing when one fails.
    let id = api.create("/containers", with(json!({"port": 8000}))).await;
    let refused = api
        .patch(&format!("/containers/{id}"), json!({"port": 1, "protocol": "h2c"}))
        .await;
    assert_eq!(refused.refused_argument(), "protocol");
    assert_eq!(ok(&api.get(&format!("/containers/{id}")).await)["port"], 8000);
    server.stop().await;
}

#[tokio::test]
async fn crons_and_tokens_of_containers_name_their_container_and_other_tenants_reach_none_of_it() {
    // Answers are checked against part B.6: it describes these routes.
    nuage_tests::conformance::assert_describes(
        Spec::ContainersV1beta1,
        &[
            ("GET", "/containers/x"),
            ("POST", "/crons"),
            ("GET", "/tokens"),
            ("GET", "/domains"),
            ("PATCH", "/triggers/x"),
        ],
    );
    let server = TestServer::start().await;
    let api = containers(&server.tenant().await);
    let namespace_id = api.create("/namespaces", json!({"name": "owned"})).await;
    api.wait_ready(&namespace_id).await;
    let made = api
        .post(
            "/containers",
            json!({"namespace_id": namespace_id, "name": "mine", "privacy": "private"}),
        )
        .await;
    let id = ok(&made)["id"].as_str().unwrap().to_owned();
    assert_eq!(made.body["privacy"], "private");

    let cron = api
        .post(
            "/crons",
            json!({"container_id": id, "schedule": "0 0 * * *", "name": "nightly", "args": {"a": 1}}),
        )
        .await;
    assert_eq!(ok(&cron)["container_id"], id.as_str());
    assert_eq!(cron.body["name"], "nightly");
    let cron_id = cron.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.post("/crons", json!({"schedule": "0 0 * * *"}))
            .await
            .refused_argument(),
        "container_id"
    );
    let crons = api.get(&format!("/crons?container_id={id}")).await;
    assert_eq!(ok(&crons)["total_count"], 1);
    assert_eq!(api.get("/crons").await.refused_argument(), "container_id");

    let token = api
        .post("/tokens", json!({"container_id": id, "description": "ci"}))
        .await;
    assert_eq!(ok(&token)["container_id"], id.as_str());
    assert!(token.body.get("function_id").is_none(), "{}", token.body);
    let token_id = token.body["id"].as_str().unwrap().to_owned();
    let tokens = api.get(&format!("/tokens?container_id={id}")).await;
    assert_eq!(ok(&tokens)["total_count"], 1);
    assert_eq!(api.post("/tokens", json!({})).await.refused_argument(), "container_id");

    // Another tenant, as it would try: the container, a cron and a token on it, its cron and
    // token, and lists filtered on it.
    let stranger = containers(&server.tenant().await);
    let path = format!("/containers/{id}");
    for answer in [
        stranger.get(&path).await,
        stranger.patch(&path, json!({"port": 9000})).await,
        stranger.post(&format!("{path}/deploy"), json!({})).await,
        stranger.delete(&path).await,
        stranger
            .post("/crons", json!({"container_id": id, "schedule": "0 0 * * *"}))
            .await,
        stranger.get(&format!("/crons/{cron_id}")).await,
        stranger.delete(&format!("/crons/{cron_id}")).await,
        stranger.post("/tokens", json!({"container_id": id})).await,
        stranger.get(&format!("/tokens/{token_id}")).await,
        stranger.delete(&format!("/tokens/{token_id}")).await,
    ] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    }
    stranger
        .assert_lists_nothing([
            format!("/crons?container_id={id}"),
            format!("/tokens?container_id={id}"),
            format!("/containers?namespace_id={namespace_id}"),
        ])
        .await;
    assert_eq!(ok(&api.get(&path).await)["name"], "mine");

    let (deleted, gone) = api.delete_until_gone(&path, Duration::from_secs(30)).await;
    ok(&deleted);
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    // Its token went with it: no longer listed or read.
    let tokens = api.get(&format!("/tokens?container_id={id}")).await;
    assert_eq!(ok(&tokens)["total_count"], 0, "{}", tokens.body);
    assert_eq!(
        api.get(&format!("/tokens/{token_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_runs_images_of_any_of_its_namespaces_but_never_one_another_tenant_pushed_to_the_installations_registry()
 {
    let binary = nuage_tests::go_server_or_skip!(PROBED_GO);
    let server = TestServer::start().await;
    let owner = containers(&server.tenant().await);
    let theirs = namespace_with_image(&server, &owner, "private-img", &binary).await;
    let endpoint = theirs["registry_endpoint"].as_str().unwrap();
    let (host, path) = endpoint.split_once('/').unwrap();

    // Its owner runs it from another of its namespaces too.
    let sibling = owner.ready_namespace_id("sibling").await;
    let shared_id = owner
        .create(
            "/containers",
            json!({"namespace_id": sibling, "name": "shared", "registry_image": format!("{endpoint}/probed:latest")}),
        )
        .await;
    let ran = deployed(&owner, &shared_id).await;
    assert_eq!(ran["status"], "ready", "{ran}");

    let stranger = containers(&server.tenant().await);
    // A namespace of the stranger's own with the same name does not make the repository its.
    stranger.ready_namespace("private-img").await;
    let namespace_id = stranger.create("/namespaces", json!({"name": "mine"})).await;
    let mine = stranger.wait_ready(&namespace_id).await;
    // As the stranger would name it: on the installation's registry (however its host is
    // spelled: names know no case, and 443 is HTTPS's port anyway), or with no host.
    for image in [
        format!("{endpoint}/probed:latest"),
        format!("{}/{path}/probed:latest", host.to_uppercase()),
        format!("{host}:443/{path}/probed:latest"),
        format!("{path}/probed:latest"),
    ] {
        let refused = stranger
            .post(
                "/containers",
                json!({"namespace_id": namespace_id, "name": "thief", "registry_image": image}),
            )
            .await;
        assert_eq!(refused.refused_argument(), "registry_image", "{image}");
    }
    // Made with an image of its own, then changed to the other's: refused, unchanged.
    let own = format!("{}/probed:latest", mine["registry_endpoint"].as_str().unwrap());
    let id = stranger
        .create(
            "/containers",
            json!({"namespace_id": namespace_id, "name": "thief", "registry_image": own}),
        )
        .await;
    let changed = stranger
        .patch(
            &format!("/containers/{id}"),
            json!({"registry_image": format!("{endpoint}/probed:latest")}),
        )
        .await;
    assert_eq!(changed.refused_argument(), "registry_image");
    assert_eq!(
        ok(&stranger.get(&format!("/containers/{id}")).await)["registry_image"],
        own.as_str()
    );
    // Another host with the same path is that host's image, never the layout: here a loopback
    // one, which the runner does not pull from on a tenant's word, so the deploy fails.
    let elsewhere = stranger
        .patch(
            &format!("/containers/{id}"),
            json!({"registry_image": format!("127.0.0.1:9/{path}/probed:latest")}),
        )
        .await;
    ok(&elsewhere);
    let failed = deployed(&stranger, &id).await;
    assert_eq!(failed["status"], "error", "{failed}");
    let message = failed["error_message"].as_str().unwrap();
    assert!(message.contains("127.0.0.1:9"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn domains_and_triggers_of_containers_name_their_container() {
    let server = TestServer::start_with(|config| {
        config.applications.domains.check = nuage_applications::DomainCheck::None;
        config.applications.domains.recheck_ms = 100;
        config.triggers.nats.url =
            Some(std::env::var("NUAGE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned()));
    })
    .await;
    let api = containers(&server.tenant().await);
    let namespace_id = api.create("/namespaces", json!({"name": "events"})).await;
    api.wait_ready(&namespace_id).await;
    let id = api
        .create("/containers", json!({"namespace_id": namespace_id, "name": "web"}))
        .await;

    let domain = api
        .post("/domains", json!({"container_id": id, "hostname": "web.example.test"}))
        .await;
    assert_eq!(ok(&domain)["container_id"], id.as_str());
    let domain_id = domain.body["id"].as_str().unwrap().to_owned();
    let ready = api
        .poll_until(&format!("/domains/{domain_id}"), Duration::from_secs(10), |answer| {
            answer.body["status"] == "ready"
        })
        .await;
    assert_eq!(ready.body["status"], "ready", "{}", ready.body);
    let domains = api.get(&format!("/domains?container_id={id}")).await;
    assert_eq!(ok(&domains)["total_count"], 1);
    assert_eq!(api.get("/domains").await.refused_argument(), "container_id");

    let subject = format!("containers.{}", uuid::Uuid::new_v4().simple());
    let trigger = api
        .post(
            "/triggers",
            json!({"name": "orders", "container_id": id,
                   "scw_nats_config": {"subject": subject, "mnq_nats_account_id": "a", "mnq_region": "fr-par"}}),
        )
        .await;
    assert_eq!(ok(&trigger)["container_id"], id.as_str());
    let trigger_id = trigger.body["id"].as_str().unwrap().to_owned();
    let triggers = api.get(&format!("/triggers?container_id={id}")).await;
    assert_eq!(ok(&triggers)["total_count"], 1);

    // Another tenant reaches neither.
    let stranger = containers(&server.tenant().await);
    for answer in [
        stranger.get(&format!("/domains/{domain_id}")).await,
        stranger.get(&format!("/triggers/{trigger_id}")).await,
        stranger
            .post(
                "/domains",
                json!({"container_id": id, "hostname": "theirs.example.test"}),
            )
            .await,
    ] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    }
    assert_eq!(
        ok(&api.delete(&format!("/triggers/{trigger_id}")).await)["status"],
        "deleting"
    );
    ok(&api.delete(&format!("/domains/{domain_id}")).await);
    server.stop().await;
}
