//! The builder: from an uploaded zip to an OCI image, through a durable queue.
//!
//! Owns the `build_jobs` table. Serves `nuage.builder.v1.Builder` (queue a build) and runs
//! [`Worker`]s that claim jobs with a lease, fetch the archive from object storage, check it
//! (zip only, size, entry count, expansion ratio, paths, links, the handler), write an OCI
//! image (nuage's wrapper for the runtime plus the code) into the namespace's repository, and
//! report to the functions service. Wrappers live in `wrappers/`, with their own tests.

mod checks;
mod config;
mod golang;
mod image;
mod jobs;
mod registry;
mod service;
mod worker;

pub use checks::{Entry, Limits, check_handler, read_archive};
pub use config::BuilderConfig;
pub use image::{CODE_DIR, Image, WRAPPER_DIR, layout_dir, write_image};
pub use jobs::{Job, JobStore};
pub use registry::Registry;
pub use service::BuilderService;
pub use worker::Worker;
