//! v1beta1 `/domains`: a tenant's own host name for a function. Made `pending`, it turns
//! `ready` once the operator's check passes (`none`, or a CNAME to the function's host asked of
//! a real DNS server, dnsmasq, started by the test), or `error` saying why; the router then
//! sends requests whose `Host` is it to the function (privacy and tokens applying), and stops
//! once it is deleted, or its function is. A host name is one application's across every
//! tenant; bad inputs name their argument; another tenant reaches none of it. The containers
//! service keeps and routes domains of containers alike (through its gRPC API: the REST
//! mount under `/containers/v1beta1` is the containers API's).

use nuage_applications::DomainCheck;
use nuage_tests::apps::{deployed_node, deployed_private_node, runtime};
use nuage_tests::conformance::Spec;
use nuage_tests::{Answer, Tenant, TestServer, eventually, free_port, ok};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// Answers with the path it was called at.
const HELLO_JS: &[u8] = b"exports.handle = async (event) => ({statusCode: 200, body: 'hello from ' + event.path});\n";

/// How long a router may take to see a domain appear or go.
const ROUTING_LIMIT: Duration = Duration::from_secs(10);

fn beta(tenant: &Tenant) -> Tenant {
    tenant.speaking(Spec::FunctionsV1beta1, "fr-par")
}

/// Calls `path` at `host` through the router at `functions_url` until it answers `status`, for
/// at most [`ROUTING_LIMIT`]; returns the last answer.
async fn routed_until(functions_url: &str, host: &str, path: &str, status: StatusCode) -> (StatusCode, String) {
    eventually(
        ROUTING_LIMIT,
        || call(functions_url, host, path, None),
        |(answered, _)| *answered == status,
    )
    .await
}

/// Calls `path` at `host` through the router at `functions_url` until it answers 200,
/// asserting it does within [`ROUTING_LIMIT`]; returns the body.
async fn routed(functions_url: &str, host: &str, path: &str) -> String {
    let (status, body) = routed_until(functions_url, host, path, StatusCode::OK).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Calls `/` at `host` through the router at `functions_url` until it no longer answers 200,
/// for at most [`ROUTING_LIMIT`]; returns the last answer.
async fn unrouted(functions_url: &str, host: &str) -> (StatusCode, String) {
    eventually(
        ROUTING_LIMIT,
        || call(functions_url, host, "/", None),
        |(status, _)| *status != StatusCode::OK,
    )
    .await
}

/// Calls the router at `functions_url` + `path` with `Host: host` (and a token when given);
/// returns the status and the body.
async fn call(functions_url: &str, host: &str, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .get(format!("{functions_url}{path}"))
        .header("Host", host);
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    let response = request.send().await.expect("the router answers");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Creates a domain through v1beta1; returns the answer.
async fn create(beta: &Tenant, function_id: &str, hostname: &str) -> Answer {
    beta.post("/domains", json!({"hostname": hostname, "function_id": function_id}))
        .await
}

/// Waits until domain `id` leaves `pending`; returns it.
async fn settled(beta: &Tenant, id: &str) -> Value {
    beta.poll_until(&format!("/domains/{id}"), Duration::from_secs(20), |a| {
        a.body["status"] != "pending"
    })
    .await
    .body
}

/// A server whose domains are checked as `check` says, every 100 ms.
async fn server(check: DomainCheck, adjust: impl FnOnce(&mut nuage::Config)) -> TestServer {
    TestServer::start_with(|config| {
        config.applications.domains.check = check;
        config.applications.domains.recheck_ms = 100;
        config.router.routes_refresh_ms = 200;
        adjust(config);
    })
    .await
}

/// Returns the host of `application`'s endpoint, which a CNAME points at.
fn endpoint_host(application: &Value) -> String {
    let endpoint = application["endpoint"].as_str().unwrap();
    let (_, rest) = endpoint.split_once("://").unwrap();
    rest.trim_end_matches('/').to_owned()
}

/// A server whose CNAME check asks the DNS server on `dns_port` (the tests' dnsmasq), with
/// endpoints under `fn.test`, adjusted further by `adjust`.
async fn cname_server(dns_port: u16, adjust: impl FnOnce(&mut nuage::Config)) -> TestServer {
    server(DomainCheck::Cname, |config| {
        config.applications.domain = Some("fn.test".to_owned());
        config.applications.domains.resolver = Some(format!("127.0.0.1:{dns_port}"));
        config.applications.domains.check_timeout_ms = 1_500;
        adjust(config);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_routes_its_host_to_the_function_until_it_is_deleted() {
    let server = server(DomainCheck::None, |_| {}).await;
    let alpha = server.tenant().await;
    let beta = beta(&alpha);
    let function = deployed_node(&alpha, "domains", json!({"name": "hello"}), HELLO_JS).await;
    let function_id = function["id"].as_str().unwrap().to_owned();

    // Before: the router knows no such host.
    let (status, _) = call(&server.functions_url, "api.shop.example.com", "/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Given in any case and with a final dot, stored as DNS compares it.
    let created = create(&beta, &function_id, "API.Shop.Example.com.").await;
    let domain = ok(&created).clone();
    let domain_id = domain["id"].as_str().unwrap().to_owned();
    assert_eq!(domain["hostname"], "api.shop.example.com");
    assert_eq!(domain["function_id"], function_id.as_str());
    assert_eq!(domain["status"], "pending");
    assert_eq!(domain["url"], "");
    assert_eq!(domain["error_message"], Value::Null);

    let ready = settled(&beta, &domain_id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["url"], "http://api.shop.example.com");
    assert_eq!(ready["error_message"], Value::Null);

    // The host reaches the function, whole path included, whatever its case and port.
    let body = routed(&server.functions_url, "api.shop.example.com", "/orders/7?x=1").await;
    assert_eq!(body, "hello from /orders/7");
    let (status, body) = call(&server.functions_url, "API.shop.example.com:8081", "/", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /"));

    // A second one, and the list in each order.
    let second = create(&beta, &function_id, "www.shop.example.com").await;
    let second_id = ok(&second)["id"].as_str().unwrap().to_owned();
    let listed = beta
        .get(&format!("/domains?function_id={function_id}&order_by=hostname_desc"))
        .await;
    let hostnames = nuage_tests::fields(&ok(&listed)["domains"], "hostname");
    assert_eq!(hostnames, ["www.shop.example.com", "api.shop.example.com"]);
    assert_eq!(listed.body["total_count"], 2);
    let page = beta
        .get(&format!(
            "/domains?function_id={function_id}&order_by=created_at_asc&page=2&page_size=1"
        ))
        .await;
    assert_eq!(ok(&page)["domains"][0]["id"], second_id.as_str());
    assert_eq!(page.body["total_count"], 2);

    // Deleted: `deleting` in the answer, then not found, and the host stops answering.
    let deleted = beta.delete(&format!("/domains/{domain_id}")).await;
    assert_eq!(ok(&deleted)["status"], "deleting");
    let gone = beta.get(&format!("/domains/{domain_id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    assert_eq!(gone.body["message"], "Domain was not found");
    assert_eq!(gone.body["type"], "not_found");
    let (status, body) = unrouted(&server.functions_url, "api.shop.example.com").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "still routed after delete: {body}");
    assert!(body.contains("not_found"), "{body}");
    // The other one still answers; the host name is free again.
    let (status, _) = call(&server.functions_url, "www.shop.example.com", "/", None).await;
    assert_eq!(status, StatusCode::OK);
    ok(&create(&beta, &function_id, "api.shop.example.com").await);

    // Deleting the function removes its domains: not found, the host names free.
    let deleted = alpha.delete(&format!("/functions/{function_id}")).await;
    ok(&deleted);
    beta.wait_gone(&format!("/domains/{second_id}"), Duration::from_secs(20))
        .await;
    let (status, _) = call(&server.functions_url, "www.shop.example.com", "/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_function_needs_its_token_at_its_domain_too() {
    let server = server(DomainCheck::None, |_| {}).await;
    let alpha = server.tenant().await;
    let beta = beta(&alpha);
    let function = deployed_private_node(&alpha, "private-domains", "guarded", HELLO_JS).await;
    let function_id = function["id"].as_str().unwrap().to_owned();
    let created = create(&beta, &function_id, "private.example.org").await;
    let domain_id = ok(&created)["id"].as_str().unwrap().to_owned();
    assert_eq!(settled(&beta, &domain_id).await["status"], "ready");

    // Without a token, as at its own address: not there.
    let (status, body) = unrouted(&server.functions_url, "private.example.org").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Its token opens it there; a bad one is refused.
    let token = beta.post("/tokens", json!({"function_id": function_id})).await;
    let token = ok(&token)["token"].as_str().unwrap().to_owned();
    let (status, body) = call(&server.functions_url, "private.example.org", "/", Some(&token)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /"));
    let (status, body) = call(&server.functions_url, "private.example.org", "/", Some("not-a-token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    server.stop().await;
}

/// dnsmasq answering on `port`, with `records` (`--cname=...`, `--host-record=...`) and nothing
/// of the system's; killed when dropped.
struct Dnsmasq(std::process::Child);

impl Dnsmasq {
    fn start(port: u16, records: &[String]) -> Self {
        let child = std::process::Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--user=",
            ])
            .arg(format!("--port={port}"))
            .arg("--pid-file=")
            .args(records)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dnsmasq runs here (apt-get install dnsmasq-base; .ci/run installs it)");
        Self(child)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cname_check_asks_dns_for_the_functions_host() {
    let dns_port = free_port();
    let server = cname_server(dns_port, |config| config.applications.domains.recheck_ready_ms = 300).await;
    let alpha = server.tenant().await;
    let beta = beta(&alpha);
    let function = deployed_node(&alpha, "cname", json!({"name": "hello"}), HELLO_JS).await;
    let function_id = function["id"].as_str().unwrap().to_owned();
    let host = endpoint_host(&function);
    assert!(host.ends_with(".fn.test"), "{host}");
    // As a tenant's DNS zone would have it: one name pointing at the function, one at another
    // host, one with an address but no CNAME, and none for a fourth; dnsmasq answers for both
    // zones itself (`--local`), as their authoritative servers would.
    let zones = [
        "--local=/customer.test/".to_owned(),
        "--local=/fn.test/".to_owned(),
        format!("--host-record={host},127.0.0.1"),
        "--host-record=other.fn.test,127.0.0.1".to_owned(),
        "--host-record=plain.customer.test,127.0.0.1".to_owned(),
        "--cname=wrong.customer.test,other.fn.test".to_owned(),
    ];
    let dns = Dnsmasq::start(
        dns_port,
        &[zones.as_slice(), &[format!("--cname=good.customer.test,{host}")]].concat(),
    );

    let good = create(&beta, &function_id, "good.customer.test").await;
    let wrong = create(&beta, &function_id, "wrong.customer.test").await;
    let plain = create(&beta, &function_id, "plain.customer.test").await;
    let missing = create(&beta, &function_id, "missing.customer.test").await;
    for answer in [&good, &wrong, &plain, &missing] {
        assert_eq!(ok(answer)["status"], "pending");
    }

    let good = settled(&beta, good.body["id"].as_str().unwrap()).await;
    assert_eq!(good["status"], "ready", "{good}");
    assert_eq!(good["url"], "http://good.customer.test");
    let wrong = settled(&beta, wrong.body["id"].as_str().unwrap()).await;
    assert_eq!(wrong["status"], "error", "{wrong}");
    assert_eq!(wrong["url"], "");
    let message = wrong["error_message"].as_str().unwrap();
    assert!(
        message.contains("is a CNAME to `other.fn.test`") && message.contains(&host),
        "{message}"
    );
    for answer in [plain, missing] {
        let domain = settled(&beta, answer.body["id"].as_str().unwrap()).await;
        assert_eq!(domain["status"], "error", "{domain}");
        let message = domain["error_message"].as_str().unwrap();
        assert!(
            message.contains("has no CNAME record") && message.contains(&host),
            "{message}"
        );
    }

    // The checked host reaches the function; the failed ones do not.
    let (status, body) = routed_until(&server.functions_url, "good.customer.test", "/", StatusCode::OK).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /"));
    let (status, _) = call(&server.functions_url, "wrong.customer.test", "/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The name changes hands: its DNS now points elsewhere. Checked again
    // (`recheck_ready_ms`), the domain ends in error saying why, and is no longer routed.
    drop(dns);
    let _dns = Dnsmasq::start(
        dns_port,
        &[
            zones.as_slice(),
            &["--cname=good.customer.test,other.fn.test".to_owned()],
        ]
        .concat(),
    );
    let good_id = good["id"].as_str().unwrap();
    let moved = beta
        .poll_until(&format!("/domains/{good_id}"), Duration::from_secs(20), |answer| {
            answer.body["status"] != "ready"
        })
        .await
        .body;
    assert_eq!(
        (moved["status"].as_str(), moved["url"].as_str()),
        (Some("error"), Some("")),
        "{moved}"
    );
    let message = moved["error_message"].as_str().unwrap();
    assert!(message.contains("is a CNAME to `other.fn.test`"), "{message}");
    let (status, _) = routed_until(&server.functions_url, "good.customer.test", "/", StatusCode::NOT_FOUND).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a domain whose DNS moved is still routed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_is_not_held_from_its_owner_by_a_tenant_whose_check_failed() {
    let dns_port = free_port();
    let server = cname_server(dns_port, |_| {}).await;
    let (owner, squatter) = (server.tenant().await, server.tenant().await);
    let mine = deployed_node(&owner, "owned", json!({"name": "hello"}), HELLO_JS).await;
    let theirs = deployed_node(&squatter, "squat", json!({"name": "hello"}), HELLO_JS).await;
    let (owner, squatter) = (beta(&owner), beta(&squatter));
    let host = endpoint_host(&mine);
    // The owner's zone points shop.customer.test at the owner's function, and only there.
    let _dns = Dnsmasq::start(
        dns_port,
        &[
            "--local=/customer.test/".to_owned(),
            "--local=/fn.test/".to_owned(),
            format!("--host-record={host},127.0.0.1"),
            format!("--cname=shop.customer.test,{host}"),
        ],
    );
    // Another tenant names it first, for its own function: its check can never pass.
    let squatted = create(&squatter, theirs["id"].as_str().unwrap(), "shop.customer.test").await;
    let squatted = settled(&squatter, ok(&squatted)["id"].as_str().unwrap()).await;
    assert_eq!(squatted["status"], "error", "{squatted}");

    // The name is the owner's to add, to check and to be routed to.
    let added = create(&owner, mine["id"].as_str().unwrap(), "shop.customer.test").await;
    assert_eq!(
        added.status,
        StatusCode::OK,
        "a tenant whose check failed holds the owner's host name: {}",
        added.body
    );
    let domain = settled(&owner, added.body["id"].as_str().unwrap()).await;
    assert_eq!(domain["status"], "ready", "{domain}");
    let (status, body) = routed_until(&server.functions_url, "shop.customer.test", "/", StatusCode::OK).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cname_check_needs_host_based_endpoints() {
    // Endpoints under paths (no `applications.domain`): no host to point a CNAME at.
    let server = server(DomainCheck::Cname, |config| {
        config.applications.domains.resolver = Some("127.0.0.1:9".to_owned());
    })
    .await;
    let alpha = server.tenant().await;
    let beta = beta(&alpha);
    let node = runtime(&alpha, "node").await;
    let function = nuage_tests::apps::function(&alpha, "paths", json!({"name": "f", "runtime": node})).await;
    let function_id = function["id"].as_str().unwrap().to_owned();
    let created = create(&beta, &function_id, "api.example.com").await;
    let domain = settled(&beta, ok(&created)["id"].as_str().unwrap()).await;
    assert_eq!(domain["status"], "error", "{domain}");
    assert!(
        domain["error_message"]
            .as_str()
            .unwrap()
            .contains("applications.domain"),
        "{domain}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_domain_requests_name_their_argument_and_other_tenants_reach_nothing() {
    let server = server(DomainCheck::None, |config| {
        config.applications.domain = Some("fn.example.net".to_owned());
        config.applications.domains.max_per_application = 2;
    })
    .await;
    let alpha = server.tenant().await;
    let beta = beta(&alpha);
    let namespace_id = alpha.ready_namespace_id("bad-domains").await;
    let node = runtime(&alpha, "node").await;
    let mut function_ids = Vec::new();
    for name in ["one", "two"] {
        let function = alpha
            .post(
                "/functions",
                json!({"name": name, "runtime": node, "namespace_id": namespace_id}),
            )
            .await;
        function_ids.push(ok(&function)["id"].as_str().unwrap().to_owned());
    }
    let function_id = function_ids[0].clone();

    let long_label = format!("{}.example.com", "a".repeat(64));
    let cases = [
        (json!({"hostname": "api.example.com"}), "function_id"),
        (
            json!({"hostname": "api.example.com", "function_id": "x"}),
            "function_id",
        ),
        (json!({"hostname": "api.example.com", "function_id": 3}), "function_id"),
        (json!({"function_id": function_id}), "hostname"),
        (json!({"function_id": function_id, "hostname": ""}), "hostname"),
        (json!({"function_id": function_id, "hostname": 7}), "hostname"),
        (json!({"function_id": function_id, "hostname": "127.0.0.1"}), "hostname"),
        (json!({"function_id": function_id, "hostname": "::1"}), "hostname"),
        (json!({"function_id": function_id, "hostname": "localhost"}), "hostname"),
        (
            json!({"function_id": function_id, "hostname": "a..example.com"}),
            "hostname",
        ),
        (
            json!({"function_id": function_id, "hostname": "*.example.com"}),
            "hostname",
        ),
        (
            json!({"function_id": function_id, "hostname": "-a.example.com"}),
            "hostname",
        ),
        (
            json!({"function_id": function_id, "hostname": "a_b.example.com"}),
            "hostname",
        ),
        (
            json!({"function_id": function_id, "hostname": "https://a.example.com"}),
            "hostname",
        ),
        (json!({"function_id": function_id, "hostname": long_label}), "hostname"),
        // Under the installation's own endpoint domain: another tenant's endpoint, maybe.
        (
            json!({"function_id": function_id, "hostname": "x.fn.example.net"}),
            "hostname",
        ),
        (
            json!({"function_id": function_id, "hostname": "fn.example.net"}),
            "hostname",
        ),
    ];
    beta.assert_each_refused("/domains", cases).await;
    beta.assert_each_get_refused([
        ("/domains", "function_id"),
        ("/domains?function_id=x", "function_id"),
        (
            &format!("/domains?function_id={function_id}&order_by=name_asc"),
            "order_by",
        ),
        ("/domains/x", "domain_id"),
    ])
    .await;
    assert_eq!(beta.delete("/domains/x").await.refused_argument(), "domain_id");
    let missing = beta.get(&format!("/domains/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["message"], "Domain was not found");

    let mine = create(&beta, &function_id, "mine.example.com").await;
    let mine_id = ok(&mine)["id"].as_str().unwrap().to_owned();

    // One host name, one application: the same tenant cannot give it to another function.
    let again = create(&beta, &function_ids[1], "MINE.example.com").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.body["type"], "already_exists", "{}", again.body);
    assert!(
        again.body["help_message"]
            .as_str()
            .unwrap()
            .contains("`mine.example.com` is already the domain"),
        "{}",
        again.body
    );

    // The per-function limit.
    ok(&create(&beta, &function_id, "second.example.com").await);
    let third = create(&beta, &function_id, "third.example.com").await;
    assert_eq!(third.status, StatusCode::FORBIDDEN, "{}", third.body);
    assert_eq!(third.body["type"], "quotas_exceeded", "{}", third.body);
    assert_eq!(third.body["details"][0]["quota"], 2, "{}", third.body);
    // Asked at once, the limit still holds: of six, two are made.
    let mut asked = tokio::task::JoinSet::new();
    for index in 0..6 {
        let (beta, function_id) = (beta.clone(), function_ids[1].clone());
        asked.spawn(async move { create(&beta, &function_id, &format!("race{index}.example.com")).await });
    }
    let mut statuses = Vec::new();
    while let Some(answer) = asked.join_next().await {
        statuses.push(answer.expect("create").status);
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [[StatusCode::OK; 2].as_slice(), &[StatusCode::FORBIDDEN; 4]].concat(),
        "concurrent creations passed the per-function limit"
    );

    // Another tenant, as it would try: its own function under this host name; this
    // function's domains: make, read, list, delete.
    let stranger_alpha = server.tenant().await;
    let stranger = stranger_alpha.speaking(Spec::FunctionsV1beta1, "fr-par");
    let theirs_namespace_id = stranger_alpha.ready_namespace_id("theirs").await;
    let theirs_id = stranger_alpha
        .create(
            "/functions",
            json!({"name": "theirs", "runtime": node, "namespace_id": theirs_namespace_id}),
        )
        .await;
    let taken = create(&stranger, &theirs_id, "mine.example.com").await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    // Whose it is stays unsaid.
    assert!(!taken.body.to_string().contains(&mine_id), "{}", taken.body);
    assert!(!taken.body.to_string().contains(&function_id), "{}", taken.body);

    let refused = create(&stranger, &function_id, "stolen.example.com").await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    let path = format!("/domains/{mine_id}");
    let read = stranger.get(&path).await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
    assert_eq!(read.body["message"], "Domain was not found");
    let listed = stranger.get(&format!("/domains?function_id={function_id}")).await;
    assert_eq!(ok(&listed)["total_count"], 0, "{}", listed.body);
    assert_eq!(listed.body["domains"], json!([]));
    assert_eq!(stranger.delete(&path).await.status, StatusCode::NOT_FOUND);
    // Still there for its owner.
    assert_eq!(ok(&beta.get(&path).await)["hostname"], "mine.example.com");
    // Through the v1alpha2 prefix there are no domains (v1beta1 only).
    assert_eq!(alpha.get(&path).await.status, StatusCode::NOT_FOUND);

    // Deleting the namespace removes the domains of its functions.
    ok(&alpha.delete(&format!("/namespaces/{namespace_id}")).await);
    beta.wait_gone(&path, Duration::from_secs(20)).await;
    ok(&create(&stranger, &theirs_id, "mine.example.com").await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_domain_is_kept_and_routed_by_the_containers_service() {
    use nuage_proto::applications::v1 as wire;
    use nuage_proto::containers::v1::containers_client::ContainersClient;
    let binary = nuage_tests::go_server_or_skip!();
    let secret = nuage_core::Secret::new("domains-test-internal-secret".to_owned());
    let server = server(DomainCheck::None, |config| {
        config.internal_secret = Some(secret.clone())
    })
    .await;
    let alpha = server.tenant().await;
    let namespace = alpha.create_namespace("container-domains").await;
    let namespace = alpha.wait_ready(namespace["id"].as_str().unwrap()).await;
    let registry = server.config.data_dir.join("registry");
    let container_id =
        nuage_tests::apps::deploy_app_container(&alpha, &registry, &namespace, &binary, json!({"GREETING": "hi"}))
            .await;
    alpha
        .poll_until(&format!("/containers/{container_id}"), Duration::from_secs(60), |a| {
            a.body["status"] == "ready"
        })
        .await;

    // As the gateway calls it, for this tenant.
    let grpc = format!("http://{}", server.server().endpoints().grpc.unwrap());
    let transport = nuage_core::transport::dial("containers", &grpc, Duration::from_secs(30)).unwrap();
    let auth = nuage_core::internal::InternalAuth::new(&secret).unwrap();
    let mut containers = ContainersClient::new(nuage_core::transport::authed(transport, auth));
    let caller = nuage_proto::common::v1::Caller {
        organization_id: alpha.organization_id.to_string(),
        project_id: alpha.project_id.to_string(),
    };
    let created = containers
        .create_domain(wire::CreateDomainRequest {
            caller: Some(caller.clone()),
            region: "fr-par".to_owned(),
            application_id: container_id.clone(),
            hostname: "app.container.example".to_owned(),
            tags: None,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(created.application_id, container_id);
    assert_eq!(created.status(), wire::DomainStatus::Pending);
    let body = routed(&server.functions_url, "app.container.example", "/via-domain").await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["path"], "/via-domain");
    assert_eq!(answer["greeting"], "hi");
    let listed = containers
        .list_domains(wire::ListDomainsRequest {
            caller: Some(caller.clone()),
            region: "fr-par".to_owned(),
            page: 1,
            page_size: 20,
            order_by: 0,
            application_id: container_id.clone(),
            namespace_id: None,
            project_id: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_count, 1);
    assert_eq!(listed.domains[0].status(), wire::DomainStatus::Ready);

    // The functions service does not serve a container's domain.
    let beta = beta(&alpha);
    let through_functions = beta.get(&format!("/domains/{}", created.id)).await;
    assert_eq!(through_functions.status, StatusCode::NOT_FOUND);

    // Deleted: the host stops answering.
    containers
        .delete_domain(wire::GetDomainRequest {
            caller: Some(caller),
            region: "fr-par".to_owned(),
            domain_id: created.id,
        })
        .await
        .unwrap();
    let (status, body) = unrouted(&server.functions_url, "app.container.example").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    server.stop().await;
}
