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
    let health = eventually(
        Duration::from_secs(10),
        || healthz(&server),
        |health| health.status == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.body);
    assert_eq!(health.body["dependencies"]["disk"]["state"], "full", "{}", health.body);
    let message = health.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("disk"), "{}", health.body);

    // Space made again: ready again.
    std::fs::remove_file(&filler).unwrap();
    let health = eventually(
        Duration::from_secs(10),
        || healthz(&server),
        |health| health.status == StatusCode::OK,
    )
    .await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    server.stop().await;
    drop(tmpfs);
}
