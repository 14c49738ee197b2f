//! Fairness between tenants: one tenant's burst of expensive work (namespace key pairs) does
//! not starve another tenant, and a tenant's backlog of it is bounded; what a stopped server
//! held of it is resumed.

use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

/// Returns the statuses of every namespace of `tenant`.
async fn statuses(tenant: &Tenant) -> Vec<String> {
    let answer = tenant.get("/namespaces?page_size=100").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|namespace| namespace["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn pending(statuses: &[String]) -> usize {
    statuses.iter().filter(|status| *status == "pending").count()
}

/// Waits until all `expected` namespaces of `tenant` are ready.
async fn wait_all_ready(tenant: &Tenant, expected: usize, limit: Duration) {
    let seen = eventually(
        limit,
        || statuses(tenant),
        |seen: &Vec<String>| seen.len() == expected && seen.iter().all(|status| status == "ready"),
    )
    .await;
    assert!(
        seen.len() == expected && seen.iter().all(|status| status == "ready"),
        "not all {expected} namespaces became ready in {limit:?}: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_burst_of_namespaces_does_not_starve_another_tenant() {
    const BURST: usize = 12;
    let server = TestServer::start_with(|config| {
        config.tokens.key_workers = 2;
        config.namespaces.provision_workers = 2;
        config.namespaces.max_per_organization = 20;
        config.namespaces.max_pending_per_organization = 20;
    })
    .await;
    let (greedy, patient) = (server.tenant().await, server.tenant().await);
    let burst_started = Instant::now();
    for index in 0..BURST {
        greedy.create_namespace(&format!("burst-{index}")).await;
    }

    let created = Instant::now();
    let namespace = patient.create_namespace("mine").await;
    let id = namespace["id"].as_str().unwrap();
    patient
        .poll_until(&format!("/namespaces/{id}"), Duration::from_secs(120), |answer| {
            answer.body["status"] == "ready"
        })
        .await;
    let waited = created.elapsed();
    let left = pending(&statuses(&greedy).await);
    eprintln!("the other tenant's namespace was ready after {waited:?}, {left} of the burst's {BURST} still pending");
    // Served round robin, it waits for about one of the burst's keys, not for all of them.
    assert!(
        left >= BURST / 2,
        "the other tenant's namespace was ready only after {waited:?}, when {left} of the burst's {BURST} \
         were still pending: it waited behind the burst"
    );

    // Nothing of the burst is lost: all of it is provisioned in the end.
    wait_all_ready(&greedy, BURST, Duration::from_secs(300)).await;
    eprintln!("the burst was ready after {:?}", burst_started.elapsed());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_backlog_of_pending_namespaces_gets_429_and_nothing_is_lost() {
    const CREATES: usize = 8;
    const BACKLOG: u64 = 3;
    let (server, tenant) = TestServer::start_with_tenant(|config| {
        // One key at a time: the creates all arrive while the backlog is still full (and the
        // test leaves the other core to the tests beside it).
        config.tokens.key_workers = 1;
        config.namespaces.provision_workers = 1;
        config.namespaces.max_pending_per_organization = BACKLOG;
    })
    .await;
    // Authenticated once before: the creates are not spread out by verifying the key.
    assert_eq!(tenant.get("/namespaces").await.status, StatusCode::OK);
    let (mut accepted, mut refused) = (0, 0);
    for answer in tenant.post_namespaces_at_once("queued", CREATES).await {
        match answer.status {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(
                    answer.body,
                    json!({
                        "help_message": "retry once one of them is ready",
                        "message": format!("{BACKLOG} namespaces are already being created"),
                        "type": "too_many_requests",
                    })
                );
            }
            other => panic!("create answered {other}: {}", answer.body),
        }
    }
    assert!(
        accepted >= BACKLOG as usize && refused > 0,
        "{CREATES} concurrent creates with a backlog of {BACKLOG}: {accepted} accepted, {refused} refused"
    );
    // Every accepted namespace is provisioned; the refused ones were never stored.
    wait_all_ready(&tenant, accepted, Duration::from_secs(300)).await;
    // Once the backlog is empty, the tenant creates again.
    tenant.create_namespace("after").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_a_stopped_server_was_provisioning_are_resumed_after_a_restart() {
    const CREATES: usize = 3;
    let mut server = TestServer::start_with(|config| {
        // One key at a time: the server stops while it holds a namespace, and others wait.
        config.tokens.key_workers = 1;
        config.namespaces.provision_workers = 1;
        config.namespaces.provision_lease_seconds = 2;
    })
    .await;
    let key = nuage::admin::create_tenant(&server.config, "restarted tenant")
        .await
        .expect("tenant created");
    let tenant = Tenant::new(&server.base_url, key.clone());
    for index in 0..CREATES {
        tenant.create_namespace(&format!("resumed-{index}")).await;
    }
    let before = statuses(&tenant).await;
    assert!(
        pending(&before) > 0,
        "some namespace is still being provisioned: {before:?}"
    );
    server.take_server().shutdown().await.expect("clean shutdown");

    // The same data dir and database: the hold the stopped server had runs out, and the new
    // one provisions every namespace.
    let restarted = nuage::start(server.config.clone()).await.expect("server restarts");
    let base_url = format!("http://{}", restarted.endpoints().api.expect("the REST API"));
    let tenant = Tenant::new(&base_url, key);
    wait_all_ready(&tenant, CREATES, Duration::from_secs(300)).await;
    restarted.shutdown().await.expect("clean shutdown");
    server.stop().await;
}
