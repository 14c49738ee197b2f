//! Deployment history and rollback: each deploy of a function or container is listed (newest
//! first, the one serving marked), and a rollback rolls an earlier one's image out again with
//! no rebuild, no failed request under load, and refuses what is not the tenant's, what is not
//! in the history, and an image that was pruned.

use nuage_tests::apps::{deploy, deployed, runtime, settled_within, upload, zip};
use nuage_tests::conformance::Spec;
use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A node handler answering `word` (after 5 ms, so that requests overlap).
fn handler(word: &str) -> String {
    format!("exports.handle = async () => {{ await new Promise((r) => setTimeout(r, 5)); return '{word}'; }};")
}

/// Uploads the handler answering `word` to function `id`, deploys it and waits until it is ready.
async fn redeploy(tenant: &Tenant, id: &str, word: &str) {
    upload(tenant, id, zip(&[("handler.js", handler(word).as_bytes())])).await;
    deploy(tenant, id).await;
    let done = settled_within(tenant, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
}

/// Creates a node function answering `word` in a new namespace and deploys it; returns it ready.
async fn first_deploy(tenant: &Tenant, namespace: &str, word: &str) -> Value {
    let node = runtime(tenant, "node").await;
    deployed(
        tenant,
        namespace,
        json!({"name": "f", "runtime": node, "max_scale": 4}),
        &[("handler.js", handler(word).as_bytes())],
    )
    .await
}

/// Deploys a node function answering each of `words` in turn; returns it and its deployment
/// ids, oldest first.
async fn three_deploys(tenant: &Tenant, namespace: &str, words: [&str; 3]) -> (Value, Vec<String>) {
    let function = first_deploy(tenant, namespace, words[0]).await;
    let id = function["id"].as_str().unwrap().to_owned();
    for word in &words[1..] {
        redeploy(tenant, &id, word).await;
    }
    let listed = tenant.get(&format!("/functions/{id}/deployments")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let mut ids: Vec<String> = listed.body["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|deployment| deployment["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    (function, ids)
}

/// Returns the body of a GET of `url`, or why it failed.
async fn call(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client.get(url).send().await.map_err(|error| error.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|error| error.to_string())?;
    if status == StatusCode::OK {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Waits until the client loops have been answered `count` times in all; returns the count then.
async fn wait_for_answers(answers: &AtomicUsize, count: usize) -> usize {
    let reached = eventually(
        Duration::from_secs(30),
        || async { answers.load(Ordering::Relaxed) },
        |seen| *seen >= count,
    )
    .await;
    assert!(
        reached >= count,
        "the clients were answered {reached} times, not {count}"
    );
    reached
}

/// Calls `url` until it answers `word`, for at most `limit`; returns the last answer.
async fn answering(client: &reqwest::Client, url: &str, word: &str, limit: Duration) -> Result<String, String> {
    eventually(limit, || call(client, url), |seen| seen.as_deref() == Ok(word)).await
}

/// Asks to roll application `id` (a `kind`: function or container) back to `deployment_id`;
/// returns the answer.
async fn post_rollback(tenant: &Tenant, kind: &str, id: &str, deployment_id: &str) -> nuage_tests::Answer {
    tenant
        .post(
            &format!("/{kind}s/{id}/rollback"),
            json!({"deployment_id": deployment_id}),
        )
        .await
}

/// Asks to roll function `id` back to `deployment_id`, asserting it is refused with a 409;
/// returns the refusal.
async fn refused_rollback(tenant: &Tenant, id: &str, deployment_id: &str) -> nuage_tests::Answer {
    let refused = post_rollback(tenant, "function", id, deployment_id).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    refused
}

/// The rollback's POST, checked: the application answered `pending`.
async fn rollback(tenant: &Tenant, kind: &str, id: &str, deployment_id: &str) {
    let answer = post_rollback(tenant, kind, id, deployment_id).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "pending", "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_lists_each_deploy_newest_first_with_the_serving_one_marked() {
    let (server, tenant) = TestServer::with_tenant().await;
    let (function, ids) = three_deploys(&tenant, "history", ["alpha", "bravo", "charlie"]).await;
    let id = function["id"].as_str().unwrap();
    assert_eq!(ids.len(), 3, "{ids:?}");

    let listed = tenant.get(&format!("/functions/{id}/deployments")).await.body;
    assert_eq!(listed["total_count"], 3, "{listed}");
    let deployments = listed["deployments"].as_array().unwrap();
    let mut archives = Vec::new();
    for (index, deployment) in deployments.iter().enumerate() {
        assert_eq!(deployment["function_id"], id, "{deployment}");
        assert_eq!(deployment["status"], "succeeded", "{deployment}");
        assert_eq!(deployment["active"], index == 0, "only the newest serves: {listed}");
        assert!(
            deployment["created_at"].as_str().unwrap().ends_with('Z'),
            "{deployment}"
        );
        assert!(
            deployment["image_reference"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/f:{}", deployment["id"].as_str().unwrap())),
            "{deployment}"
        );
        for digest in ["image_digest", "archive_digest"] {
            assert!(
                deployment[digest].as_str().unwrap().starts_with("sha256:"),
                "{deployment}"
            );
        }
        archives.push(deployment["archive_digest"].as_str().unwrap().to_owned());
    }
    archives.dedup();
    assert_eq!(archives.len(), 3, "each deploy built its own archive: {listed}");

    // Scaleway's paging, and the same history through v1beta1.
    let first = tenant
        .get(&format!("/functions/{id}/deployments?page_size=2"))
        .await
        .body;
    let second = tenant
        .get(&format!("/functions/{id}/deployments?page_size=2&page=2"))
        .await
        .body;
    assert_eq!(
        (first["total_count"].clone(), second["total_count"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(first["deployments"].as_array().unwrap().len(), 2);
    assert_eq!(second["deployments"][0]["id"], ids[0].as_str(), "{second}");
    let beta = tenant.speaking(Spec::FunctionsV1beta1, "fr-par");
    let through_beta = beta.get(&format!("/functions/{id}/deployments")).await;
    assert_eq!(through_beta.status, StatusCode::OK, "{}", through_beta.body);
    assert_eq!(through_beta.body["deployments"], listed["deployments"]);
    let oversized = tenant.get(&format!("/functions/{id}/deployments?page_size=101")).await;
    assert_eq!(oversized.refused_argument(), "page_size");
    server.stop().await;
}

/// How long a rollback takes from the POST to the first answer of the old deployment is a
/// figure `bench/rollback.sh` prints (on a release build); this test checks what must hold
/// however loaded the machine is: the old deployment answers, the clients calling throughout
/// see no failed request, and no answer comes from anything but the two deployments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_under_load_serves_the_old_deployment_and_fails_no_request() {
    let (server, tenant) = TestServer::start_with_tenant(|config| config.router.threads = 2).await;
    let (function, ids) = three_deploys(&tenant, "rolling-back", ["alpha", "bravo", "charlie"]).await;
    let (id, endpoint) = (
        function["id"].as_str().unwrap().to_owned(),
        function["endpoint"].as_str().unwrap().to_owned(),
    );

    // Four clients call it throughout, each noting what answered and when.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (client, endpoint) = (reqwest::Client::new(), endpoint.clone());
            let (stop, count) = (stop.clone(), answers.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    answers.push((Instant::now(), call(&client, &endpoint).await));
                    count.fetch_add(1, Ordering::Relaxed);
                }
                answers
            })
        })
        .collect();
    let client = reqwest::Client::new();
    let newest = answering(&client, &endpoint, "charlie", Duration::from_secs(10)).await;
    assert_eq!(newest.as_deref(), Ok("charlie"));
    // The clients have been answered before the rollback starts.
    let before = wait_for_answers(&answers, 8).await;

    let posted = Instant::now();
    rollback(&tenant, "function", &id, &ids[0]).await;
    let old = answering(&client, &endpoint, "alpha", Duration::from_secs(10)).await;
    assert_eq!(old.as_deref(), Ok("alpha"));
    let done = settled_within(&tenant, &id, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "ready", "{done}");
    // ... and go on being answered after it is done: eight answers more than they had then
    // (they may have had their eight more during the rollback, all from the newest).
    let settled = answers.load(Ordering::Relaxed);
    wait_for_answers(&answers, settled.max(before) + 8).await;
    stop.store(true, Ordering::Relaxed);
    let mut first_old = None;
    let mut last = None;
    for handle in loops {
        for (at, answer) in handle.await.unwrap() {
            last = Some(last.map_or(at, |last: Instant| last.max(at)));
            match answer {
                Ok(word) if word == "alpha" => {
                    first_old = Some(first_old.map_or(at, |first: Instant| first.min(at)));
                }
                Ok(word) => assert_eq!(word, "charlie", "only the newest or the rolled-back answers"),
                Err(error) => panic!("a request failed during the rollback: {error}"),
            }
        }
    }
    let first_old = first_old.expect("the clients saw the old deployment");
    assert!(first_old > posted, "the old deployment answered only after the POST");
    assert!(
        last.unwrap() > first_old,
        "the clients were answered after the rollback too"
    );

    // No rebuild: the history has the same three deployments, the first one serving.
    let listed = tenant.get(&format!("/functions/{id}/deployments")).await.body;
    assert_eq!(listed["total_count"], 3, "{listed}");
    let active: Vec<&Value> = listed["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|deployment| deployment["active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "{listed}");
    assert_eq!(active[0]["id"], ids[0].as_str(), "{listed}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_rolls_back_to_the_image_its_tag_named_then() {
    let Some(binary) = nuage_tests::apps::go_server_binary() else {
        eprintln!("skipped: no Go toolchain to build the container's server");
        return;
    };
    let (server, tenant) = TestServer::with_tenant().await;
    let created = tenant.create_namespace("rolled-containers").await;
    let namespace = tenant.wait_ready(created["id"].as_str().unwrap()).await;
    let registry = server.config.data_dir.join("registry");
    let layout = registry
        .join(
            namespace["registry_endpoint"]
                .as_str()
                .unwrap()
                .split_once('/')
                .unwrap()
                .1,
        )
        .join("app");
    let push = |version: &str| {
        let files = [("server", &binary[..], 0o755), ("version", version.as_bytes(), 0o644)];
        nuage_tests::apps::write_image_layout(&layout, "latest", &files, &["/server"]);
    };
    // `app:latest` names "one", then (pushed again) "two".
    let id = nuage_tests::apps::deploy_app_container(&tenant, &registry, &namespace, &binary, json!({})).await;
    let path = format!("/containers/{id}");
    let settled = || {
        tenant.poll_until(&path, Duration::from_secs(60), |answer| {
            answer.body["status"] != "pending"
        })
    };
    let ready = settled().await.body;
    assert_eq!(ready["status"], "ready", "{ready}");
    push("one");
    let first = tenant.post(&format!("/containers/{id}/deploy"), json!({})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(settled().await.body["status"], "ready");
    push("two");
    let second = tenant.post(&format!("/containers/{id}/deploy"), json!({})).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(settled().await.body["status"], "ready");
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let version = || async {
        call(&client, &endpoint)
            .await
            .map(|body| serde_json::from_str::<Value>(&body).unwrap()["version"].clone())
    };
    assert_eq!(version().await, Ok(json!("two")));

    // Listed through containers v1beta1 and v1 alike, newest first.
    let beta = tenant.speaking(Spec::ContainersV1beta1, "fr-par");
    let v1 = tenant.speaking(Spec::ContainersV1, "fr-par");
    let listed = beta.get(&format!("/containers/{id}/deployments")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["total_count"], 3, "{}", listed.body);
    let through_v1 = v1.get(&format!("/containers/{id}/deployments")).await;
    assert_eq!(through_v1.body["deployments"], listed.body["deployments"]);
    let deployments = listed.body["deployments"].as_array().unwrap();
    assert_eq!(deployments[0]["active"], true, "{}", listed.body);
    assert_eq!(deployments[0]["container_id"], id.as_str());
    assert!(deployments[1]["image_digest"].as_str().unwrap().starts_with("sha256:"));
    assert_ne!(deployments[0]["image_digest"], deployments[1]["image_digest"]);
    let one = deployments[1]["id"].as_str().unwrap().to_owned();

    // Back to "one", though `latest` names "two" now; through v1 this time.
    let answer = post_rollback(&v1, "container", &id, &one).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let seen = eventually(Duration::from_secs(10), version, |seen| *seen == Ok(json!("one"))).await;
    assert_eq!(seen, Ok(json!("one")));
    assert_eq!(settled().await.body["status"], "ready");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_can_neither_list_nor_roll_back_a_history() {
    let (server, owner) = TestServer::with_tenant().await;
    let (function, ids) = three_deploys(&owner, "owned", ["alpha", "bravo", "charlie"]).await;
    let id = function["id"].as_str().unwrap().to_owned();
    let intruder = server.tenant().await;
    for tenant in [intruder.clone(), intruder.speaking(Spec::FunctionsV1beta1, "fr-par")] {
        let listed = tenant.get(&format!("/functions/{id}/deployments")).await;
        assert_eq!(listed.status, StatusCode::NOT_FOUND, "{}", listed.body);
        let rolled = post_rollback(&tenant, "function", &id, &ids[0]).await;
        assert_eq!(rolled.status, StatusCode::NOT_FOUND, "{}", rolled.body);
    }
    // Nor through containers, with the same id.
    let containers = intruder.speaking(Spec::ContainersV1beta1, "fr-par");
    let as_container = post_rollback(&containers, "container", &id, &ids[0]).await;
    assert_eq!(as_container.status, StatusCode::NOT_FOUND, "{}", as_container.body);

    // Its own function, with the owner's deployment: not in its history.
    let own = first_deploy(&intruder, "intruding", "mine").await;
    let own_id = own["id"].as_str().unwrap();
    let borrowed = post_rollback(&intruder, "function", own_id, &ids[0]).await;
    assert_eq!(borrowed.status, StatusCode::NOT_FOUND, "{}", borrowed.body);
    assert_eq!(borrowed.body["resource"], "deployment", "{}", borrowed.body);
    assert_eq!(borrowed.body["resource_id"], ids[0].as_str(), "{}", borrowed.body);

    // The owner's function still serves its newest deployment.
    let client = reqwest::Client::new();
    assert_eq!(
        call(&client, function["endpoint"].as_str().unwrap()).await.as_deref(),
        Ok("charlie")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_to_a_pruned_image_or_a_bad_deployment_id_is_refused_naming_it() {
    // Two deployments (and two images per function) kept.
    let (server, tenant) = TestServer::start_with_tenant(|config| config.applications.deployment_history = 2).await;
    let function = first_deploy(&tenant, "pruned", "alpha").await;
    let id = function["id"].as_str().unwrap().to_owned();
    redeploy(&tenant, &id, "bravo").await;
    let listed = tenant.get(&format!("/functions/{id}/deployments")).await.body;
    let first = listed["deployments"][1]["id"].as_str().unwrap().to_owned();
    // Back to the first, which serves, so it stays listed when a third deploy builds a third
    // image: the builder keeps the newest two, and the first one's goes.
    rollback(&tenant, "function", &id, &first).await;
    assert_eq!(
        settled_within(&tenant, &id, Duration::from_secs(30)).await["status"],
        "ready"
    );
    redeploy(&tenant, &id, "charlie").await;
    let listed = tenant.get(&format!("/functions/{id}/deployments")).await.body;
    assert_eq!(listed["total_count"], 3, "{listed}");
    assert_eq!(listed["deployments"][2]["id"], first.as_str(), "{listed}");

    let refused = refused_rollback(&tenant, &id, &first).await;
    assert_eq!(refused.body["type"], "precondition_failed", "{}", refused.body);
    assert_eq!(refused.body["resource"], "deployment");
    assert_eq!(refused.body["resource_id"], first.as_str());
    let help = refused.body["help_message"].as_str().unwrap();
    assert!(help.contains(&format!("`{first}`")) && help.contains("gone"), "{help}");
    // Nothing changed: the newest still serves.
    let still = tenant.get(&format!("/functions/{id}")).await.body;
    assert_eq!(still["status"], "ready", "{still}");
    let client = reqwest::Client::new();
    assert_eq!(
        call(&client, function["endpoint"].as_str().unwrap()).await.as_deref(),
        Ok("charlie")
    );
    // A fourth deploy forgets the first.
    redeploy(&tenant, &id, "delta").await;
    let listed = tenant.get(&format!("/functions/{id}/deployments")).await.body;
    assert_eq!(listed["total_count"], 2, "{listed}");

    // Bad ids name the argument; an id no deployment has is not found.
    for body in [
        json!({}),
        json!({"deployment_id": "not-an-id"}),
        json!({"deployment_id": 7}),
    ] {
        let answer = tenant.post(&format!("/functions/{id}/rollback"), body.clone()).await;
        assert_eq!(answer.refused_argument(), "deployment_id", "{body}");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let answer = post_rollback(&tenant, "function", &id, &unknown).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert_eq!(answer.body["resource_id"], unknown.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_while_a_deploy_is_under_way_is_refused_and_the_deploy_goes_on() {
    // Each roll-out is held 2 s before it starts, so the deploy below is still pending when
    // the rollback comes.
    let (server, tenant) =
        TestServer::start_with_tenant(|config| config.applications.hold_before_rollout_ms = 2000).await;
    let function = first_deploy(&tenant, "rolling-while-pending", "alpha").await;
    let (id, endpoint) = (
        function["id"].as_str().unwrap().to_owned(),
        function["endpoint"].as_str().unwrap().to_owned(),
    );
    let first = tenant.get(&format!("/functions/{id}/deployments")).await.body["deployments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    upload(&tenant, &id, zip(&[("handler.js", handler("bravo").as_bytes())])).await;
    deploy(&tenant, &id).await;
    let refused = refused_rollback(&tenant, &id, &first).await;
    assert_eq!(refused.body["type"], "transient_state", "{}", refused.body);
    assert_eq!(refused.body["resource"], "function");
    assert_eq!(refused.body["resource_id"], id.as_str());
    assert_eq!(refused.body["current_state"], "pending");
    // The deploy was not disturbed: it ends ready and serves the new code.
    let done = settled_within(&tenant, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "ready", "{done}");
    let client = reqwest::Client::new();
    assert_eq!(call(&client, &endpoint).await.as_deref(), Ok("bravo"));
    // Once it is, the same rollback is taken.
    rollback(&tenant, "function", &id, &first).await;
    let back = answering(&client, &endpoint, "alpha", Duration::from_secs(20)).await;
    assert_eq!(back.as_deref(), Ok("alpha"));
    server.stop().await;
}
