//! The seam between the runner and what runs instances: local processes today, Kubernetes
//! later.

use crate::error::RunnerError;
use nuage_proto::runner::v1::Spec;
use std::collections::HashSet;
use tokio::sync::oneshot;

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

    /// Removes what it keeps of images (unpacked copies) that neither a version the runner
    /// keeps (whose image is in `current`) nor a live instance uses. An instance uses its
    /// image until its end was sent on [`Running::exited`].
    fn release(&self, current: HashSet<String>) -> impl std::future::Future<Output = ()> + Send;
}
