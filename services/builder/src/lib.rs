//! The builder: from an uploaded zip to an OCI image, through a durable queue.
//!
//! Owns the `build_jobs` table. Serves `nuage.builder.v1.Builder` (queue a build) and runs
//! [`Worker`]s that claim jobs with a lease, fetch the archive from object storage, check it
//! (zip only, size, entry count, expansion ratio, paths, links, the handler), write an OCI
//! image (nuage's wrapper for the runtime plus the code, on the runtime's base image when
//! `builder.base_images` names one) into the namespace's repository, and
//! report to the functions service. Deleting a function deletes its builds: jobs and images.
//! Wrappers live in `wrappers/`, with their own tests.

mod base;
mod checks;
mod config;
mod error;
mod golang;
mod image;
mod jobs;
mod leftovers;
mod registry;
mod service;
mod worker;

pub use base::Base;
pub use checks::{Entry, Limits, check_handler, read_archive};
pub use config::BuilderConfig;
pub use error::BuilderError;
pub use image::{CODE_DIR, Foundation, Image, WRAPPER_DIR, layout_dir, remove_image, write_image};
pub use jobs::{Held, Job, JobStore};
pub use leftovers::BuildLeftovers;
pub use registry::Registry;
pub use service::BuilderService;
pub use worker::Worker;

use nuage_clients::LogSink;
use nuage_core::Database;
use nuage_core::served::Served;
use nuage_core::storage::{StorageAccess, StorageConfig};
use nuage_core::transport::Authed;
use nuage_proto::builder::v1::builder_server::BuilderServer;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use std::path::PathBuf;

/// Returns the builder service over `database`, with its worker running: it fetches archives
/// from the store `access` reaches (as `storage` describes), writes images under `registry`
/// keeping the newest `keep_images` of each function (`applications.deployment_history`),
/// reports to `functions` and sends build output to `logs`.
pub fn serve(
    config: &BuilderConfig,
    storage: &StorageConfig,
    access: &StorageAccess,
    (registry, keep_images): (PathBuf, usize),
    database: Database,
    functions: FunctionsClient<Authed>,
    logs: Option<LogSink>,
) -> Served<BuilderServer<BuilderService>> {
    let jobs = JobStore::new(database);
    let archives = nuage_clients::storage::client(storage, access);
    let leftovers = BuildLeftovers::new(jobs.clone(), registry.clone());
    let worker = Worker::new(
        jobs.clone(),
        (archives, storage.bucket.clone()),
        functions,
        (registry, keep_images),
        config.clone(),
    )
    .with_logs(logs);
    let working = tokio::spawn(worker.clone().run());
    let service = BuilderService::new(jobs, worker, leftovers, config.max_queued_per_organization);
    Served::new(BuilderServer::new(service)).with_background([working])
}
