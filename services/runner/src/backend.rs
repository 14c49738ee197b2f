//! The seam between the runner and what runs instances: local processes, or pods of a
//! Kubernetes cluster.

use crate::config::RunnerConfig;
use crate::error::RunnerError;
use crate::images::{Images, Unpacked};
use crate::output::LogShipping;
use nuage_proto::runner::v1::{OutputLine, Spec};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// What either backend is given besides its configuration: where it keeps files, where its
/// instances' output goes, and the key that opens their secrets.
pub struct BackendParts {
    /// Unpacked images (and, on the `local` backend, instances' files).
    pub work_dir: PathBuf,
    /// The builder's image layouts.
    pub registry_dir: PathBuf,
    /// Instances' output lines, for those who follow them.
    pub output: broadcast::Sender<OutputLine>,
    /// Where instances' output is shipped, when anywhere.
    pub logs: Option<LogShipping>,
    /// Opens secret environment variables (see [`nuage_core::secrets`]).
    pub sealing: [u8; 32],
}

impl BackendParts {
    /// Returns the images kept under `work_dir`, pulled as `config` says.
    pub(crate) fn images(&self, config: &RunnerConfig) -> Images {
        Images::new(
            self.work_dir.clone(),
            self.registry_dir.clone(),
            config.registry_insecure,
            Duration::from_millis(config.registry_timeout_ms),
        )
        .with_registries(config.registry_host.clone(), config.tenant_registries.clone())
    }
}

/// What the runner keeps as current: each application's current version and its image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// The images of current versions.
    pub images: HashSet<String>,
    /// The current version of each application, by application id.
    pub versions: HashMap<String, String>,
}

/// An instance found running when the runner started: a backend whose instances outlive the
/// runner (Kubernetes) hands them back to be kept again.
#[derive(Debug)]
pub struct Adopted {
    /// Its application.
    pub application_id: String,
    /// Its version.
    pub version: String,
    /// The id it is kept under.
    pub instance_id: String,
    /// The instance.
    pub running: Running,
}

/// A started instance, answering on `address`.
#[derive(Debug)]
pub struct Running {
    /// `127.0.0.1:port` (or whatever address reaches it).
    pub address: String,
    /// Send (or drop) to stop it.
    pub stop: oneshot::Sender<()>,
    /// Receives why it ended, once it has, whether asked to or not.
    pub exited: oneshot::Receiver<String>,
}

/// A WebAssembly function's precompiled component, as the router needs it.
#[derive(Debug)]
pub struct Component {
    /// Wasmtime's precompiled form.
    pub bytes: Vec<u8>,
    /// Its variables, secrets opened.
    pub environment: Vec<(String, String)>,
    /// Whether its outgoing HTTP may reach public addresses (`runner.egress`).
    pub public_egress: bool,
}

impl Component {
    /// Reads the precompiled component out of `image` (as the builder wrote it, unpacked
    /// without following links out of its root), with `spec`'s variables and secrets opened
    /// with `sealing`.
    pub(crate) async fn read(
        image: &Unpacked,
        spec: &Spec,
        sealing: &[u8; 32],
        public_egress: bool,
    ) -> Result<Self, RunnerError> {
        let path = nuage_core::wasm::COMPONENT_PATH;
        let bytes = tokio::fs::read(image.root.join(path))
            .await
            .map_err(|source| RunnerError::NoComponent { path, source })?;
        Ok(Self {
            bytes,
            environment: opened_environment(spec, sealing)?,
            public_egress,
        })
    }
}

/// The spec's variables (namespace < application < platform, merged already), then its
/// secrets opened (namespace's < application's); each name once, the last given winning.
pub(crate) fn opened_environment(spec: &Spec, sealing: &[u8; 32]) -> Result<Vec<(String, String)>, RunnerError> {
    let mut environment: Vec<_> = spec.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    environment.sort();
    environment.extend(opened_secrets(spec, sealing)?);
    Ok(last_wins(environment))
}

/// `spec`'s secret variables opened with `sealing`, in the order given (namespace's, then
/// application's); a secret that does not open fails, naming it.
pub(crate) fn opened_secrets(spec: &Spec, sealing: &[u8; 32]) -> Result<Vec<(String, String)>, RunnerError> {
    spec.secrets
        .iter()
        .map(|secret| {
            nuage_core::secrets::open(sealing, &secret.owner_id, &secret.key, &secret.sealed_value)
                .map(|value| (secret.key.clone(), value))
                .map_err(|_| RunnerError::Secret(secret.key.clone()))
        })
        .collect()
}

/// Returns `environment` with each name once, where it was last given.
pub(crate) fn last_wins(environment: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<(String, String)> = environment
        .into_iter()
        .rev()
        .filter(|(name, _)| seen.insert(name.clone()))
        .collect();
    unique.reverse();
    unique
}

/// Starts instances.
pub trait Backend: Send + Sync + 'static {
    /// Starts an instance of `spec` named `instance_id`; answers once it accepts connections,
    /// or with why it could not.
    fn start(
        &self,
        spec: &Spec,
        instance_id: &str,
    ) -> impl std::future::Future<Output = Result<Running, RunnerError>> + Send;

    /// Returns the image reference `image` pinned to the image it names now (by digest), so
    /// that what is pushed under its tag later does not change what a version runs.
    fn pin(&self, image: &str) -> impl std::future::Future<Output = Result<String, RunnerError>> + Send;

    /// Removes what it keeps for versions that are neither current nor run by a live
    /// instance: unpacked images (the local backend), Deployments and what goes with them
    /// (Kubernetes). An instance uses its version until its end was sent on
    /// [`Running::exited`].
    fn release(&self, current: Current) -> impl std::future::Future<Output = ()> + Send;

    /// Returns the precompiled component of `spec`'s image (a WebAssembly function's) and what
    /// it runs with.
    fn component(&self, spec: &Spec) -> impl std::future::Future<Output = Result<Component, RunnerError>> + Send;

    /// Returns whether instances outlive the runner (pods do, processes do not): then a
    /// runner that stops leaves them running for the next one to [`Backend::recover`].
    fn outlives_runner(&self) -> bool {
        false
    }

    /// Returns the instances of `current` versions that run already (started before this
    /// runner did), to be kept again; stops those it cannot hand back. None by default: local
    /// instances end with the runner.
    fn recover(&self, current: Current) -> impl std::future::Future<Output = Vec<Adopted>> + Send {
        let _ = current;
        async { Vec::new() }
    }
}
