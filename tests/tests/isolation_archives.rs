//! Tenant isolation, code and images (issue 21, point 3): a tenant's zip or container image
//! holding a chain of links, each of which alone stays inside, plus whiteouts (`.wh.<name>`)
//! through the chain. Applied as a layer, the whiteouts would delete, as the runner's user,
//! files in the server's data dir, in the temporary directory and other tenants' unpacked
//! images. The deploy must end in `error` naming the entry, and delete nothing.

use nuage_tests::apps::{deployed_node, runtime, settled, upload};
use nuage_tests::{Tenant, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

const HELLO_JS: &[u8] = b"exports.handle = () => ({statusCode: 200, body: 'hello'});";

/// What the attacks aim at: files of the host and another tenant's function.
struct Victims {
    /// A file in the server's data dir.
    data_file: PathBuf,
    /// A file in the directory the data dir is in (the temporary directory).
    temp_file: PathBuf,
    /// The other tenant's unpacked image, `<data dir>/runner/images/<digest>`.
    image_dir: PathBuf,
    /// The other tenant's function endpoint.
    endpoint: String,
}

impl Victims {
    /// Plants the files and deploys another tenant's function.
    async fn plant(server: &TestServer) -> Self {
        let other = server.tenant().await;
        let function = deployed_node(&other, "victim", json!({"name": "hello"}), HELLO_JS).await;
        let images = server.config.data_dir.join("runner/images");
        let unpacked: Vec<PathBuf> = std::fs::read_dir(&images)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(unpacked.len(), 1, "the victim's image is unpacked: {unpacked:?}");
        let data_file = server.config.data_dir.join("victim-data.txt");
        std::fs::write(&data_file, "data").unwrap();
        let temp_dir = server.config.data_dir.parent().unwrap();
        let temp_file = temp_dir.join(format!("victim-{}.txt", uuid::Uuid::new_v4().simple()));
        std::fs::write(&temp_file, "temp").unwrap();
        let victims = Self {
            data_file,
            temp_file,
            image_dir: unpacked[0].clone(),
            endpoint: function["endpoint"].as_str().unwrap().to_owned(),
        };
        victims.check().await;
        victims
    }

    /// Returns the last component of `path`, the name a whiteout hides.
    fn file_name(path: &std::path::Path) -> String {
        path.file_name().unwrap().to_str().unwrap().to_owned()
    }

    /// Asserts every victim is still there and the other tenant's function still answers.
    async fn check(&self) {
        for file in [&self.data_file, &self.temp_file] {
            assert!(file.exists(), "{} was deleted", file.display());
        }
        assert!(
            self.image_dir.join("rootfs/code/handler.js").exists(),
            "the other tenant's unpacked image {} was deleted",
            self.image_dir.display()
        );
        let response = reqwest::get(&self.endpoint).await.expect("the router answers");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "hello");
    }
}

impl Drop for Victims {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp_file);
    }
}

/// The links of the attack: `a/l -> ..`, `u1 -> a/l/..`, `u2 -> u1/..`, ... `u<count>`. Each
/// climbs no higher than its own directory; resolved through the ones before it, `u1` is the
/// parent of the directory holding `a`, and `u<n>` is `n` levels above it.
fn chain(count: usize) -> Vec<(String, String)> {
    let mut links = vec![
        ("a/l".to_owned(), "..".to_owned()),
        ("u1".to_owned(), "a/l/..".to_owned()),
    ];
    links.extend((2..=count).map(|level| (format!("u{level}"), format!("u{}/..", level - 1))));
    links
}

/// Returns a zip of `files`, then `links` (path, target), then empty `whiteouts`.
fn attack_zip(files: &[(&str, &[u8])], links: &[(String, String)], whiteouts: &[String]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    for (path, target) in links {
        writer.add_symlink(path, target, options).unwrap();
    }
    for name in whiteouts {
        writer.start_file(name, options).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Creates a function as `tenant` in a new namespace `namespace`, uploads `archive`, deploys
/// it and returns it settled.
async fn deploy_archive(tenant: &Tenant, namespace: &str, archive: Vec<u8>) -> Value {
    let node = runtime(tenant, "node").await;
    let created = nuage_tests::apps::function(tenant, namespace, json!({"name": "f", "runtime": node})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    upload(tenant, &id, archive).await;
    nuage_tests::apps::deploy(tenant, &id).await;
    settled(tenant, &id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_with_chained_links_and_whiteouts_deletes_nothing() {
    let server = TestServer::start().await;
    let victims = Victims::plant(&server).await;
    let attacker = server.tenant().await;
    // In the image the code is `<root>/code`: `u1` is the root, `u3` the runner's images,
    // `u5` the data dir and `u6` the temporary directory.
    let whiteouts = [
        format!("u5/.wh.{}", Victims::file_name(&victims.data_file)),
        format!("u6/.wh.{}", Victims::file_name(&victims.temp_file)),
        format!("u3/.wh.{}", Victims::file_name(&victims.image_dir)),
    ];
    let function = deploy_archive(
        &attacker,
        "links",
        attack_zip(&[("handler.js", HELLO_JS)], &chain(6), &whiteouts),
    )
    .await;
    victims.check().await;
    assert_eq!(function["status"], "error", "{function}");
    let message = function["error_message"].as_str().unwrap();
    assert_eq!(
        message, "link `u1` points to `a/l/..`, outside the code directory",
        "{function}"
    );

    // Whiteouts alone, through no link, are refused too: a code zip never holds one.
    let function = deploy_archive(
        &attacker,
        "whiteouts",
        attack_zip(&[("handler.js", HELLO_JS)], &[], &whiteouts[..1]),
    )
    .await;
    assert_eq!(function["status"], "error", "{function}");
    let message = function["error_message"].as_str().unwrap();
    assert!(
        message.contains(&format!("entry `{}`", whiteouts[0])) && message.contains(".wh."),
        "{message}"
    );
    victims.check().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_image_with_chained_links_and_whiteouts_is_refused_and_deletes_nothing() {
    let server = TestServer::start().await;
    let victims = Victims::plant(&server).await;
    let attacker = server.tenant().await;
    let namespace = attacker.ready_namespace("boxes").await;
    let namespace_id = namespace["id"].as_str().unwrap().to_owned();
    // The image, pushed to the namespace's repository: its root is
    // `<data dir>/runner/images/<digest>/rootfs`, so `u2` is the runner's images, `u4` the
    // data dir and `u5` the temporary directory.
    let whiteouts = [
        format!("u4/.wh.{}", Victims::file_name(&victims.data_file)),
        format!("u5/.wh.{}", Victims::file_name(&victims.temp_file)),
        format!("u2/.wh.{}", Victims::file_name(&victims.image_dir)),
    ];
    let mut tar = tar::Builder::new(Vec::new());
    for (path, target) in chain(5) {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, path, target).unwrap();
    }
    for name in &whiteouts {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, std::io::empty()).unwrap();
    }
    let endpoint = namespace["registry_endpoint"].as_str().unwrap();
    let repository = endpoint.split_once('/').unwrap().1;
    let layout = server.config.data_dir.join("registry").join(repository).join("app");
    nuage_tests::apps::write_image_layout_of(&layout, "latest", tar.into_inner().unwrap(), &["/server"]);

    let id = attacker
        .create("/containers", json!({"name": "app", "namespace_id": namespace_id}))
        .await;
    let deploying = attacker.post(&format!("/containers/{id}/deploy"), json!({})).await;
    assert_eq!(deploying.status, StatusCode::OK, "{}", deploying.body);
    let container = nuage_tests::apps::container_settled(&attacker, &id, Duration::from_secs(30)).await;
    victims.check().await;
    assert_eq!(container["status"], "error", "{container}");
    let message = container["error_message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "layer entry `{}` leads outside the image's root",
            whiteouts[0]
        )),
        "{message}"
    );
    server.stop().await;
}
