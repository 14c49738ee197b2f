//! Crons fire: on schedule, with their args as the body, through the router's internal
//! listener (private functions without a token), each scheduled time once across replicas,
//! every firing recorded. Schedules here use the test-only seconds field
//! (`crons.seconds_schedules`) so that a test waits seconds, not minutes; the scheduler runs on
//! the real clock.

use nuage_tests::apps::{Collector, deployed, function, runtime};
use nuage_tests::{Tenant, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use std::time::{Duration, Instant};

/// A node handler that reports what it received to the collector on `$COLLECTOR`, then
/// answers with `$STATUS` (200 by default).
const RECORDER_JS: &[u8] = br#"
exports.handle = async (event, context) => {
  await fetch(`http://127.0.0.1:${process.env.COLLECTOR}/`, {
    method: "POST",
    body: JSON.stringify({ body: event.body, method: event.httpMethod, headers: event.headers }),
  });
  return { statusCode: Number(process.env.STATUS || 200), body: "done" };
};
"#;

/// A server whose crons accept schedules with seconds.
async fn server() -> TestServer {
    TestServer::start_with(|config| config.crons.seconds_schedules = true).await
}

/// Deploys the recorder in a new namespace; returns its id.
async fn recorder(tenant: &Tenant, namespace: &str, collector: &Collector, extra: Value) -> String {
    let node = runtime(tenant, "node").await;
    let mut body = json!({"name": "recorder", "runtime": node,
                          "environment_variables": {"COLLECTOR": collector.port.to_string()}});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            if key == "environment_variables" {
                for (name, value) in value.as_object().unwrap() {
                    body["environment_variables"][name] = value.clone();
                }
            } else {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    let function = deployed(tenant, namespace, body, &[("handler.js", RECORDER_JS)]).await;
    function["id"].as_str().unwrap().to_owned()
}

async fn cron(tenant: &Tenant, application_id: &str, schedule: &str, args: Value) -> String {
    let created = tenant
        .post(
            "/crons",
            json!({"application_id": application_id, "schedule": schedule, "args": args}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

/// A recorded firing: status, HTTP status, error, scheduled and started (µs), attempts.
type Firing = (String, Option<i64>, String, i64, Option<i64>, i64);

async fn firings(database_url: &str, cron_id: &str) -> Vec<Firing> {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(database_url).await.unwrap();
    sqlx::query_as(
        "select status, http_status, error, scheduled_at, started_at, attempts from cron_firings \
         where cron_id = $1 order by scheduled_at",
    )
    .bind(cron_id)
    .fetch_all(&mut db)
    .await
    .unwrap()
}

/// Waits up to `limit` until `done` holds for the cron's firings; returns them.
async fn firings_until(
    database_url: &str,
    cron_id: &str,
    limit: Duration,
    done: impl Fn(&[Firing]) -> bool,
) -> Vec<Firing> {
    let started = Instant::now();
    loop {
        let firings = firings(database_url, cron_id).await;
        if done(&firings) || started.elapsed() > limit {
            return firings;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_fires_its_function_with_its_args_and_follows_updates_and_deletes() {
    let server = server().await;
    let tenant = server.tenant().await;
    let collector = Collector::start().await;
    let id = recorder(&tenant, "cron-fires", &collector, json!({})).await;

    let cron_id = cron(&tenant, &id, "* * * * * *", json!({"n": 1, "text": "é"})).await;
    let received = collector.wait_for(2, Duration::from_secs(10)).await;
    assert!(received.len() >= 2, "fired {} times in 10 s", received.len());
    let (_, first) = &received[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["headers"]["Content-Type"], "application/json", "{first}");
    let args: Value = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"n": 1, "text": "é"}));
    // Each firing is recorded: on time, answered 200.
    let recorded = firings_until(&server.database_url(), &cron_id, Duration::from_secs(5), |firings| {
        firings.iter().filter(|f| f.0 == "succeeded").count() >= 2
    })
    .await;
    let done: Vec<&Firing> = recorded.iter().filter(|f| f.0 == "succeeded").collect();
    assert!(done.len() >= 2, "{recorded:?}");
    for (status, http_status, error, scheduled_at, started_at, attempts) in &done {
        assert_eq!(
            (status.as_str(), *http_status, error.as_str(), *attempts),
            ("succeeded", Some(200), "", 1)
        );
        let skew = started_at.unwrap() - scheduled_at;
        assert!((0..5_000_000).contains(&skew), "sent {skew} µs after its time");
        assert_eq!(scheduled_at % 1_000_000, 0, "scheduled on a second");
    }

    // An update (args and schedule) holds for firings from a second later on.
    let updated = tenant
        .patch(
            &format!("/crons/{cron_id}"),
            json!({"args": {"n": 2}, "schedule": "*/2 * * * * *"}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let changed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let after: Vec<Value> = collector
        .received()
        .into_iter()
        .filter(|(at, _)| *at > changed_at + Duration::from_secs(1))
        .map(|(_, body)| serde_json::from_str(body["body"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        (2..=3).contains(&after.len()),
        "every other second: {} firings in 4.5 s",
        after.len()
    );
    assert!(after.iter().all(|args| *args == json!({"n": 2})), "{after:?}");

    // A delete stops it within a second.
    let deleted = tenant.delete(&format!("/crons/{cron_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let deleted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let late: Vec<_> = collector
        .received()
        .into_iter()
        .filter(|(at, _)| *at > deleted_at + Duration::from_secs(1))
        .collect();
    assert!(late.is_empty(), "fired after its deletion: {late:?}");
    assert!(
        firings(&server.database_url(), &cron_id).await.is_empty(),
        "firings go with the cron"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_functions_fire_without_a_token_and_failed_firings_are_recorded() {
    let server = server().await;
    let tenant = server.tenant().await;
    let collector = Collector::start().await;
    let private = recorder(&tenant, "cron-private", &collector, json!({"privacy": "private"})).await;
    let endpoint = tenant.get(&format!("/functions/{private}")).await.body["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let anonymous = reqwest::get(&endpoint).await.unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::NOT_FOUND,
        "private: no token, no function"
    );
    // The router's internal listener takes only nuage's own credential.
    let internal = server.server().endpoints().router_internal.unwrap();
    let forged = reqwest::Client::new()
        .post(format!("http://{internal}/{private}/"))
        .header("authorization", "Bearer guess")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let cron_id = cron(&tenant, &private, "* * * * * *", json!({"private": true})).await;
    let received = collector.wait_for(1, Duration::from_secs(10)).await;
    assert!(!received.is_empty(), "the private function was not fired");
    let (_, first) = &received[0];
    assert_eq!(first["body"], r#"{"private":true}"#);
    assert!(first["headers"].get("Authorization").is_none(), "{first}");
    let recorded = firings_until(&server.database_url(), &cron_id, Duration::from_secs(5), |f| {
        f.iter().any(|f| f.0 == "succeeded")
    })
    .await;
    assert!(
        recorded.iter().any(|f| f.0 == "succeeded" && f.1 == Some(200)),
        "{recorded:?}"
    );
    tenant.delete(&format!("/crons/{cron_id}")).await;

    // A function answering 500: recorded as failed, once per scheduled time, not retried.
    let failing = Collector::start().await;
    let broken = recorder(
        &tenant,
        "cron-failing",
        &failing,
        json!({"environment_variables": {"STATUS": "500"}}),
    )
    .await;
    let cron_id = cron(&tenant, &broken, "*/2 * * * * *", json!({})).await;
    let recorded = firings_until(&server.database_url(), &cron_id, Duration::from_secs(10), |f| {
        f.iter().filter(|f| f.0 == "failed").count() >= 2
    })
    .await;
    let failed: Vec<&Firing> = recorded.iter().filter(|f| f.0 == "failed").collect();
    assert!(failed.len() >= 2, "{recorded:?}");
    assert!(
        failed.iter().all(|f| f.1 == Some(500) && f.2.contains("500")),
        "{failed:?}"
    );
    tenant.delete(&format!("/crons/{cron_id}")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = failing.received().len();
    let rows = firings(&server.database_url(), &cron_id).await.len();
    assert_eq!(rows, 0, "firings go with the cron");
    assert!(
        calls == failed.len() || calls == failed.len() + 1,
        "{calls} calls for {} recorded firings: a failure is not retried",
        failed.len()
    );

    // A function never deployed: a failed firing that says why.
    let idle = function(
        &tenant,
        "cron-undeployed",
        json!({"name": "idle", "runtime": runtime(&tenant, "node").await}),
    )
    .await;
    let idle = idle["id"].as_str().unwrap();
    let cron_id = cron(&tenant, idle, "* * * * * *", json!({})).await;
    let recorded = firings_until(&server.database_url(), &cron_id, Duration::from_secs(10), |f| {
        f.iter().any(|f| f.0 == "failed")
    })
    .await;
    let failed = recorded.iter().find(|f| f.0 == "failed").expect("a failed firing");
    assert_eq!(failed.1, Some(404), "{failed:?}");
    assert!(failed.2.contains("never been deployed"), "{failed:?}");
}

/// The settings a `nuage serve --roles crons` replica of `server` needs.
fn replica_env(server: &TestServer, secret: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let endpoints = server.server().endpoints();
    let grpc = format!("http://{}", endpoints.grpc.unwrap());
    let mut env: Vec<(String, String)> = vec![
        ("NUAGE_DATABASE_URL".into(), server.database_url()),
        ("NUAGE_INTERNAL_SECRET".into(), secret.into()),
        ("NUAGE_SERVICES__FUNCTIONS".into(), grpc.clone()),
        ("NUAGE_SERVICES__CONTAINERS".into(), grpc),
        (
            "NUAGE_SERVICES__ROUTER".into(),
            format!("http://{}", endpoints.router_internal.unwrap()),
        ),
        ("NUAGE_CRONS__SECONDS_SCHEDULES".into(), "true".into()),
        ("NUAGE_CRONS__LEASE_SECONDS".into(), "2".into()),
        ("NUAGE_CRONS__SYNC_MS".into(), "200".into()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    );
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_fire_each_time_once_and_take_over_from_a_killed_one() {
    // Replica A serves the crons API for this server; B races it for every firing.
    let secret = "cron-replicas";
    let port_a = nuage_tests::free_port();
    let server = TestServer::start_with(|config| {
        config.roles = nuage::Role::ALL
            .into_iter()
            .filter(|role| *role != nuage::Role::Crons)
            .collect();
        config.services.crons = Some(format!("http://127.0.0.1:{port_a}"));
        config.internal_secret = Some(nuage_core::Secret::new(secret));
    })
    .await;
    let binary = env!("CARGO_BIN_EXE_nuage");
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let listen_a = format!("127.0.0.1:{port_a}");
    let _a = nuage_tests::Process::serve(
        binary,
        dir_a.path(),
        &["--roles", "crons", "--grpc-listen", &listen_a],
        &replica_env(&server, secret, &[]),
    );
    let mut b = nuage_tests::Process::serve(
        binary,
        dir_b.path(),
        &["--roles", "crons", "--grpc-listen", "127.0.0.1:0"],
        &replica_env(&server, secret, &[]),
    );
    let tenant = server.tenant().await;
    let collector = Collector::start().await;
    let id = recorder(&tenant, "cron-replicas", &collector, json!({})).await;

    let cron_id = cron(&tenant, &id, "* * * * * *", json!({})).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (recorded, calls) = settle(&tenant, &server, &cron_id, &collector).await;
    let fired = recorded.iter().filter(|f| f.0 == "succeeded").count();
    assert!(fired >= 6, "{fired} firings in 8 s: {recorded:?}");
    assert!(recorded.iter().all(|f| f.0 == "succeeded"), "{recorded:?}");
    // Every scheduled second is one row (the key) and one call.
    assert_eq!(calls, fired, "{calls} calls for {fired} firings: {recorded:?}");
    b.kill();

    // C holds what it claims for a minute (test-only) and is killed while holding one: A
    // takes it over once the lease runs out, and it is sent once.
    let mut c = nuage_tests::Process::serve(
        binary,
        dir_c.path(),
        &["--roles", "crons", "--grpc-listen", "127.0.0.1:0"],
        &replica_env(&server, secret, &[("NUAGE_CRONS__HOLD_BEFORE_SEND_MS", "60000")]),
    );
    let collector = Collector::start().await;
    let id = recorder(&tenant, "cron-takeover", &collector, json!({})).await;
    let cron_id = cron(&tenant, &id, "* * * * * *", json!({})).await;
    // A sends what it claims at once: a firing still `claimed` after a second is C's.
    let held = firings_until(&server.database_url(), &cron_id, Duration::from_secs(30), |f| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        f.iter().any(|f| f.0 == "claimed" && now - f.3 > 1_500_000)
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let held_at = held
        .iter()
        .find(|f| f.0 == "claimed" && now - f.3 > 1_500_000)
        .unwrap_or_else(|| {
            panic!(
                "C never held a firing: {held:?}\n{}",
                std::fs::read_to_string(dir_c.path().join("stderr.log")).unwrap_or_default()
            )
        })
        .3;
    c.kill();
    let killed = Instant::now();
    let taken = firings_until(&server.database_url(), &cron_id, Duration::from_secs(15), |f| {
        f.iter().any(|f| f.3 == held_at && f.0 == "succeeded")
    })
    .await;
    let firing = taken.iter().find(|f| f.3 == held_at).unwrap();
    assert_eq!(firing.0, "succeeded", "{taken:?}");
    assert!(firing.5 >= 2, "held by C, then taken over: {taken:?}");
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "taken over after {:?}",
        killed.elapsed()
    );
    let (recorded, calls) = settle(&tenant, &server, &cron_id, &collector).await;
    assert!(recorded.iter().all(|f| f.0 == "succeeded"), "{recorded:?}");
    assert_eq!(
        calls,
        recorded.len(),
        "{calls} calls for {} firings: {recorded:?}",
        recorded.len()
    );
}

/// Stops a cron from firing again (a yearly schedule, so that its firings stay), waits for
/// those in flight, and returns its firings and the calls the collector got.
async fn settle(tenant: &Tenant, server: &TestServer, cron_id: &str, collector: &Collector) -> (Vec<Firing>, usize) {
    let changed = tenant
        .patch(&format!("/crons/{cron_id}"), json!({"schedule": "0 0 1 1 *"}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let recorded = firings_until(&server.database_url(), cron_id, Duration::from_secs(5), |f| {
        f.iter().all(|f| f.0 == "succeeded" || f.0 == "failed")
    })
    .await;
    (recorded, collector.received().len())
}
