//! The runner: runs instances of functions and containers, shaped like OpenFaaS's
//! faas-provider (deploy a spec, remove, scale, resolve, list instances, stream output).
//!
//! It obeys the router, which decides how many instances each application needs. Owns the
//! `runner_applications` table (each application's current spec). The `local` backend runs
//! instances as processes of this machine, each in a network namespace of its own, sandboxed
//! with bubblewrap or gVisor as an unprivileged host id, and capped (memory, CPU, processes)
//! with cgroups where writable; the [`Backend`] trait is where a Kubernetes backend goes.
//! Unpacked images are removed once neither a current version nor a live instance uses them.

mod backend;
mod cgroups;
mod config;
mod confined;
mod error;
mod gvisor;
mod images;
pub mod kubernetes;
mod limits;
mod local;
mod offer;
mod sandbox;
mod seccomp;
mod service;
mod specs;

pub use backend::{Backend, Running};
pub use config::{Egress, KubernetesConfig, RunnerConfig, Sandbox, SandboxKind};
pub use error::RunnerError;
pub use local::{LocalBackend, LogShipping};
pub use offer::Offer;
pub use service::RunnerService;
pub use specs::SpecStore;

use nuage_clients::LogSink;
use nuage_core::Database;
use nuage_core::served::Served;
use nuage_proto::runner::v1::runner_server::RunnerServer;
use std::path::PathBuf;

/// Instance output lines held for followers that lag behind.
const OUTPUT_LINES: usize = 4096;

/// Returns the runner service over `database` on the local backend (the only one built in),
/// with instances' files under `work_dir` and images read from `registry_dir`; instances'
/// output goes to `logs` at most `config.log_lines_per_second`. The handle stops every instance
/// when the process stops. Fails when the configured backend or a sandbox it offers is missing.
pub fn serve(
    config: &RunnerConfig,
    work_dir: PathBuf,
    registry_dir: PathBuf,
    database: Database,
    logs: Option<LogSink>,
    sealing: [u8; 32],
) -> Result<Served<RunnerServer<RunnerService<LocalBackend>>, RunnerService<LocalBackend>>, RunnerError> {
    if config.backend != "local" {
        return Err(RunnerError::UnknownBackend(config.backend.clone()));
    }
    let output = tokio::sync::broadcast::channel(OUTPUT_LINES).0;
    let shipping = logs.map(|sink| LogShipping {
        sink,
        rate: config.log_lines_per_second,
    });
    let backend = LocalBackend::new(config, work_dir, registry_dir, output.clone(), shipping, sealing)?;
    let warnings = backend.warnings();
    let service = RunnerService::new(backend, SpecStore::new(database), output);
    let release = tokio::spawn(service.clone().release_unused());
    Ok(Served::new(RunnerServer::new(service.clone()))
        .with_background([release])
        .with_warnings(warnings)
        .with_handle(service))
}
