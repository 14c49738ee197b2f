//! The runner: runs instances of functions and containers, shaped like OpenFaaS's
//! faas-provider (deploy a spec, remove, scale, resolve, list instances, stream output).
//!
//! It obeys the router, which decides how many instances each application needs. Owns the
//! `runner_applications` table (each application's current spec). The `local` backend runs
//! instances as processes of this machine, each in a network namespace of its own, sandboxed
//! with bubblewrap or gVisor as an unprivileged host id, and capped (memory, CPU, processes)
//! with cgroups where writable. Unpacked images are removed once neither a current version nor
//! a live instance uses them. The `kubernetes` backend runs them as pods of a cluster, a
//! Deployment and a headless Service per version (see [`kubernetes`]).

mod backend;
mod cgroups;
mod cidr;
mod config;
mod configured;
mod confined;
mod error;
mod gvisor;
mod images;
pub mod kubernetes;
mod limits;
mod local;
mod offer;
mod output;
mod registries;
mod registry_proxy;
mod sandbox;
mod seccomp;
mod service;
mod specs;

pub use backend::{Adopted, Backend, BackendParts, Component, Current, Running};
pub use config::{Egress, KubernetesConfig, RunnerConfig, Sandbox, SandboxKind};
pub use configured::ConfiguredBackend;
pub use error::RunnerError;
pub use kubernetes::KubernetesBackend;
pub use local::LocalBackend;
pub use offer::Offer;
pub use output::LogShipping;
pub use service::RunnerService;
pub use specs::SpecStore;

use nuage_clients::LogSink;
use nuage_core::Database;
use nuage_core::served::Served;
use nuage_proto::runner::v1::runner_server::RunnerServer;
use std::path::PathBuf;

/// Instance output lines held for followers that lag behind.
const OUTPUT_LINES: usize = 4096;

/// The runner service over the backend `runner.backend` names.
pub type Runner = RunnerService<ConfiguredBackend>;

/// Returns the runner service over `database` on the backend `config.backend` names: `local`,
/// with instances' files under `work_dir` and images read from `registry_dir`, or
/// `kubernetes`, reaching the cluster `config.kubernetes` names; instances' output goes to
/// `logs` at most `config.log_lines_per_second`. The handle stops every instance when the
/// process stops (a pod stops with its instance). Fails when the configured backend, a sandbox
/// it offers or its cluster is missing.
pub async fn serve(
    config: &RunnerConfig,
    work_dir: PathBuf,
    registry_dir: PathBuf,
    database: Database,
    logs: Option<LogSink>,
    sealing: [u8; 32],
) -> Result<Served<RunnerServer<Runner>, Runner>, RunnerError> {
    let output = tokio::sync::broadcast::channel(OUTPUT_LINES).0;
    let shipping = logs.map(|sink| LogShipping {
        sink,
        rate: config.log_lines_per_second,
    });
    let parts = BackendParts {
        work_dir,
        registry_dir,
        output: output.clone(),
        logs: shipping,
        sealing,
    };
    let (backend, warnings, watching) = match config.backend.as_str() {
        "local" => {
            let backend = LocalBackend::new(config, parts)?;
            let warnings = backend.warnings();
            let watching = backend.watch_host_addresses();
            (ConfiguredBackend::Local(Box::new(backend)), warnings, watching)
        }
        "kubernetes" => {
            let backend = KubernetesBackend::new(config, parts).await?;
            (ConfiguredBackend::Kubernetes(backend), Vec::new(), None)
        }
        other => return Err(RunnerError::UnknownBackend(other.to_owned())),
    };
    let service = RunnerService::new(backend, SpecStore::new(database), output);
    let recover = tokio::spawn(service.clone().recover());
    let release = tokio::spawn(service.clone().release_unused());
    Ok(Served::new(RunnerServer::new(service.clone()))
        .with_background([recover, release])
        .with_background(watching)
        .with_warnings(warnings)
        .with_handle(service))
}
