//! v1beta1 `/triggers` against the real NATS server (`NUAGE_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`; `.ci/run` starts one), each test on subjects of its own: a trigger
//! turns `ready` once subscribed, a message published on its subject reaches the function as a
//! POST (payload as body, subject in `X-Nats-Subject`), a failing function is tried again then
//! the trigger shows the error, a deleted trigger (or one of a deleted function) no longer
//! listens, an unreachable server is an error with a message. Bad inputs name their argument;
//! another tenant reaches none of it.

use nuage_tests::apps::{deployed_node, runtime};
use nuage_tests::conformance::Spec;
use nuage_tests::{Answer, Tenant, TestServer, eventually, free_port, ok, printed};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Prints what it received as one JSON line (read back through `GET /logs`); answers 500 to
/// the body `fail`.
const RECORDER_JS: &[u8] = br#"
exports.handle = async (event) => {
  const subject = event.headers["x-nats-subject"];
  console.log(JSON.stringify({ received: event.body, subject, method: event.httpMethod }));
  return { statusCode: event.body === "fail" ? 500 : 200, body: "done" };
};
"#;

/// The NATS server the suite publishes to.
fn nats_url() -> String {
    std::env::var("NUAGE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A subject no other test (or run) uses.
fn subject(name: &str) -> String {
    format!("nuage.tests.{name}.{}", uuid::Uuid::new_v4().simple())
}

/// Returns where a trigger of `tenant` on `subject` reads on the shared server: under its
/// organization's prefix (`triggers.nats.subject_prefix`).
fn scoped(tenant: &Tenant, subject: &str) -> String {
    format!("tenants.{}.{subject}", tenant.organization_id)
}

fn beta(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::FunctionsV1beta1, "fr-par")
}

/// Starts a server whose triggers read `nats_url()` and try a message 3 times, 100 ms apart.
async fn server() -> TestServer {
    TestServer::start_with(|config| {
        config.triggers.nats.url = Some(nats_url());
        config.triggers.delivery_attempts = 3;
        config.triggers.backoff_ms = 100;
    })
    .await
}

/// Returns the lines the recorder `function_id` printed so far: (body, subject, method).
async fn received(alpha: &Tenant, function_id: &str) -> Vec<(String, String, String)> {
    printed(alpha, function_id)
        .await
        .iter()
        .map(|printed| {
            let text = |key: &str| printed[key].as_str().unwrap_or_default().to_owned();
            (text("received"), text("subject"), text("method"))
        })
        .collect()
}

/// Returns the bodies of the recorder's lines.
async fn bodies(alpha: &Tenant, function_id: &str) -> Vec<String> {
    received(alpha, function_id)
        .await
        .into_iter()
        .map(|(body, _, _)| body)
        .collect()
}

/// Waits until the recorder has printed `count` lines with `body`; returns all its bodies.
async fn wait_for(alpha: &Tenant, function_id: &str, body: &str, count: usize) -> Vec<String> {
    let seen = eventually(
        Duration::from_secs(30),
        || bodies(alpha, function_id),
        |seen: &Vec<String>| seen.iter().filter(|seen| *seen == body).count() >= count,
    )
    .await;
    assert!(
        seen.iter().filter(|seen| *seen == body).count() >= count,
        "`{body}` was not received {count} times: {seen:?}"
    );
    seen
}

/// Publishes `payload` on `subject` and makes sure the server has it.
async fn publish(nats: &async_nats::Client, subject: &str, payload: &str) {
    nats.publish(subject.to_owned(), payload.to_owned().into())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");
}

/// Returns whether something listens on `subject`: a request there finds no responders
/// (at once) when nothing is subscribed.
async fn listening(nats: &async_nats::Client, subject: &str) -> bool {
    let request = nats.request(subject.to_owned(), "probe".into());
    match tokio::time::timeout(Duration::from_secs(2), request).await {
        Ok(Err(error)) => error.kind() != async_nats::RequestErrorKind::NoResponders,
        // Delivered to a subscriber (which does not answer requests).
        _ => true,
    }
}

/// Returns whether something listens on `subject` within a few seconds: on a loaded machine
/// the trigger service's connection to the server can be re-established (and it subscribes
/// again) between a trigger turning ready and a look.
async fn listened(nats: &async_nats::Client, subject: &str) -> bool {
    eventually(Duration::from_secs(10), || listening(nats, subject), |now: &bool| *now).await
}

/// Creates a NATS trigger for `function_id` on `subject` of account `account`.
async fn create(tenant: &Tenant, function_id: &str, name: &str, subject: &str, account: &str) -> Answer {
    tenant
        .post(
            "/triggers",
            json!({
                "name": name,
                "function_id": function_id,
                "scw_nats_config": {"subject": subject, "mnq_nats_account_id": account, "mnq_region": "fr-par"},
            }),
        )
        .await
}

/// Waits until trigger `id` leaves `creating`; returns it.
async fn settled(tenant: &Tenant, id: &str) -> Value {
    tenant
        .poll_until(&format!("/triggers/{id}"), Duration::from_secs(20), |answer| {
            answer.body["status"] != "creating"
        })
        .await
        .body
}

/// Returns the queries of a trigger list whose answer, to their owner `alpha`, holds the
/// triggers of function `function_id`: by the function, its namespace, alpha's project, and none.
fn list_queries(function_id: &str, namespace_id: &str, alpha: &Tenant) -> [String; 4] {
    [
        format!("function_id={function_id}"),
        format!("namespace_id={namespace_id}"),
        format!("project_id={}", alpha.project_id),
        String::new(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_trigger_delivers_each_message_to_its_function_until_deleted() {
    let server = server().await;
    let nats = async_nats::connect(nats_url()).await.expect("the NATS server answers");
    let alpha = server.tenant().await;
    let beta = beta(&alpha);
    let function = deployed_node(&alpha, "triggers", json!({"name": "recorder"}), RECORDER_JS).await;
    let function_id = function["id"].as_str().unwrap().to_owned();
    let namespace_id = function["namespace_id"].as_str().unwrap().to_owned();
    let orders = subject("orders");
    let published = scoped(&alpha, &orders);

    let created = create(&beta, &function_id, "orders", &orders, "account-1").await;
    let trigger = ok(&created).clone();
    let trigger_id = trigger["id"].as_str().unwrap().to_owned();
    assert_eq!(trigger["status"], "creating", "{trigger}");
    assert_eq!(trigger["input_type"], "scw_nats");
    assert_eq!(trigger["function_id"], function_id.as_str());
    assert_eq!(trigger["name"], "orders");
    assert_eq!(trigger["description"], "");
    assert_eq!(trigger["error_message"], Value::Null);
    assert_eq!(
        trigger["scw_nats_config"],
        json!({"subject": orders, "mnq_nats_account_id": "account-1", "mnq_project_id": alpha.project_id.to_string(),
               "mnq_region": "fr-par", "mnq_credential_id": null})
    );
    let ready = settled(&beta, &trigger_id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(listened(&nats, &published).await);

    // Each message reaches the function once, as a POST of its payload naming its subject.
    publish(&nats, &published, "first order").await;
    publish(&nats, &published, "second order").await;
    // Delivered concurrently: in either order.
    wait_for(&alpha, &function_id, "first order", 1).await;
    wait_for(&alpha, &function_id, "second order", 1).await;
    let lines = received(&alpha, &function_id).await;
    for body in ["first order", "second order"] {
        let of_body: Vec<_> = lines.iter().filter(|line| line.0 == body).collect();
        assert_eq!(of_body.len(), 1, "{lines:?}");
        assert_eq!(of_body[0].1, orders, "{lines:?}");
        assert_eq!(of_body[0].2, "POST", "{lines:?}");
    }

    // A failing answer is tried again (3 tries in all), then the trigger shows why; the next
    // message delivered makes it ready again.
    publish(&nats, &published, "fail").await;
    let failed = beta
        .poll_until(&format!("/triggers/{trigger_id}"), Duration::from_secs(20), |answer| {
            answer.body["status"] == "error"
        })
        .await;
    let message = failed.body["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("a message on `{orders}` was not delivered after 3 tries"))
            && message.contains("500"),
        "{}",
        failed.body
    );
    let tries = wait_for(&alpha, &function_id, "fail", 3).await;
    assert_eq!(tries.iter().filter(|body| *body == "fail").count(), 3, "{tries:?}");
    publish(&nats, &published, "after the failure").await;
    wait_for(&alpha, &function_id, "after the failure", 1).await;
    let recovered = beta
        .poll_until(&format!("/triggers/{trigger_id}"), Duration::from_secs(10), |answer| {
            answer.body["status"] == "ready"
        })
        .await;
    assert_eq!(recovered.body["error_message"], Value::Null);

    // Listed by function, namespace and project; renamed and described.
    for query in list_queries(&function_id, &namespace_id, &alpha) {
        let listed = beta.get(&format!("/triggers?{query}")).await;
        assert_eq!(ok(&listed)["total_count"], 1, "{query}: {}", listed.body);
        assert_eq!(listed.body["triggers"][0]["id"], trigger_id.as_str());
    }
    let changed = beta
        .patch(
            &format!("/triggers/{trigger_id}"),
            json!({"name": "renamed", "description": "every order"}),
        )
        .await;
    assert_eq!(ok(&changed)["name"], "renamed");
    assert_eq!(changed.body["description"], "every order");
    assert_eq!(changed.body["status"], "ready");

    // Deleted: `deleting`, then gone, and nothing listens on its subject any more.
    let (deleted, gone) = beta
        .delete_until_gone(&format!("/triggers/{trigger_id}"), Duration::from_secs(10))
        .await;
    ok(&deleted);
    assert_eq!(gone.body["message"], "trigger does not exist", "{}", gone.body);
    assert!(!listening(&nats, &published).await, "a deleted trigger still listens");
    publish(&nats, &published, "after the deletion").await;

    // A trigger of a deleted function goes with it, and stops listening too.
    let invoices = subject("invoices");
    let invoices_published = scoped(&alpha, &invoices);
    let second = create(&beta, &function_id, "invoices", &invoices, "account-1").await;
    let second_id = ok(&second)["id"].as_str().unwrap().to_owned();
    assert_eq!(settled(&beta, &second_id).await["status"], "ready");
    assert!(listened(&nats, &invoices_published).await);
    publish(&nats, &invoices_published, "barrier").await;
    let seen = wait_for(&alpha, &function_id, "barrier", 1).await;
    assert!(!seen.iter().any(|body| body == "after the deletion"), "{seen:?}");
    ok(&beta.delete(&format!("/functions/{function_id}")).await);
    beta.wait_gone(&format!("/triggers/{second_id}"), Duration::from_secs(20))
        .await;
    assert!(
        !listening(&nats, &invoices_published).await,
        "a deleted function's trigger still listens"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_are_errors_and_bad_trigger_requests_name_their_argument() {
    let down = format!("nats://127.0.0.1:{}", free_port());
    let down_url = down.clone();
    let tls_port = free_port();
    let _tls_nats = OwnNats::over_tls(tls_port);
    let tls = format!("tls://127.0.0.1:{tls_port}");
    let tls_url = tls.clone();
    eventually(
        Duration::from_secs(10),
        || tokio::net::TcpStream::connect(("127.0.0.1", tls_port)),
        |connected| connected.is_ok(),
    )
    .await
    .expect("the test's NATS server over TLS listens");
    let (server, alpha) = TestServer::start_with_tenant(move |config| {
        config.triggers.nats.url = Some(nats_url());
        let account = |url: Option<String>, organization_id| nuage_triggers::NatsAccount {
            url,
            organization_id,
            ..nuage_triggers::NatsAccount::default()
        };
        let accounts = &mut config.triggers.nats.accounts;
        accounts.insert("down".to_owned(), account(Some(down_url), None));
        accounts.insert("tls".to_owned(), account(Some(tls_url), None));
        accounts.insert("someone-elses".to_owned(), account(None, Some(uuid::Uuid::new_v4())));
    })
    .await;
    let beta = beta(&alpha);
    let node = runtime(&alpha, "node").await;
    let function = nuage_tests::apps::function(&alpha, "triggers", json!({"name": "target", "runtime": node})).await;
    let function_id = function["id"].as_str().unwrap().to_owned();
    let namespace_id = function["namespace_id"].as_str().unwrap().to_owned();

    // An account whose server cannot be reached: `error`, saying which server.
    let unreachable = create(&beta, &function_id, "unreachable", &subject("down"), "down").await;
    let unreachable_id = ok(&unreachable)["id"].as_str().unwrap().to_owned();
    let errored = settled(&beta, &unreachable_id).await;
    assert_eq!(errored["status"], "error", "{errored}");
    let message = errored["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("cannot reach the NATS server `{down}`")),
        "{errored}"
    );
    // One over TLS whose certificate no public root signs: `error` too, saying so (TLS is
    // tried, and no part of nuage panics choosing a TLS provider).
    let untrusted = create(&beta, &function_id, "untrusted", &subject("tls"), "tls").await;
    let untrusted = settled(&beta, ok(&untrusted)["id"].as_str().unwrap()).await;
    assert_eq!(untrusted["status"], "error", "{untrusted}");
    let message = untrusted["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("cannot reach the NATS server `{tls}`"))
            && message.contains("invalid peer certificate"),
        "{untrusted}"
    );

    // Bad inputs, each named.
    let nats = |subject: &str| json!({"subject": subject, "mnq_nats_account_id": "a", "mnq_region": "fr-par"});
    let good = nats("orders.created");
    let cases = [
        (json!({"name": "t", "scw_nats_config": good}), "function_id"),
        (
            json!({"name": "t", "function_id": "x", "scw_nats_config": good}),
            "function_id",
        ),
        (json!({"function_id": function_id, "scw_nats_config": good}), "name"),
        (
            json!({"name": "n".repeat(101), "function_id": function_id, "scw_nats_config": good}),
            "name",
        ),
        (
            json!({"name": 3, "function_id": function_id, "scw_nats_config": good}),
            "name",
        ),
        (json!({"name": "t", "function_id": function_id}), "scw_nats_config"),
        (
            json!({"name": "t", "function_id": function_id, "scw_nats_config": nats("")}),
            "scw_nats_config.subject",
        ),
        (
            json!({"name": "t", "function_id": function_id, "scw_nats_config": nats("a..b")}),
            "scw_nats_config.subject",
        ),
        (
            json!({"name": "t", "function_id": function_id, "scw_nats_config": nats("a.>.b")}),
            "scw_nats_config.subject",
        ),
        (
            json!({"name": "t", "function_id": function_id, "scw_nats_config": nats("has space")}),
            "scw_nats_config.subject",
        ),
        (
            json!({"name": "t", "function_id": function_id, "scw_nats_config": nats("$SYS.>")}),
            "scw_nats_config.subject",
        ),
        (
            json!({"name": "t", "function_id": function_id, "scw_nats_config": {"subject": "a", "mnq_region": "fr-par"}}),
            "scw_nats_config.mnq_nats_account_id",
        ),
        (
            json!({"name": "t", "function_id": function_id,
                   "scw_nats_config": {"subject": "a", "mnq_nats_account_id": "a", "mnq_region": "mars-1"}}),
            "scw_nats_config.mnq_region",
        ),
        (
            json!({"name": "t", "function_id": function_id, "description": "d".repeat(256), "scw_nats_config": good}),
            "description",
        ),
        (
            json!({"name": "t", "function_id": function_id, "scw_nats_config": good,
                   "scw_sqs_config": {"queue": "q", "mnq_project_id": "p", "mnq_region": "fr-par"}}),
            "scw_sqs_config",
        ),
    ];
    beta.assert_each_refused("/triggers", cases).await;
    // SQS triggers: refused, saying why.
    let sqs = [
        (
            json!({"queue": "q", "mnq_project_id": "p", "mnq_region": "fr-par"}),
            "scw_sqs_config",
        ),
        (
            json!({"endpoint": "http://sqs", "queue_url": "http://sqs/q", "access_key": "a", "secret_key": "s"}),
            "sqs_config",
        ),
    ];
    for (config, argument) in sqs {
        let mut body = json!({"name": "t", "function_id": function_id});
        body[argument] = config;
        let answer = beta.post("/triggers", body).await;
        assert_eq!(answer.refused_argument(), argument, "{}", answer.body);
        let help = answer.body["details"][0]["help_message"].as_str().unwrap_or_default();
        assert!(
            help.contains("no SQS endpoint is configured on this installation"),
            "{}",
            answer.body
        );
    }
    // Another organization's account is no account of this tenant's.
    let theirs = create(&beta, &function_id, "t", "orders", "someone-elses").await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.body);
    let path = format!("/triggers/{unreachable_id}");
    assert_eq!(beta.patch(&path, json!({"name": ""})).await.refused_argument(), "name");
    assert_eq!(
        beta.patch(&path, json!({"sqs_config": {"access_key": "a", "secret_key": "s"}}))
            .await
            .refused_argument(),
        "sqs_config"
    );
    beta.assert_each_get_refused([
        ("/triggers/x", "trigger_id"),
        ("/triggers?order_by=name_asc", "order_by"),
        ("/triggers?function_id=x", "function_id"),
    ])
    .await;
    let missing = beta.get(&format!("/triggers/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["message"], "trigger does not exist");

    // Another tenant, as it would try: a trigger on this function; read, list, change, delete.
    let stranger = server.tenant().await.speaking(Spec::FunctionsV1beta1, "fr-par");
    let refused = create(&stranger, &function_id, "theirs", &subject("stolen"), "a").await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert_eq!(stranger.get(&path).await.status, StatusCode::NOT_FOUND);
    for query in list_queries(&function_id, &namespace_id, &alpha) {
        let listed = stranger.get(&format!("/triggers?{query}")).await;
        assert_eq!(ok(&listed)["total_count"], 0, "{query}: {}", listed.body);
    }
    stranger.assert_kept_from_me(&beta, &path, "unreachable").await;
    // Its two triggers, the unreachable one and the untrusted one, and no stranger's.
    let listed = beta.get(&format!("/triggers?function_id={function_id}")).await;
    assert_eq!(ok(&listed)["total_count"], 2, "{}", listed.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_shared_nats_server_a_tenant_reads_only_subjects_of_its_own() {
    let server = server().await;
    let nats = async_nats::connect(nats_url()).await.expect("the NATS server answers");
    let mut recorders = Vec::new();
    for _ in 0..2 {
        let tenant = server.tenant().await;
        let function = deployed_node(&tenant, "triggers", json!({"name": "recorder"}), RECORDER_JS).await;
        let function_id = function["id"].as_str().unwrap().to_owned();
        recorders.push((tenant, function_id));
    }
    let (stranger, stranger_function) = recorders.pop().expect("two recorders");
    let (alpha, alpha_function) = recorders.pop().expect("two recorders");
    let orders = subject("orders");
    let mine = create(&beta(&alpha), &alpha_function, "orders", &orders, "shared").await;
    let mine_id = ok(&mine)["id"].as_str().unwrap().to_owned();
    assert_eq!(settled(&beta(&alpha), &mine_id).await["status"], "ready");
    // The stranger, on the same account: every subject it can name, and the same one.
    for (name, wanted) in [("everything", ">"), ("the same", orders.as_str())] {
        let theirs = create(&beta(&stranger), &stranger_function, name, wanted, "shared").await;
        let theirs_id = ok(&theirs)["id"].as_str().unwrap().to_owned();
        assert_eq!(settled(&beta(&stranger), &theirs_id).await["status"], "ready");
    }
    assert!(listened(&nats, &scoped(&stranger, &orders)).await);
    // Published where the tenant's publishers publish, and where a bare subject is.
    publish(&nats, &scoped(&alpha, &orders), "for alpha").await;
    publish(&nats, &orders, "unscoped").await;
    publish(&nats, &scoped(&stranger, &orders), "for the stranger").await;
    let alphas = wait_for(&alpha, &alpha_function, "for alpha", 1).await;
    // Its own message reaches the stranger twice (both of its triggers read it), and only then
    // is everything that was published before it in.
    let mut strangers = wait_for(&stranger, &stranger_function, "for the stranger", 2).await;
    // The probe of `listened` above went to its own subjects.
    strangers.retain(|body| body != "probe");
    assert_eq!(alphas, ["for alpha"], "alpha received another's or an unscoped message");
    assert_eq!(
        strangers,
        ["for the stranger", "for the stranger"],
        "the stranger read what was not published under its prefix"
    );
    let lines = received(&stranger, &stranger_function).await;
    assert!(lines.iter().all(|line| line.1 == orders), "{lines:?}");
    server.stop().await;
}

/// A NATS server of the test's own, killed when dropped (and its folder removed).
struct OwnNats {
    child: std::process::Child,
    _folder: tempfile::TempDir,
}

impl OwnNats {
    /// On `port`, whose one user (`nuage`, `secret`) may subscribe under `tenants.*.allowed.`
    /// only.
    fn restricted(port: u16) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let config = folder.path().join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nauthorization {{ users: [ {{ user: nuage, password: secret, permissions: {{ \
                 subscribe: {{ allow: [\"tenants.*.allowed.>\", \"_INBOX.>\"] }}, publish: \">\" }} }} ] }}\n"
            ),
        )
        .unwrap();
        Self::run(folder, &["-c".as_ref(), config.as_os_str()])
    }

    /// On `port`, requiring TLS, with a certificate of its own (made by openssl) that no
    /// public root signs.
    fn over_tls(port: u16) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let (cert, key) = (folder.path().join("cert.pem"), folder.path().join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
            ])
            .args([
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs here (.ci/run installs it)");
        assert!(made.success(), "openssl made no certificate");
        let port = port.to_string();
        let args = ["-a", "127.0.0.1", "-p", &port, "--tls", "--tlscert"].map(std::ffi::OsStr::new);
        let args = [&args[..], &[cert.as_os_str(), "--tlskey".as_ref(), key.as_os_str()]].concat();
        Self::run(folder, &args)
    }

    fn run(folder: tempfile::TempDir, args: &[&std::ffi::OsStr]) -> Self {
        let child = std::process::Command::new("nats-server")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server runs here (apt-get install nats-server; .ci/run installs it)");
        Self { child, _folder: folder }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_the_servers_permissions_refuse_puts_the_trigger_in_error_saying_so() {
    let port = free_port();
    let _nats = OwnNats::restricted(port);
    let url = format!("nats://127.0.0.1:{port}");
    eventually(
        Duration::from_secs(10),
        || async_nats::ConnectOptions::with_user_and_password("nuage".into(), "secret".into()).connect(url.clone()),
        |connected: &Result<async_nats::Client, _>| connected.is_ok(),
    )
    .await
    .expect("the test's NATS server answers");
    let (server, alpha) = TestServer::start_with_tenant(|config| {
        config.triggers.nats.url = Some(url.clone());
        config.triggers.nats.credentials.user = Some("nuage".to_owned());
        config.triggers.nats.credentials.password = Some(nuage_core::Secret::new("secret".to_owned()));
    })
    .await;
    let beta = beta(&alpha);
    let node = runtime(&alpha, "node").await;
    let function = nuage_tests::apps::function(&alpha, "refused", json!({"name": "recorder", "runtime": node})).await;
    let function_id = function["id"].as_str().unwrap().to_owned();

    let allowed = create(&beta, &function_id, "allowed", "allowed.orders", "a").await;
    let allowed = settled(&beta, ok(&allowed)["id"].as_str().unwrap()).await;
    assert_eq!(allowed["status"], "ready", "{allowed}");
    let denied = create(&beta, &function_id, "denied", "denied.orders", "a").await;
    let denied_id = ok(&denied)["id"].as_str().unwrap().to_owned();
    let denied = beta
        .poll_until(&format!("/triggers/{denied_id}"), Duration::from_secs(20), |answer| {
            answer.body["status"] == "error"
        })
        .await
        .body;
    assert_eq!(denied["status"], "error", "{denied}");
    let message = denied["error_message"].as_str().unwrap();
    assert!(
        message.contains("refuses the subscription to `denied.orders`") && message.contains("Permissions Violation"),
        "{message}"
    );
    // The other trigger on the same connection is not affected.
    let id = allowed["id"].as_str().unwrap();
    assert_eq!(ok(&beta.get(&format!("/triggers/{id}")).await)["status"], "ready");
    server.stop().await;
}
