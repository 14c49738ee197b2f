//! The binary's contract: first-start bootstrap, endpoints.json, admin commands, health,
//! metrics, and draining on SIGTERM.

use nuage_tests::{Tenant, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_bootstraps_a_tenant_and_writes_its_files() {
    let mut server = TestServer::start().await;
    let path = server.config.data_dir.join("credentials.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let credentials: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let access_key = credentials["access_key"].as_str().unwrap();
    assert!(access_key.len() == 20 && access_key.starts_with("SCW"), "{access_key}");
    assert!(
        access_key[3..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    let secret_key = credentials["secret_key"].as_str().unwrap();
    assert_eq!(secret_key.len(), 36);
    let bootstrap = server.server().bootstrap_key().unwrap().clone();
    assert_eq!(credentials["organization_id"], bootstrap.organization_id.to_string());
    assert_eq!(credentials["project_id"], bootstrap.project_id.to_string());

    // The bootstrap key works.
    let tenant = Tenant::new(&server.base_url, bootstrap.clone());
    assert_eq!(tenant.get("/namespaces").await.status, StatusCode::OK);

    // endpoints.json names the listeners actually bound.
    let endpoints: Value =
        serde_json::from_slice(&std::fs::read(server.config.data_dir.join("endpoints.json")).unwrap()).unwrap();
    let bound = server.server().endpoints();
    assert_eq!(endpoints["api"], bound.api.unwrap().to_string());
    assert_eq!(endpoints["grpc"], bound.grpc.unwrap().to_string());
    assert_ne!(bound.grpc.unwrap().port(), 0);

    // A second start on the same database creates no other tenant.
    let config = server.config.clone();
    server.take_server().shutdown().await.unwrap();
    let again = nuage::start(config).await.unwrap();
    assert!(again.bootstrap_key().is_none());
    let tenant = Tenant::new(&format!("http://{}", again.endpoints().api.unwrap()), bootstrap.clone());
    assert_eq!(tenant.get("/namespaces").await.status, StatusCode::OK);
    again.shutdown().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_work_while_the_server_runs() {
    let server = TestServer::start().await;
    let key = nuage::admin::create_tenant(&server.config, "acme").await.unwrap();
    let printed = nuage::admin::key_json(&key);
    let mut fields: Vec<_> = printed.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["access_key", "organization_id", "project_id", "secret_key"]);
    let tenant = Tenant::new(&server.base_url, key.clone());
    tenant.create_namespace("from-admin").await;

    let extra = nuage::admin::create_key(&server.config, key.organization_id)
        .await
        .unwrap();
    assert_eq!(extra.organization_id, key.organization_id);
    assert_ne!(extra.access_key, key.access_key);
    let extra = Tenant::new(&server.base_url, extra);
    assert_eq!(extra.get("/namespaces").await.body["total_count"], 1);

    assert!(
        nuage::admin::create_key(&server.config, uuid::Uuid::new_v4())
            .await
            .is_err()
    );
    assert!(
        nuage::admin::revoke_key(&server.config, "SCWNOSUCHKEY00000000")
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let (server, tenant) = TestServer::with_tenant().await;
    let health = nuage_tests::answer(reqwest::Client::new().get(format!("{}/healthz", server.base_url))).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert_eq!(health.body["status"], "ready");
    assert_eq!(health.body["services"]["nuage.namespaces.v1.Namespaces"], "serving");
    assert_eq!(health.body["services"]["nuage.iam.v1.Iam"], "serving");

    tenant.get("/namespaces").await;
    tenant.get(&format!("/namespaces/{}", uuid::Uuid::new_v4())).await;
    let metrics = server.metrics().await;
    let route = "route=\"/functions/v1alpha2/regions/{region}/namespaces/{namespace_id}\"";
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("nuage_http_requests_total") && l.contains(route) && l.contains("status=\"404\"")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("nuage_http_request_duration_seconds_bucket") && l.contains(route)),
        "{metrics}"
    );
    server.stop().await;
}

/// `/metrics` names every tenant's applications: only the operator's token reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_to_the_operator() {
    let (server, tenant) = TestServer::with_tenant().await;
    assert_eq!(tenant.get("/namespaces").await.status, StatusCode::OK);
    let url = format!("{}/metrics", server.base_url);
    let client = reqwest::Client::new();
    let attempts = [
        ("no credential", client.get(&url)),
        (
            "a tenant's key",
            client.get(&url).header("X-Auth-Token", &tenant.secret_key),
        ),
        (
            "a tenant's key as bearer",
            client.get(&url).bearer_auth(&tenant.secret_key),
        ),
        ("a wrong token", client.get(&url).bearer_auth("guessed")),
        ("an empty token", client.get(&url).header("Authorization", "Bearer ")),
    ];
    for (what, request) in attempts {
        let answer = nuage_tests::answer(request).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}: {}", answer.body);
        assert_eq!(answer.body["type"], "denied_authentication", "{what}");
    }
    let metrics = server.metrics().await;
    assert!(metrics.contains("nuage_http_requests_total"), "{metrics}");
    server.stop().await;
}

/// `/metrics` keeps one series per route and status, whoever asks: a client without any
/// credential that makes up a method of its own for each request (HTTP lets a method be any
/// token, of any length) must not add a series per method, or it grows the gateway's memory
/// without bound, for every tenant, before authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_a_client_makes_up_add_no_series_to_the_metrics() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/functions/v1beta1/regions/fr-par/namespaces", server.base_url);
    let invent = |i: usize| reqwest::Method::from_bytes(format!("M{i:04}{}", "X".repeat(2000)).as_bytes()).unwrap();
    let answer = nuage_tests::answer(client.request(invent(0), &url)).await;
    assert!(answer.status.is_client_error(), "{}", answer.body);
    let before = server.metrics().await.len();
    for i in 1..=200 {
        let answer = nuage_tests::answer(client.request(invent(i), &url)).await;
        assert!(answer.status.is_client_error(), "{}", answer.body);
    }
    let metrics = server.metrics().await;
    let series = metrics.lines().filter(|line| line.contains("M0150XXXX")).count();
    let grown = metrics.len().saturating_sub(before);
    assert_eq!(
        series, 0,
        "a made-up method has series of its own; /metrics grew by {grown} bytes"
    );
    assert!(
        grown < 64 * 1024,
        "/metrics grew by {grown} bytes for 200 unauthenticated requests with made-up methods"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_without_a_token_and_read_it_from_a_file() {
    let server = TestServer::start_with(|config| config.gateway.metrics_token = None).await;
    let url = format!("{}/metrics", server.base_url);
    let answer = nuage_tests::answer(reqwest::Client::new().get(&url).bearer_auth("anything")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    server.stop().await;

    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("metrics.token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let server = TestServer::start_with(|config| {
        config.gateway.metrics_token = None;
        config.gateway.metrics_token_file = Some(file.clone());
    })
    .await;
    let url = format!("{}/metrics", server.base_url);
    let wrong = nuage_tests::answer(reqwest::Client::new().get(&url).bearer_auth("guessed")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = reqwest::Client::new()
        .get(&url)
        .bearer_auth("from-a-file")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert!(right.text().await.unwrap().contains("nuage_http_requests_total"));
    server.stop().await;
}

/// Asks the gRPC health service about iam over the internal listener, as any local process
/// can, with `authorization` when given.
async fn grpc_health(server: &TestServer, authorization: Option<&str>) -> Result<i32, tonic::Status> {
    let grpc = server.server().endpoints().grpc.expect("a gRPC listener");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
        service: "nuage.iam.v1.Iam".to_owned(),
    });
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value.parse().unwrap());
    }
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    Ok(client.check(request).await?.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_needs_the_internal_secret() {
    let secret = "health-test-internal-secret";
    let server = TestServer::start_with(|config| config.internal_secret = Some(nuage_core::Secret::new(secret))).await;
    for authorization in [None, Some("Bearer wrong"), Some(secret)] {
        let refused = grpc_health(&server, authorization).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::Unauthenticated,
            "{authorization:?}: {refused}"
        );
    }
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let status = grpc_health(&server, Some(&format!("Bearer {secret}"))).await.unwrap();
    assert_eq!(status, serving);
    // The gateway's /healthz asks with the secret, so it still sees every service.
    let health = nuage_tests::answer(reqwest::Client::new().get(format!("{}/healthz", server.base_url))).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_ready_when_the_services_are_unreachable() {
    let server = TestServer::start_with(|config| {
        config.roles = vec![nuage::Role::Gateway];
        let nowhere = Some("http://127.0.0.1:9".to_owned());
        config.services.iam = nowhere.clone();
        config.services.namespaces = nowhere.clone();
        config.services.functions = nowhere.clone();
        config.services.containers = nowhere.clone();
        config.services.crons = nowhere.clone();
        config.services.logs = nowhere.clone();
        config.services.tokens = nowhere;
        config.internal_secret = Some(nuage_core::Secret::new("shared"));
    })
    .await;
    let health = nuage_tests::answer(reqwest::Client::new().get(format!("{}/healthz", server.base_url))).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.body);
    assert_eq!(health.body["services"]["nuage.iam.v1.Iam"], "unreachable");
    // An API call then fails cleanly: 503, a JSON body, no internals.
    let answer = nuage_tests::answer(
        reqwest::Client::new()
            .get(format!(
                "{}/functions/v1alpha2/regions/fr-par/namespaces",
                server.base_url
            ))
            .header("X-Auth-Token", uuid::Uuid::new_v4().to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert!(answer.body["request_id"].is_string());
    assert!(!answer.body.to_string().contains("127.0.0.1"), "{}", answer.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_stops() {
    let (mut server, tenant) = TestServer::with_tenant().await;
    // Authenticate once so the in-flight request needs no more than the namespaces service.
    assert_eq!(tenant.get("/namespaces").await.status, StatusCode::OK);
    let body = json!({"name": "in-flight"}).to_string().into_bytes();
    let mut stream = nuage_tests::start_slow_create(&tenant, &body, 5).await;

    let stop = nuage::shutdown_signal().unwrap();
    let running = server.take_server();
    let stopped = tokio::spawn(async move {
        stop.await;
        running.shutdown().await
    });
    let pid = std::process::id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    // Once draining, the listener refuses new connections...
    let address = tenant.base_url.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(&address).await.is_ok() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "listener still accepting"
        );
        tokio::task::yield_now().await;
    }
    // ...but the request already in flight completes.
    stream.write_all(&body[5..]).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"name\":\"in-flight\""), "{response}");
    stopped.await.unwrap().unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_split_across_processes_share_one_internal_secret() {
    // The services in one "process"...
    let mut backend = TestServer::start_with(|config| {
        config.roles = nuage::Role::SERVICES.to_vec();
        // Crons fire through a router; none runs in this test.
        config.services.router = Some("http://127.0.0.1:9".to_owned());
        config.internal_secret = Some(nuage_core::Secret::new("shared-secret"));
    })
    .await;
    let grpc = format!("http://{}", backend.server().endpoints().grpc.unwrap());
    assert!(backend.server().endpoints().api.is_none());
    // ...and gateways in others, reaching them over gRPC.
    let gateway = |secret: &'static str| {
        let grpc = grpc.clone();
        move |config: &mut nuage::Config| {
            config.roles = vec![nuage::Role::Gateway];
            config.services.iam = Some(grpc.clone());
            config.services.namespaces = Some(grpc.clone());
            config.services.functions = Some(grpc.clone());
            config.services.containers = Some(grpc.clone());
            config.services.crons = Some(grpc.clone());
            config.services.logs = Some(grpc.clone());
            config.services.tokens = Some(grpc);
            config.internal_secret = Some(nuage_core::Secret::new(secret));
        }
    };
    let front = TestServer::start_with(gateway("shared-secret")).await;
    let key = nuage::admin::create_tenant(&backend.config, "split").await.unwrap();
    let tenant = Tenant::new(&front.base_url, key.clone());
    let created = tenant.create_namespace("split-ns").await;
    tenant.wait_ready(created["id"].as_str().unwrap()).await;
    let health = nuage_tests::answer(reqwest::Client::new().get(format!("{}/healthz", front.base_url))).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);

    // A gateway with the wrong secret is refused by the services: a server fault (500 with a
    // request id), not the tenant's bad key.
    let rogue = TestServer::start_with(gateway("wrong-secret")).await;
    let answer = Tenant::new(&rogue.base_url, key).get("/namespaces").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", answer.body);
    assert_eq!(answer.body["message"], "internal error");
    assert!(answer.body["request_id"].is_string());
    rogue.stop().await;
    front.stop().await;
    backend.take_server().shutdown().await.unwrap();
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_takes_options_after_the_subcommand_and_logs_plain_text_to_a_file() {
    let binary = env!("CARGO_BIN_EXE_nuage");
    // `--data-dir` after the subcommand, as a newcomer types it.
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(binary)
        .args(["admin", "tenant", "create", "--name", "late", "--data-dir"])
        .arg(dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(key["secret_key"].is_string(), "{key}");
    assert!(
        dir.path().join("nuage.db").exists(),
        "the database is in the data dir given"
    );

    // `nuage serve` with its log going to a file: plain lines, no colour codes.
    let dir = tempfile::tempdir().unwrap();
    let listeners =
        ["NUAGE_ROUTER__LISTEN", "NUAGE_ROUTER__INTERNAL_LISTEN"].map(|key| (key.to_owned(), "127.0.0.1:0".to_owned()));
    let mut serve = nuage_tests::Process::serve(
        binary,
        dir.path(),
        &["--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"],
        &listeners,
    );
    let endpoints = dir.path().join("endpoints.json");
    let started = nuage_tests::eventually(
        std::time::Duration::from_secs(60),
        || async { endpoints.exists() },
        |exists| *exists,
    )
    .await;
    serve.kill();
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(started, "nuage serve did not start: {log}");
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a file: {log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_does_not_stop_a_server_that_is_up() {
    let binary = env!("CARGO_BIN_EXE_nuage");
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .current_dir(dir.path())
        .env("NUAGE_LOG", "info")
        .env("NUAGE_ROUTER__LISTEN", "127.0.0.1:0")
        .env("NUAGE_ROUTER__INTERNAL_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    // The reader goes away before nuage prints its welcome text.
    drop(child.stdout.take());
    let log_path = dir.path().join("stderr.log");
    let log = nuage_tests::eventually(
        std::time::Duration::from_secs(60),
        || {
            let exited = child.try_wait().unwrap().is_some();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            async move { (exited, log) }
        },
        |(exited, log)| *exited || log.contains("welcome text could not be printed"),
    )
    .await;
    let status = child.try_wait().unwrap();
    // It still answers.
    let health = match std::fs::read(dir.path().join("endpoints.json")) {
        Ok(endpoints) => {
            let endpoints: Value = serde_json::from_slice(&endpoints).unwrap();
            let url = format!("http://{}/healthz", endpoints["api"].as_str().unwrap());
            reqwest::get(url).await.map(|answer| answer.status()).ok()
        }
        Err(_) => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.is_none(), "nuage serve exited ({status:?}): {}", log.1);
    assert!(log.1.contains("welcome text could not be printed"), "{}", log.1);
    assert!(health.is_some(), "/healthz did not answer");
}
