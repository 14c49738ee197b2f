//! The backend `runner.backend` names, as one type for the service to run over.

use crate::backend::{Adopted, Backend, Component, Current, Running};
use crate::error::RunnerError;
use crate::kubernetes::KubernetesBackend;
use crate::local::LocalBackend;
use nuage_proto::runner::v1::Spec;

/// The backend `runner.backend` names.
#[derive(Debug)]
pub enum ConfiguredBackend {
    /// Sandboxed processes of this machine.
    Local(Box<LocalBackend>),
    /// Pods of a Kubernetes cluster.
    Kubernetes(KubernetesBackend),
}

impl Backend for ConfiguredBackend {
    async fn start(&self, spec: &Spec, instance_id: &str) -> Result<Running, RunnerError> {
        match self {
            Self::Local(backend) => backend.start(spec, instance_id).await,
            Self::Kubernetes(backend) => backend.start(spec, instance_id).await,
        }
    }

    async fn pin(&self, image: &str) -> Result<String, RunnerError> {
        match self {
            Self::Local(backend) => backend.pin(image).await,
            Self::Kubernetes(backend) => backend.pin(image).await,
        }
    }

    async fn release(&self, current: Current) {
        match self {
            Self::Local(backend) => backend.release(current).await,
            Self::Kubernetes(backend) => backend.release(current).await,
        }
    }

    async fn component(&self, spec: &Spec) -> Result<Component, RunnerError> {
        match self {
            Self::Local(backend) => backend.component(spec).await,
            Self::Kubernetes(backend) => backend.component(spec).await,
        }
    }

    fn outlives_runner(&self) -> bool {
        match self {
            Self::Local(backend) => backend.outlives_runner(),
            Self::Kubernetes(backend) => backend.outlives_runner(),
        }
    }

    async fn recover(&self, current: Current) -> Vec<Adopted> {
        match self {
            Self::Local(backend) => backend.recover(current).await,
            Self::Kubernetes(backend) => backend.recover(current).await,
        }
    }
}
