//! Deletes remove everything they own: once a deployed function and its namespace are deleted,
//! no row of any table and no file of the object store, of the image registry or of the
//! runner's unpacked images names them; and an unpacked image goes once no version or instance
//! uses it, never under a live instance.

use nuage_tests::apps::{deploy, deployed, deployed_node, runtime, settled, upload, zip};
use nuage_tests::{Tenant, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Returns `table.column = value` for every text cell of the database that contains one of
/// `ids`.
async fn rows_naming(database_url: &str, ids: &[&str]) -> Vec<String> {
    let mut database = nuage_tests::connect(database_url).await;
    let columns: Vec<(String, String)> = if database_url.starts_with("postgres") {
        sqlx::query_as(
            "select table_name::text, column_name::text from information_schema.columns \
             where table_schema = current_schema() and data_type = 'text'",
        )
        .fetch_all(&mut database)
        .await
        .unwrap()
    } else {
        sqlx::query_as(
            "select tables.name, columns.name from sqlite_master as tables, pragma_table_info(tables.name) as columns \
             where tables.type = 'table' and lower(columns.type) = 'text'",
        )
        .fetch_all(&mut database)
        .await
        .unwrap()
    };
    assert!(
        columns.iter().any(|(table, _)| table == "build_jobs"),
        "the listing sees the tables: {columns:?}"
    );
    let mut found = Vec::new();
    for (table, column) in columns {
        for id in ids {
            let rows = sqlx::query(&format!(
                "select {column} as cell from {table} where {column} like '%' || $1 || '%'"
            ))
            .bind(*id)
            .fetch_all(&mut database)
            .await
            .unwrap();
            for row in rows {
                let cell: String = row.try_get("cell").unwrap();
                found.push(format!("{table}.{column} = {cell:.120}"));
            }
        }
    }
    database.close().await.ok();
    found
}

/// Returns every file under `directory`, hidden ones included.
fn files_under(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            let inside = files_under(&path);
            if inside.is_empty() {
                // An empty directory is left too, when it is named for what was deleted.
                files.push(path);
            } else {
                files.extend(inside);
            }
        } else {
            files.push(path);
        }
    }
    files
}

/// Returns what is left of the deleted resources: rows naming `ids`, every file of the object
/// store but its bucket, and every file of the registry that names `registry_names`.
async fn left(server: &TestServer, ids: &[&str], registry_names: &[&str]) -> Vec<String> {
    let mut left = rows_naming(&server.database_url(), ids).await;
    let objects = server.config.data_dir.join("objects");
    let bucket = objects.join(&server.config.storage.bucket);
    // The function was the tenant's only one: the store holds nothing else.
    left.extend(
        files_under(&objects)
            .into_iter()
            .filter(|path| *path != bucket)
            .map(|path| format!("object store: {}", path.display())),
    );
    let registry = server.config.data_dir.join("registry");
    left.extend(
        files_under(&registry)
            .into_iter()
            .filter(|path| {
                let relative = path.strip_prefix(&registry).unwrap().to_string_lossy().into_owned();
                registry_names.iter().any(|name| relative.contains(name))
            })
            .map(|path| format!("registry: {}", path.display())),
    );
    // The function was the server's only application: no unpacked image is used.
    left.extend(
        copies(&server.config)
            .into_iter()
            .map(|copy| format!("runner image: {}", copy.display())),
    );
    left
}

/// Returns the runner's unpacked images (one directory each).
fn copies(config: &nuage::Config) -> Vec<PathBuf> {
    let images = config.data_dir.join("runner/images");
    let Ok(entries) = std::fs::read_dir(images) else {
        return Vec::new();
    };
    let mut copies: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
    copies.sort();
    copies
}

/// Returns the `version.txt` an unpacked image holds (`?` when it holds none), by directory.
fn versions(config: &nuage::Config) -> Vec<(String, PathBuf)> {
    let mut versions: Vec<(String, PathBuf)> = copies(config)
        .into_iter()
        .map(|copy| {
            let version = files_under(&copy)
                .into_iter()
                .find(|file| file.file_name().is_some_and(|name| name == "version.txt"))
                .and_then(|file| std::fs::read_to_string(file).ok())
                .unwrap_or_else(|| "?".to_owned());
            (version, copy)
        })
        .collect();
    versions.sort();
    versions
}

/// Returns just the versions of [`versions`].
fn names(versions: &[(String, PathBuf)]) -> Vec<&str> {
    versions.iter().map(|(version, _)| version.as_str()).collect()
}

/// Waits (up to 30 s) until the unpacked images hold the versions `wanted`; returns them as
/// [`versions`] last saw them.
async fn versions_until(config: &nuage::Config, wanted: &[&str]) -> Vec<(String, PathBuf)> {
    eventually(
        Duration::from_secs(30),
        || async { versions(config) },
        |seen| names(seen) == wanted,
    )
    .await
}

async fn delete_until_gone(tenant: &Tenant, path: &str) {
    let answer = tenant.delete(path).await;
    assert_eq!(answer.status, StatusCode::OK, "DELETE {path}: {}", answer.body);
    tenant.wait_gone(path, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_function_and_namespace_leave_no_rows_objects_or_images() {
    // A deleted function's archive record stays until its upload URLs expire (a PUT after the
    // delete is swept away meanwhile): here within seconds.
    let (server, tenant) = TestServer::start_with_tenant(|config| config.storage.url_ttl_seconds = 2).await;
    let function = deployed_node(
        &tenant,
        "leftovers",
        json!({"name": "hello"}),
        &b"exports.handle = (event, context) => 'hello';"[..],
    )
    .await;
    let function_id = function["id"].as_str().unwrap().to_owned();
    let namespace_id = function["namespace_id"].as_str().unwrap().to_owned();
    let namespace = tenant.get(&format!("/namespaces/{namespace_id}")).await.body;
    // The namespace's directory of repositories in the registry: `funcscw<name>-<8 hex>`.
    let registry_namespace = namespace["registry_endpoint"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap()
        .1
        .to_owned();
    let ids = [function_id.as_str(), namespace_id.as_str()];
    let names = [registry_namespace.as_str()];

    // The listing sees what a deployed function has: the test can fail.
    let before = left(&server, &ids, &names).await;
    for expected in [
        "build_jobs.",
        "deployments.",
        "namespace_keys.",
        "object store: ",
        "registry: ",
        "runner image: ",
    ] {
        assert!(
            before.iter().any(|entry| entry.starts_with(expected)),
            "a deployed function has `{expected}...`: {before:#?}"
        );
    }

    delete_until_gone(&tenant, &format!("/functions/{function_id}")).await;
    delete_until_gone(&tenant, &format!("/namespaces/{namespace_id}")).await;
    // Unused image copies are removed in the background (set aside, then deleted), so the
    // runner's may take a moment after the deletes answer.
    let after = eventually(
        Duration::from_secs(20),
        || left(&server, &ids, &names),
        |left: &Vec<String>| left.is_empty(),
    )
    .await;
    assert!(after.is_empty(), "left behind by the deletes: {after:#?}");
    server.stop().await;
}

/// A function answering with its `version.txt`, followed by `size` bytes of padding.
const HANDLER: &[u8] = br#"import os
HERE = os.path.dirname(os.path.abspath(__file__))

def handle(event, context):
    with open(os.path.join(HERE, 'version.txt')) as f:
        version = f.read()
    size = int((event.get('queryStringParameters') or {}).get('size', '0'))
    return {'statusCode': 200, 'body': version + 'x' * size}
"#;

/// A padding large enough that the answer cannot fit in the sockets' buffers between the
/// function and a client that does not read it: the instance stays busy until it is read.
const HELD_BYTES: usize = 48_000_000;

/// Returns the status and body of a GET of `url`.
async fn call(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The version code of a function.
fn code(version: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("handler.py", HANDLER.to_vec()),
        ("version.txt", version.as_bytes().to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpacked_image_goes_once_no_version_or_instance_uses_it() {
    let mut server = TestServer::start().await;
    let key = nuage::admin::create_tenant(&server.config, "test tenant")
        .await
        .unwrap();
    let tenant = Tenant::new(&server.base_url, key.clone());
    let python = runtime(&tenant, "python").await;
    let files = |version: &'static str| code(version);
    let deploy_new = |namespace: &'static str, name: &'static str, version: &'static str| {
        let (tenant, python) = (tenant.clone(), python.clone());
        async move {
            let files = files(version);
            let files: Vec<(&str, &[u8])> = files.iter().map(|(name, data)| (*name, &data[..])).collect();
            // Room for the held answer's padding, as Python builds it.
            let body = json!({"name": name, "runtime": python, "memory_limit": 1024});
            deployed(&tenant, namespace, body, &files).await
        }
    };
    let function = deploy_new("copies", "kept", "one").await;
    let other = deploy_new("others", "other", "other").await;
    let id = function["id"].as_str().unwrap().to_owned();
    let endpoint = function["endpoint"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    assert_eq!(call(&client, &endpoint).await, (StatusCode::OK, "one".to_owned()));
    assert_eq!(names(&versions(&server.config)), ["one", "other"]);

    // An answer of the first version that is not read: its instance stays busy while a second
    // version is deployed, and drains only once the answer is read.
    let held = client
        .get(format!("{endpoint}?size={HELD_BYTES}"))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let two = code("two");
    upload(
        &tenant,
        &id,
        zip(&two.iter().map(|(name, data)| (*name, &data[..])).collect::<Vec<_>>()),
    )
    .await;
    deploy(&tenant, &id).await;
    let done = settled(&tenant, &id).await;
    assert_eq!(done["status"], "ready", "{done}");

    // The live version answers, without a failure, all along what follows.
    let hammering = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let hammer = tokio::spawn({
        let (hammering, endpoint, client) = (hammering.clone(), endpoint.clone(), client.clone());
        async move {
            let mut answers = Vec::new();
            while hammering.load(std::sync::atomic::Ordering::Relaxed) {
                answers.push(call(&client, &endpoint).await);
            }
            answers
        }
    });

    // Another application's delete makes the runner look for unused images while the first
    // version's instance still runs: the other's image goes, the first version's stays.
    let other_id = other["id"].as_str().unwrap();
    delete_until_gone(&tenant, &format!("/functions/{other_id}")).await;
    let seen = versions_until(&server.config, &["one", "two"]).await;
    assert_eq!(
        names(&seen),
        ["one", "two"],
        "the deleted function's image goes, no other"
    );
    // The busy instance of the first version read its root all along: its answer is whole.
    let answer = held.text().await.unwrap();
    assert_eq!(answer.len(), 3 + HELD_BYTES);
    assert!(answer.starts_with("onexxx"));
    // Read, its instance drains and ends: its image goes; the second version's stays.
    let seen = versions_until(&server.config, &["two"]).await;
    assert_eq!(
        names(&seen),
        ["two"],
        "the first version's image goes once its instance ended"
    );
    let current = seen[0].1.clone();
    hammering.store(false, std::sync::atomic::Ordering::Relaxed);
    let answers = hammer.await.unwrap();
    assert!(!answers.is_empty());
    for answer in &answers {
        assert_eq!(*answer, (StatusCode::OK, "two".to_owned()));
    }
    assert_eq!(call(&client, &endpoint).await, (StatusCode::OK, "two".to_owned()));

    // Images left from before a restart (an older copy, an unpack cut short) go at start-up;
    // the current version's stays.
    server.take_server().shutdown().await.expect("clean shutdown");
    let images = server.config.data_dir.join("runner/images");
    for (stale, version) in [
        (format!("sha256-{}", "0".repeat(64)), "stale"),
        (format!("sha256-{}.partial", "1".repeat(64)), "partial"),
    ] {
        std::fs::create_dir_all(images.join(&stale).join("rootfs")).unwrap();
        std::fs::write(images.join(&stale).join("rootfs/version.txt"), version).unwrap();
    }
    assert_eq!(names(&versions(&server.config)), ["partial", "stale", "two"]);
    // An instance cut short while starting leaves its arguments (its variables, secrets
    // opened) and gVisor's bundle: they go at start-up too.
    let instances = server.config.data_dir.join("runner/instances");
    let cut_short = instances.join("0f0f0f0f-cut-short");
    std::fs::create_dir_all(&cut_short).unwrap();
    std::fs::write(cut_short.join("args"), "--setenv\0TOKEN\0opened-secret\0").unwrap();
    std::fs::write(
        cut_short.join("config.json"),
        r#"{"process":{"env":["TOKEN=opened-secret"]}}"#,
    )
    .unwrap();
    let restarted = nuage::start(server.config.clone()).await.expect("server restarts");
    assert!(!cut_short.exists(), "an earlier run's instance files stay at start-up");
    let seen = versions_until(&server.config, &["two"]).await;
    assert_eq!(
        seen,
        [("two".to_owned(), current)],
        "only the current version's image stays"
    );
    let router = format!("http://{}", restarted.endpoints().functions.unwrap());
    let path = endpoint.splitn(4, '/').nth(3).unwrap();
    assert_eq!(
        call(&client, &format!("{router}/{path}")).await,
        (StatusCode::OK, "two".to_owned())
    );

    // Deleted, it leaves no image.
    let tenant = Tenant::new(&format!("http://{}", restarted.endpoints().api.unwrap()), key);
    delete_until_gone(&tenant, &format!("/functions/{id}")).await;
    let seen = eventually(
        Duration::from_secs(30),
        || async { copies(&server.config) },
        Vec::is_empty,
    )
    .await;
    assert!(seen.is_empty(), "a deleted function's image goes: {seen:?}");
    restarted.shutdown().await.expect("clean shutdown");
    server.stop().await;
}
