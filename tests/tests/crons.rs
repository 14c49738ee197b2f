//! Crons fire: on schedule, with their args as the body, through the router's internal
//! listener (private functions without a token), each scheduled time once across replicas,
//! every firing recorded. Schedules here use the test-only seconds field
//! (`crons.seconds_schedules`) so that a test waits seconds, not minutes; the scheduler runs on
//! the real clock.

use nuage_tests::apps::{deployed, function, runtime};
use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A node handler that prints what it received as one JSON line on stdout (read back through
/// `GET /logs`: an instance reaches nothing outside itself), then answers with `$STATUS` (200
/// by default).
const RECORDER_JS: &[u8] = br#"
exports.handle = async (event, context) => {
  console.log(JSON.stringify({ received: { body: event.body, method: event.httpMethod, headers: event.headers } }));
  return { statusCode: Number(process.env.STATUS || 200), body: "done" };
};
"#;

/// A server whose crons accept schedules with seconds.
async fn server() -> TestServer {
    TestServer::start_with(|config| config.crons.seconds_schedules = true).await
}

/// Deploys the recorder in a new namespace, with `extra` in its body; returns its id.
async fn recorder(tenant: &Tenant, namespace: &str, extra: Value) -> String {
    let node = runtime(tenant, "node").await;
    let mut body = json!({"name": "recorder", "runtime": node});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let function = deployed(tenant, namespace, body, &[("handler.js", RECORDER_JS)]).await;
    function["id"].as_str().unwrap().to_owned()
}

async fn cron(tenant: &Tenant, application_id: &str, schedule: &str, args: Value) -> String {
    tenant
        .create(
            "/crons",
            json!({"application_id": application_id, "schedule": schedule, "args": args}),
        )
        .await
}

/// Returns the current time in Unix microseconds, the unit of log timestamps and firings.
fn now_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_micros()).unwrap()
}

/// A call the recorder printed: when the runner read its line (Unix µs, the clock firings use
/// too), and what the function received (`body`, `method`, `headers`).
type Call = (i64, Value);

/// Returns the calls the recorder `application_id` printed so far, oldest first.
async fn calls(tenant: &Tenant, application_id: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    for page in 1.. {
        let answer = tenant
            .get(&format!(
                "/logs?application_id={application_id}&order_by=timestamp_asc&page_size=100&page={page}"
            ))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let logs = answer.body["logs"].as_array().unwrap();
        // Lines of other sources (the cron's own `fired for` lines, the runtime's) are not JSON.
        calls.extend(logs.iter().filter_map(|log| {
            let printed: Value = serde_json::from_str(log["message"].as_str()?).ok()?;
            let at = time::OffsetDateTime::parse(
                log["timestamp"].as_str()?,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            Some((
                (at.unix_timestamp_nanos() / 1000) as i64,
                printed.get("received")?.clone(),
            ))
        }));
        if logs.len() < 100 {
            return calls;
        }
    }
    unreachable!()
}

/// Waits up to `limit` until `done` holds for the recorder's calls; returns them.
async fn calls_until(
    tenant: &Tenant,
    application_id: &str,
    limit: Duration,
    done: impl Fn(&[Call]) -> bool,
) -> Vec<Call> {
    eventually(limit, || calls(tenant, application_id), |calls| done(calls)).await
}

/// Returns the calls crons made to the recorder `application_id`, once the lines of those that
/// ended are all stored: a call of our own (a GET, where crons POST) printed after them marks
/// the end, as lines are stored in the order they were printed.
async fn cron_calls(tenant: &Tenant, application_id: &str) -> Vec<Call> {
    let endpoint = tenant.get(&format!("/functions/{application_id}")).await.body["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let marker = uuid::Uuid::new_v4().to_string();
    // Answered with whatever status the recorder is set to.
    reqwest::Client::new()
        .get(&endpoint)
        .header("X-Marker", &marker)
        .send()
        .await
        .expect("the router answers");
    let is_marker = |(_, received): &Call| {
        received["headers"]
            .as_object()
            .is_some_and(|headers| headers.values().any(|value| *value == marker.as_str()))
    };
    let calls = calls_until(tenant, application_id, Duration::from_secs(10), |calls| {
        calls.iter().any(is_marker)
    })
    .await;
    assert!(calls.iter().any(is_marker), "the marker call's line is not stored");
    calls
        .into_iter()
        .filter(|(_, received)| received["method"] == "POST")
        .collect()
}

/// A recorded firing: status, HTTP status, error, scheduled and started (µs), attempts.
type Firing = (String, Option<i64>, String, i64, Option<i64>, i64);

async fn firings(database_url: &str, cron_id: &str) -> Vec<Firing> {
    let mut db = nuage_tests::connect(database_url).await;
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
    eventually(limit, || firings(database_url, cron_id), |firings| done(firings)).await
}

/// How long after its time a scheduler claims a time that came due (within milliseconds
/// unless the machine is very busy).
const CLAIMED_WITHIN_MICROS: i64 = 1_500_000;

/// Waits until the cron (due every `period` seconds) that stopped at `stopped_at` (µs) has no
/// firing in flight, and returns its firings then. A scheduler reads the cron before it claims
/// a time, so only the time due last before `stopped_at` can still be claimed after it; that
/// one is claimed within `CLAIMED_WITHIN_MICROS` of its time, or not at all.
async fn firings_after_stop(database_url: &str, cron_id: &str, stopped_at: i64, period: i64) -> Vec<Firing> {
    let last_due = stopped_at - stopped_at % (period * 1_000_000);
    let settled = |firings: &[Firing]| {
        now_micros() >= last_due + CLAIMED_WITHIN_MICROS
            && firings.iter().all(|f| f.0 == "succeeded" || f.0 == "failed")
    };
    let recorded = firings_until(database_url, cron_id, Duration::from_secs(10), settled).await;
    assert!(settled(&recorded), "firings still in flight: {recorded:?}");
    recorded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_fires_its_function_with_its_args_and_follows_updates_and_deletes() {
    let server = server().await;
    let tenant = server.tenant().await;
    let id = recorder(&tenant, "cron-fires", json!({})).await;

    let cron_id = cron(&tenant, &id, "* * * * * *", json!({"n": 1, "text": "é"})).await;
    let received = calls_until(&tenant, &id, Duration::from_secs(10), |calls| calls.len() >= 2).await;
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

    // An update (args and schedule) holds for firings from a second later on: in the 4.5 s
    // after that, every other second. Lines are read once one from after that window is
    // stored, so that none of the window's is still on its way.
    let updated = tenant
        .patch(
            &format!("/crons/{cron_id}"),
            json!({"args": {"n": 2}, "schedule": "*/2 * * * * *"}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let changed_at = now_micros();
    let (from, to) = (changed_at + 1_000_000, changed_at + 5_500_000);
    let received = calls_until(&tenant, &id, Duration::from_secs(10), |calls| {
        calls.iter().any(|(at, _)| *at > to)
    })
    .await;
    assert!(
        received.iter().any(|(at, _)| *at > to),
        "no firing 5.5 s after the update"
    );
    let after: Vec<Value> = received
        .into_iter()
        .filter(|(at, _)| (from..=to).contains(at))
        .map(|(_, body)| serde_json::from_str(body["body"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        (2..=3).contains(&after.len()),
        "every other second: {} firings in 4.5 s",
        after.len()
    );
    assert!(after.iter().all(|args| *args == json!({"n": 2})), "{after:?}");

    // A delete stops it within a second. A witness cron made right after, firing every second,
    // shows when the scheduler has gone 4 s past the delete (two of the deleted cron's times)
    // and the lines of what it sent are stored.
    let deleted = tenant.delete(&format!("/crons/{cron_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let deleted_at = now_micros();
    cron(&tenant, &id, "* * * * * *", json!({"witness": true})).await;
    let witness = |(at, received): &Call| received["body"] == r#"{"witness":true}"# && *at > deleted_at + 4_000_000;
    let received = calls_until(&tenant, &id, Duration::from_secs(10), |calls| calls.iter().any(witness)).await;
    assert!(received.iter().any(witness), "the witness cron did not fire");
    let late: Vec<Call> = received
        .into_iter()
        .filter(|(at, received)| *at > deleted_at + 1_000_000 && received["body"] != r#"{"witness":true}"#)
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
    let private = recorder(&tenant, "cron-private", json!({"privacy": "private"})).await;
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
    let received = calls_until(&tenant, &private, Duration::from_secs(10), |calls| !calls.is_empty()).await;
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
    let broken = recorder(
        &tenant,
        "cron-failing",
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
    let deleted_at = now_micros();
    // Every call up to now, once one due as the cron went has been sent.
    firings_after_stop(&server.database_url(), &cron_id, deleted_at, 2).await;
    let calls = cron_calls(&tenant, &broken).await.len();
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
        let url = format!("http://127.0.0.1:{port_a}");
        nuage_tests::serve_all_but(config, &[nuage::Role::Crons], &url, secret);
    })
    .await;
    let binary = env!("CARGO_BIN_EXE_nuage");
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let listen_a = format!("127.0.0.1:{port_a}");
    let mut a = nuage_tests::Process::serve(
        binary,
        dir_a.path(),
        &["--roles", "crons", "--grpc-listen", &listen_a],
        &replica_env(&server, secret, &[]),
    );
    // The server's crons calls go to A alone: one made before A listens is refused (503).
    a.wait_listening(port_a).await;
    let mut b = nuage_tests::Process::serve(
        binary,
        dir_b.path(),
        &["--roles", "crons", "--grpc-listen", "127.0.0.1:0"],
        &replica_env(&server, secret, &[]),
    );
    let tenant = server.tenant().await;
    let id = recorder(&tenant, "cron-replicas", json!({})).await;

    let cron_id = cron(&tenant, &id, "* * * * * *", json!({})).await;
    firings_until(&server.database_url(), &cron_id, Duration::from_secs(8), |f| {
        f.iter().filter(|f| f.0 == "succeeded").count() >= 6
    })
    .await;
    let (recorded, calls) = settle(&tenant, &server, &cron_id, &id).await;
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
    let id = recorder(&tenant, "cron-takeover", json!({})).await;
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
    let (recorded, calls) = settle(&tenant, &server, &cron_id, &id).await;
    assert!(recorded.iter().all(|f| f.0 == "succeeded"), "{recorded:?}");
    assert_eq!(
        calls,
        recorded.len(),
        "{calls} calls for {} firings: {recorded:?}",
        recorded.len()
    );
}

/// Stops a cron firing every second from firing again (a yearly schedule, so that its
/// firings stay), waits for those in flight, and returns its firings and the calls crons made
/// to the recorder `application_id` (every one, so that none is still on its way).
async fn settle(tenant: &Tenant, server: &TestServer, cron_id: &str, application_id: &str) -> (Vec<Firing>, usize) {
    let changed = tenant
        .patch(&format!("/crons/{cron_id}"), json!({"schedule": "0 0 1 1 *"}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let recorded = firings_after_stop(&server.database_url(), cron_id, now_micros(), 1).await;
    let calls = cron_calls(tenant, application_id).await;
    (recorded, calls.len())
}
