//! What `/healthz` checks of this process besides its services: the database, the object
//! store and the data disk, as far as this process has them. The gateway runs the checks,
//! each within its deadline; this file says how each is checked.

use nuage_core::Database;
use nuage_core::storage::{StorageAccess, StorageConfig};
use nuage_gateway::{Checked, Dependency};
use std::path::PathBuf;

/// Returns the checks of `database` and the object store `storage` (when this process has
/// them), and of the disk holding `data_dir`, which needs `min_free_bytes` free.
pub fn dependencies(
    database: Option<&Database>,
    storage: Option<(&StorageConfig, &StorageAccess)>,
    data_dir: PathBuf,
    min_free_bytes: u64,
) -> Vec<Dependency> {
    let mut dependencies = Vec::new();
    if let Some(database) = database {
        dependencies.push(database_check(database.clone()));
    }
    if let Some((config, access)) = storage {
        dependencies.push(object_store_check(config, access));
    }
    dependencies.push(disk_check(data_dir, min_free_bytes));
    dependencies
}

fn database_check(database: Database) -> Dependency {
    Dependency {
        name: "database",
        check: Box::new(move || {
            let database = database.clone();
            Box::pin(async move {
                if database.ping().await {
                    Checked::up()
                } else {
                    Checked::down("unreachable", "the database does not answer")
                }
            })
        }),
    }
}

/// The store is up when it answers for the archive bucket with success: an error answer
/// (credentials refused, no bucket) leaves archives unreachable too.
fn object_store_check(config: &StorageConfig, access: &StorageAccess) -> Dependency {
    let client = nuage_clients::storage::client(config, access);
    let bucket = config.bucket.clone();
    Dependency {
        name: "object_store",
        check: Box::new(move || {
            let request = client.head_bucket().bucket(bucket.clone());
            Box::pin(async move {
                match request.send().await {
                    Ok(_) => Checked::up(),
                    Err(error) => match error.raw_response().map(|answer| answer.status().as_u16()) {
                        Some(status) => Checked::down("failing", format!("the bucket answered HTTP {status}"))
                            .with("http_status", u64::from(status)),
                        None => Checked::down(
                            "unreachable",
                            aws_sdk_s3::error::DisplayErrorContext(&error).to_string(),
                        ),
                    },
                }
            })
        }),
    }
}

fn disk_check(data_dir: PathBuf, min_free_bytes: u64) -> Dependency {
    Dependency {
        name: "disk",
        check: Box::new(move || {
            let data_dir = data_dir.clone();
            Box::pin(async move {
                // A hung file system must not hold a runtime thread: the deadline covers this.
                let statistics = tokio::task::spawn_blocking(move || rustix::fs::statvfs(&data_dir)).await;
                match statistics {
                    Ok(Ok(statistics)) => {
                        let free = statistics.f_bavail.saturating_mul(statistics.f_frsize);
                        let checked = if free < min_free_bytes {
                            Checked::down(
                                "full",
                                format!("{free} bytes free on the data dir's disk, fewer than {min_free_bytes}"),
                            )
                        } else {
                            Checked::up()
                        };
                        checked.with("free_bytes", free).with("min_free_bytes", min_free_bytes)
                    }
                    Ok(Err(error)) => Checked::down("unreachable", format!("cannot read the data dir's disk: {error}")),
                    Err(error) => Checked::down("unreachable", format!("the disk check failed: {error}")),
                }
            })
        }),
    }
}
