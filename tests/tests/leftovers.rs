//! Deletes remove everything they own: once a deployed function and its namespace are deleted,
//! no row of any table and no file of the object store or of the image registry names them.

use nuage_tests::apps::{deployed, runtime};
use nuage_tests::{Tenant, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Returns `table.column = value` for every text cell of the database that contains one of
/// `ids`.
async fn rows_naming(database_url: &str, ids: &[&str]) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let mut database = sqlx::AnyConnection::connect(database_url).await.unwrap();
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
    left
}

async fn delete_until_gone(tenant: &Tenant, path: &str) {
    let answer = tenant.delete(path).await;
    assert_eq!(answer.status, StatusCode::OK, "DELETE {path}: {}", answer.body);
    tenant
        .poll_until(path, Duration::from_secs(60), |answer| {
            answer.status == StatusCode::NOT_FOUND
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_function_and_namespace_leave_no_rows_objects_or_images() {
    let server = TestServer::start().await;
    let tenant = server.tenant().await;
    let node = runtime(&tenant, "node").await;
    let function = deployed(
        &tenant,
        "leftovers",
        json!({"name": "hello", "runtime": node}),
        &[("handler.js", &b"exports.handle = (event, context) => 'hello';"[..])],
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
    ] {
        assert!(
            before.iter().any(|entry| entry.starts_with(expected)),
            "a deployed function has `{expected}...`: {before:#?}"
        );
    }

    delete_until_gone(&tenant, &format!("/functions/{function_id}")).await;
    delete_until_gone(&tenant, &format!("/namespaces/{namespace_id}")).await;
    let after = left(&server, &ids, &names).await;
    assert!(after.is_empty(), "left behind by the deletes: {after:#?}");
    server.stop().await;
}
