//! `/healthz` and what nuage depends on (issue 23, point 6): an object store that accepts
//! connections and never answers, and a full data disk, each make it answer 503 naming them,
//! within its deadline, while the rest still shows.

use nuage_tests::{Answer, TestServer, eventually};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

async fn healthz(server: &TestServer) -> Answer {
    let request = reqwest::Client::new()
        .get(format!("{}/healthz", server.base_url))
        .timeout(Duration::from_secs(10));
    nuage_tests::answer(request).await
}

/// Asks `/healthz` until it answers `status`, for at most 10 s; returns the last answer.
async fn healthz_until(server: &TestServer, status: StatusCode) -> Answer {
    eventually(
        Duration::from_secs(10),
        || healthz(server),
        |health| health.status == status,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_an_object_store_that_never_answers_within_its_deadline() {
    // A store that accepts every connection and answers nothing.
    let (address, holding) = nuage_tests::hung_listener().await;
    let server = TestServer::start_with(|config| {
        config.storage.endpoint = Some(format!("http://{address}"));
        config.storage.access_key = Some("hung".to_owned());
        config.storage.secret_key = Some(nuage_core::Secret::new("hung"));
        config.gateway.health_timeout_ms = 500;
    })
    .await;
    let started = Instant::now();
    let health = healthz(&server).await;
    let took = started.elapsed();
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.body);
    assert_eq!(
        health.body["dependencies"]["object_store"]["state"], "timed_out",
        "{}",
        health.body
    );
    let message = health.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("object_store"), "{}", health.body);
    assert!(took < Duration::from_secs(3), "/healthz took {took:?}");
    // What does answer is still shown as such.
    assert_eq!(
        health.body["dependencies"]["database"]["state"], "up",
        "{}",
        health.body
    );
    assert_eq!(
        health.body["services"]["nuage.iam.v1.Iam"], "serving",
        "{}",
        health.body
    );
    server.stop().await;
    holding.abort();
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it) on `path`, when this process may.
    fn mount(path: &Path, size: &str) -> Option<Self> {
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| Self(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the disk is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 256 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_a_full_data_disk() {
    let mount = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(mount.path(), "32m") else {
        eprintln!("cannot mount a tmpfs here: the free-space threshold is set above what the disk has");
        let server = TestServer::start_with(|config| config.gateway.health_min_free_disk_bytes = u64::MAX).await;
        let health = healthz(&server).await;
        assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.body);
        assert_eq!(health.body["dependencies"]["disk"]["state"], "full", "{}", health.body);
        server.stop().await;
        return;
    };
    eprintln!("the data dir is on a 32 MiB tmpfs, filled for real");
    let data_dir = tmpfs.0.join("data");
    let server = TestServer::start_with(|config| {
        config.data_dir = data_dir.clone();
        config.gateway.health_min_free_disk_bytes = 4 * 1024 * 1024;
    })
    .await;
    let health = healthz(&server).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert_eq!(health.body["dependencies"]["disk"]["state"], "up", "{}", health.body);

    let filler = tmpfs.0.join("filler");
    fill(&filler);
    let health = healthz_until(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.body);
    assert_eq!(health.body["dependencies"]["disk"]["state"], "full", "{}", health.body);
    let message = health.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("disk"), "{}", health.body);

    // Space made again: ready again.
    std::fs::remove_file(&filler).unwrap();
    let health = healthz_until(&server, StatusCode::OK).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    server.stop().await;
    drop(tmpfs);
}

/// Asks `path` of the health listener at `address`; returns the status and the JSON body.
async fn probe(address: std::net::SocketAddr, path: &str) -> (StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{address}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the health listener answers");
    (response.status(), response.json().await.expect("a JSON body"))
}

/// Every role, each in a process of its own shape (the gRPC services, a router, a gateway),
/// answers `/healthz` on its health listener: 200 once started. A gateway shutting down
/// answers 503 `stopping` while a request it accepted drains, then its listener is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_answers_healthz_on_its_health_listener_until_it_stops() {
    let secret = || Some(nuage_core::Secret::new("probed"));
    let backend = TestServer::start_with(|config| {
        config.roles = nuage::Role::SERVICES.to_vec();
        config.services.router = Some("http://127.0.0.1:9".to_owned());
        config.internal_secret = secret();
        config.health_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let grpc = format!("http://{}", backend.server().endpoints().grpc.unwrap());
    let split = |roles: Vec<nuage::Role>| {
        let grpc = grpc.clone();
        move |config: &mut nuage::Config| {
            config.roles = roles;
            for url in [
                &mut config.services.iam,
                &mut config.services.namespaces,
                &mut config.services.functions,
                &mut config.services.containers,
                &mut config.services.crons,
                &mut config.services.logs,
                &mut config.services.tokens,
                &mut config.services.runner,
            ] {
                *url = Some(grpc.clone());
            }
            config.internal_secret = secret();
            config.health_listen = Some("127.0.0.1:0".parse().unwrap());
        }
    };
    let router = TestServer::start_with(split(vec![nuage::Role::Router])).await;
    let mut front = TestServer::start_with(split(vec![nuage::Role::Gateway])).await;
    for server in [&backend, &router, &front] {
        let address = server.server().endpoints().health.expect("a health listener");
        assert_eq!(
            probe(address, "/healthz").await,
            (StatusCode::OK, serde_json::json!({"status": "serving"}))
        );
        assert_eq!(probe(address, "/livez").await.0, StatusCode::OK);
    }

    // A request in flight holds the gateway's shutdown while it drains.
    let key = nuage::admin::create_tenant(&backend.config, "probed").await.unwrap();
    let tenant = nuage_tests::Tenant::new(&front.base_url, key);
    assert_eq!(tenant.get("/namespaces").await.status, StatusCode::OK);
    let address = front.server().endpoints().health.unwrap();
    let body = serde_json::json!({"name": "in-flight"}).to_string().into_bytes();
    let mut stream = nuage_tests::start_slow_create(&tenant, &body, 5).await;
    let running = front.take_server();
    let stopping = tokio::spawn(running.shutdown());
    let draining = eventually(
        Duration::from_secs(10),
        || probe(address, "/healthz"),
        |(status, _)| *status != StatusCode::OK,
    )
    .await;
    assert_eq!(
        draining,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not_serving", "reason": "stopping"})
        )
    );
    assert!(!stopping.is_finished(), "the shutdown waits for the request in flight");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &body[5..])
        .await
        .unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    stopping.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the health listener is gone once the process stopped"
    );
    front.stop().await;
    router.stop().await;
    backend.stop().await;
}

/// A process whose database does not answer yet is starting: its health listener answers
/// 503 `starting` while every other listener is yet to come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_while_the_process_starts() {
    let (database, holding) = nuage_tests::hung_listener().await;
    let data_dir = tempfile::tempdir().unwrap();
    let health = std::net::SocketAddr::from(([127, 0, 0, 1], nuage_tests::free_port()));
    let config = nuage::Config {
        data_dir: data_dir.path().to_path_buf(),
        roles: nuage::Role::SERVICES.to_vec(),
        database_url: Some(format!("postgres://postgres@{database}/nuage")),
        database_timeout_ms: 60_000,
        health_listen: Some(health),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        ..nuage::Config::default()
    };
    let starting = tokio::spawn(nuage::start(config));
    let answer = eventually(
        Duration::from_secs(10),
        || async { reqwest::get(format!("http://{health}/healthz")).await.ok() },
        Option::is_some,
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["reason"], "starting", "{body}");
    assert!(!starting.is_finished(), "still waiting for its database");
    starting.abort();
    holding.abort();
}
