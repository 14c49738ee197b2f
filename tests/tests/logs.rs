//! Logs: what instances print (stdout and stderr), what builds said, when crons fired and why
//! the router failed an invocation, through `GET /logs` (pages, both orders, follow), bounded
//! per application, cut and escaped, and never a reason for one function to wait on another.

use nuage_tests::apps::{deployed, function, runtime, upload, zip};
use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A node handler that prints on demand.
const PRINTER_JS: &[u8] = br#"
exports.handle = async (event) => {
  const q = event.queryStringParameters || {};
  if (event.path === "/print") {
    for (let i = 0; i < Number(q.n || 1); i++) {
      console.log(`${q.tag} out ${i}`);
      console.error(`${q.tag} err ${i}`);
    }
  }
  if (event.path === "/long") process.stdout.write("L".repeat(100 * 1024) + "\n");
  if (event.path === "/bytes") process.stdout.write(Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x0a]));
  if (event.path === "/flood") {
    const end = Date.now() + Number(q.ms);
    const line = "flood ".repeat(20);
    (function spin() {
      for (let i = 0; i < 500; i++) console.log(line);
      if (Date.now() < end) setImmediate(spin);
    })();
  }
  if (event.path === "/sleep") await new Promise((r) => setTimeout(r, Number(q.ms)));
  return { statusCode: 200, body: "ok" };
};
"#;

async fn printer(tenant: &Tenant, namespace: &str, extra: Value) -> (String, String) {
    let node = runtime(tenant, "node").await;
    let mut body = json!({"name": "printer", "runtime": node});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let function = deployed(tenant, namespace, body, &[("handler.js", PRINTER_JS)]).await;
    (
        function["id"].as_str().unwrap().to_owned(),
        function["endpoint"].as_str().unwrap().to_owned(),
    )
}

async fn call(url: &str) -> StatusCode {
    reqwest::get(url).await.expect("the router answers").status()
}

/// The messages of `/logs` for the application, with the answer.
async fn messages(tenant: &Tenant, query: &str) -> (Vec<String>, Value) {
    let answer = tenant.get(&format!("/logs?{query}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let messages = answer.body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["message"].as_str().unwrap().to_owned())
        .collect();
    (messages, answer.body)
}

/// Waits up to `limit` until `done` holds for the application's lines (newest first).
async fn lines_until(tenant: &Tenant, id: &str, limit: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let query = format!("application_id={id}&page_size=100");
    let lines = || async { messages(tenant, &query).await.0 };
    eventually(limit, lines, |lines| done(lines)).await
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|line| line.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_lines_are_listed_in_both_orders_a_page_at_a_time() {
    let (server, tenant) = TestServer::with_tenant().await;
    let (id, endpoint) = printer(&tenant, "logs-list", json!({})).await;
    assert_eq!(call(&format!("{endpoint}/print?n=5&tag=alpha")).await, StatusCode::OK);
    let lines = lines_until(&tenant, &id, Duration::from_secs(10), |lines| {
        count(lines, "alpha") == 10
    })
    .await;
    assert_eq!(count(&lines, "alpha out"), 5, "{lines:?}");
    assert_eq!(count(&lines, "alpha err"), 5, "stderr too: {lines:?}");

    // Newest first by default; oldest first on request.
    let position = |lines: &[String], line: &str| lines.iter().position(|l| l == line).unwrap();
    let (newest_first, body) = messages(&tenant, &format!("application_id={id}&page_size=100")).await;
    assert!(position(&newest_first, "alpha out 4") < position(&newest_first, "alpha out 0"));
    let total = body["total_count"].as_u64().unwrap();
    assert_eq!(total as usize, newest_first.len());
    let log = &body["logs"][0];
    assert!(log["id"].as_str().is_some_and(|id| !id.is_empty()), "{log}");
    assert!(
        time::OffsetDateTime::parse(
            log["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok(),
        "{log}"
    );
    let (oldest_first, _) = messages(
        &tenant,
        &format!("application_id={id}&page_size=100&order_by=timestamp_asc"),
    )
    .await;
    assert!(position(&oldest_first, "alpha out 0") < position(&oldest_first, "alpha out 4"));
    let mut reversed = newest_first.clone();
    reversed.reverse();
    assert_eq!(oldest_first, reversed);

    // Pages of 3 add up to the whole, each with the same total_count.
    let mut paged = Vec::new();
    for page in 1..=total.div_ceil(3) {
        let (lines, body) = messages(
            &tenant,
            &format!("application_id={id}&page_size=3&page={page}&order_by=timestamp_asc"),
        )
        .await;
        assert_eq!(body["total_count"], total);
        paged.extend(lines);
    }
    assert_eq!(paged, oldest_first);

    // Errors name the problem; someone else's application is not there.
    let missing = tenant.get("/logs").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert_eq!(missing.body["type"], "invalid_arguments");
    let order = tenant.get(&format!("/logs?application_id={id}&order_by=newest")).await;
    assert_eq!(order.status, StatusCode::BAD_REQUEST, "{}", order.body);
    let unknown = tenant
        .get(&format!("/logs?application_id={}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let stranger = server.tenant().await;
    let theirs = stranger.get(&format!("/logs?application_id={id}")).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.body);

    // Deleting the function deletes its lines.
    assert_eq!(tenant.delete(&format!("/functions/{id}")).await.status, StatusCode::OK);
    tenant
        .wait_gone(&format!("/functions/{id}"), Duration::from_secs(20))
        .await;
    let mut db = server.database().await;
    let left: i64 = sqlx::query_scalar("select count(*) from log_lines where application_id = $1")
        .bind(&id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_cron_firings_and_router_failures_leave_lines() {
    let (_server, tenant) = TestServer::start_with_tenant(|config| config.crons.seconds_schedules = true).await;

    // A build that fails says why.
    let python = runtime(&tenant, "python").await;
    let broken = function(&tenant, "logs-build", json!({"name": "broken", "runtime": python})).await;
    let broken = broken["id"].as_str().unwrap().to_owned();
    upload(&tenant, &broken, zip(&[("other.py", b"x = 1\n")])).await;
    nuage_tests::apps::deploy(&tenant, &broken).await;
    let failed = nuage_tests::apps::settled(&tenant, &broken).await;
    assert_eq!(failed["status"], "error", "{failed}");
    let lines = lines_until(&tenant, &broken, Duration::from_secs(10), |lines| {
        count(lines, "refused:") == 1
    })
    .await;
    let refused = lines
        .iter()
        .find(|line| line.contains("refused:"))
        .expect("a refusal line");
    assert!(refused.contains("handler"), "{refused}");
    assert!(count(&lines, "fetched the archive") == 1, "{lines:?}");

    // A cron firing and an invocation the router failed (timeout).
    let (id, endpoint) = printer(&tenant, "logs-events", json!({"timeout": "1s"})).await;
    let cron = tenant
        .post(
            "/crons",
            json!({"application_id": id, "schedule": "* * * * * *", "args": {}}),
        )
        .await;
    assert_eq!(cron.status, StatusCode::OK, "{}", cron.body);
    assert_eq!(
        call(&format!("{endpoint}/sleep?ms=3000")).await,
        StatusCode::GATEWAY_TIMEOUT
    );
    let lines = lines_until(&tenant, &id, Duration::from_secs(10), |lines| {
        count(lines, "fired for") >= 1 && count(lines, "invocation failed: HTTP 504") == 1
    })
    .await;
    assert!(
        lines.iter().any(
            |line| line.contains(&format!("cron {}", cron.body["id"].as_str().unwrap())) && line.contains("HTTP 200")
        ),
        "{lines:?}"
    );
    assert_eq!(count(&lines, "invocation failed: HTTP 504"), 1, "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_lines_printed_after_the_request() {
    let (_server, tenant) = TestServer::with_tenant().await;
    let (id, endpoint) = printer(&tenant, "logs-follow", json!({})).await;
    assert_eq!(call(&format!("{endpoint}/print?tag=before")).await, StatusCode::OK);
    lines_until(&tenant, &id, Duration::from_secs(10), |lines| {
        count(lines, "before") == 2
    })
    .await;
    // The lines above are stored: they are older than this.
    let started = time::OffsetDateTime::now_utc();

    let follow = |query: String| {
        let request = reqwest::Client::new()
            .get(format!("{}/logs?application_id={id}&follow=true{query}", tenant.api))
            .header("X-Auth-Token", &tenant.secret_key);
        async move { request.send().await.unwrap() }
    };
    let mut live = follow(String::new()).await;
    assert_eq!(live.status(), StatusCode::OK);
    assert_eq!(live.headers()["content-type"], "application/x-ndjson");
    assert_eq!(call(&format!("{endpoint}/print?tag=after")).await, StatusCode::OK);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("after out 0") {
        let chunk = tokio::time::timeout_at(deadline, live.chunk())
            .await
            .expect("a followed line within 10 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(!seen.contains("before"), "only new lines: {seen}");
    let first: Value = serde_json::from_str(seen.lines().next().unwrap()).unwrap();
    assert!(first["id"].is_string() && first["timestamp"].is_string(), "{first}");

    // With `since`, the lines stored from then on come first.
    let since = started.format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut replay = follow(format!("&since={since}")).await;
    let mut seen = String::new();
    while !seen.contains("after err 0") || !seen.contains("after out 0") {
        let chunk = tokio::time::timeout_at(deadline, replay.chunk())
            .await
            .expect("stored lines within 10 s")
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(!seen.contains("before"), "{seen}");
    let bad = tenant.get(&format!("/logs?application_id={id}&since=yesterday")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_bounded_cut_and_escaped() {
    let (_server, tenant) = TestServer::start_with_tenant(|config| {
        config.logs.max_lines_per_application = 30;
        config.logs.max_age_seconds = 12;
        config.logs.prune_interval_ms = 200;
    })
    .await;
    let (id, endpoint) = printer(&tenant, "logs-bounds", json!({})).await;
    assert_eq!(call(&format!("{endpoint}/long")).await, StatusCode::OK);
    assert_eq!(call(&format!("{endpoint}/bytes")).await, StatusCode::OK);
    let lines = lines_until(&tenant, &id, Duration::from_secs(10), |lines| {
        count(lines, "LLLL") == 1 && count(lines, "bad") == 1
    })
    .await;
    let long = lines.iter().find(|line| line.starts_with("LLLL")).unwrap();
    assert!(
        long.ends_with(" [cut: 36864 more bytes]"),
        "{}",
        &long[long.len() - 40..]
    );
    assert_eq!(long.len(), 64 * 1024 + " [cut: 36864 more bytes]".len());
    assert!(lines.iter().any(|line| line == "bad\\xff\\xfe"), "{lines:?}");

    // 80 lines in an application that keeps 30: the newest stay (by when they were read: one
    // stream may come in after the other).
    assert_eq!(call(&format!("{endpoint}/print?n=40&tag=many")).await, StatusCode::OK);
    let last = |lines: &[String]| count(lines, "many out 39") + count(lines, "many err 39");
    let lines = lines_until(&tenant, &id, Duration::from_secs(10), |lines| {
        last(lines) >= 1 && lines.len() <= 30
    })
    .await;
    assert_eq!(lines.len(), 30, "{lines:?}");
    assert!(last(&lines) >= 1, "{lines:?}");
    assert!(lines.iter().all(|line| line.starts_with("many")), "{lines:?}");
    assert_eq!(
        count(&lines, "many out 0") + count(&lines, "many err 0"),
        0,
        "{lines:?}"
    );
    // And lines older than max_age go.
    let lines = lines_until(&tenant, &id, Duration::from_secs(25), |lines| lines.is_empty()).await;
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_function_does_not_hold_up_others() {
    let (server, flooding) = TestServer::with_tenant().await;
    let quiet = server.tenant().await;
    let (_, flood) = printer(&flooding, "logs-flood", json!({})).await;
    let (calm_id, calm) = printer(&quiet, "logs-calm", json!({})).await;

    assert_eq!(call(&format!("{flood}/flood?ms=5000")).await, StatusCode::OK);
    // The flood is on once it goes over its rate: lines are dropped.
    let flooding = eventually(Duration::from_secs(5), || dropped(&server), |dropped| *dropped > 0.0).await;
    assert!(flooding > 0.0, "the flood never went over its rate");
    let mut slowest = Duration::ZERO;
    for index in 0..10 {
        let started = Instant::now();
        assert_eq!(call(&format!("{calm}/print?tag=calm{index}")).await, StatusCode::OK);
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "a call took {slowest:?} during the flood"
    );
    // The flooding function itself still answers.
    let started = Instant::now();
    assert_eq!(call(&format!("{flood}/print?tag=self")).await, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // The quiet tenant's lines all arrive, while the flood is still on.
    let calm_lines = |lines: &[String]| lines.iter().filter(|line| line.starts_with("calm")).count();
    let lines = lines_until(&quiet, &calm_id, Duration::from_secs(4), |lines| {
        calm_lines(lines) == 20
    })
    .await;
    assert_eq!(calm_lines(&lines), 20, "{lines:?}");
    // The flood was cut down to its rate, and the drops are counted.
    let metrics = server.metrics().await;
    assert!(dropped_in(&metrics) > 0.0, "{metrics}");
}

/// Returns `nuage_logs_lines_dropped_total` in `metrics`.
fn dropped_in(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with("nuage_logs_lines_dropped_total "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no dropped counter in {metrics}"))
}

/// Returns the lines the server dropped so far.
async fn dropped(server: &TestServer) -> f64 {
    dropped_in(&server.metrics().await)
}
