//! Converges namespaces out of their transient states.
//!
//! State lives in the database, not in this task: after a crash the next sweep picks up where
//! the last one stopped, and every step is idempotent, so two replicas sweeping at once are
//! harmless.

use crate::config::NamespacesConfig;
use crate::error::NamespacesError;
use crate::model::{Namespace, NamespaceStatus};
use crate::store::NamespaceStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// How many namespaces one sweep handles per state.
const BATCH: i64 = 100;

/// Drives `pending` namespaces to `ready` and `deleting` ones out of existence.
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: NamespaceStore,
    config: NamespacesConfig,
    wake: Arc<Notify>,
}

impl Reconciler {
    /// Returns a reconciler; call [`Reconciler::run`] to start it.
    pub fn new(store: NamespaceStore, config: NamespacesConfig) -> Self {
        Self {
            store,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks for a sweep now rather than at the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sweeps forever: at once, whenever woken, and every `reconcile_interval_seconds`.
    pub async fn run(self) {
        let interval = Duration::from_secs(self.config.reconcile_interval_seconds.max(1));
        loop {
            if let Err(error) = self.sweep().await {
                tracing::warn!(error = %error, "namespace sweep failed; retrying");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Handles every namespace currently in a transient state once.
    pub async fn sweep(&self) -> Result<(), NamespacesError> {
        for namespace in self.store.in_status(NamespaceStatus::Pending, BATCH).await? {
            self.provision(&namespace).await?;
        }
        for namespace in self.store.in_status(NamespaceStatus::Deleting, BATCH).await? {
            // TODO(#3): delete the namespace's functions, containers and crons over gRPC first.
            if self.store.remove_deleted(namespace.id).await? {
                tracing::info!(namespace_id = %namespace.id, "namespace deleted");
            }
        }
        Ok(())
    }

    /// Creates the namespace's registry namespace and marks it ready.
    async fn provision(&self, namespace: &Namespace) -> Result<(), NamespacesError> {
        // The registry namespace id is derived from the namespace id, so a retried provision
        // after a crash names the same registry namespace.
        let registry_namespace_id = Uuid::new_v5(&namespace.id, b"registry-namespace");
        let simple = registry_namespace_id.simple().to_string();
        let registry_endpoint = format!(
            "{}/funcscw{}-{}",
            self.config.registry_host.trim_end_matches('/'),
            namespace.name.as_str(),
            &simple[..8]
        );
        if self
            .store
            .mark_ready(namespace.id, &registry_namespace_id.to_string(), &registry_endpoint)
            .await?
        {
            tracing::info!(namespace_id = %namespace.id, registry_endpoint, "namespace ready");
        }
        Ok(())
    }
}
