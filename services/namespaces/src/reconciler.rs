//! Converges namespaces out of their transient states.
//!
//! State lives in the database, not in this task: after a crash the next sweep picks up where
//! the last one stopped, and every step is idempotent, so two replicas sweeping at once are
//! harmless. Provisioning (making a namespace's key pair, which takes a core for a while) is
//! fair between tenants: a few namespaces at once, each held by a renewed claim so that
//! replicas share the work, the next one always from the organization with the fewest in
//! progress; one tenant's burst delays another's namespace by about one key's time.

use crate::config::{EMBEDDED_REGISTRY_HOST, NamespacesConfig};
use crate::error::NamespacesError;
use crate::model::{Namespace, NamespaceStatus};
use crate::store::NamespaceStore;
use nuage_core::ApiError;
use nuage_core::clock::now_micros;
use nuage_core::transport::Authed;
use nuage_proto::applications::v1::DeleteNamespaceApplicationsRequest;
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use nuage_proto::tokens::v1::KeyPairRequest;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

/// How many deleted namespaces one sweep handles.
const BATCH: i64 = 100;
/// How soon to sweep again while children are still being deleted.
const FOLLOW_UP: Duration = Duration::from_millis(200);
/// How long a namespace whose provisioning failed waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The services that own a namespace's children.
#[derive(Debug, Clone)]
pub struct Peers {
    /// Owns functions.
    pub functions: FunctionsClient<Authed>,
    /// Owns containers.
    pub containers: ContainersClient<Authed>,
    /// Owns namespace key pairs.
    pub tokens: TokensClient<Authed>,
}

/// Drives `pending` namespaces to `ready` and `deleting` ones out of existence.
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: NamespaceStore,
    config: NamespacesConfig,
    peers: Peers,
    /// Wakes the deletion sweep.
    wake: Arc<Notify>,
    /// Wakes the provisioning loop.
    wake_provisioning: Arc<Notify>,
    /// Counts namespaces this process made ready, so that callers waiting for one wake up.
    readied: Arc<watch::Sender<u64>>,
}

impl Reconciler {
    /// Returns a reconciler; call [`Reconciler::run`] to start it.
    pub fn new(store: NamespaceStore, config: NamespacesConfig, peers: Peers) -> Self {
        Self {
            store,
            config,
            peers,
            wake: Arc::new(Notify::new()),
            wake_provisioning: Arc::new(Notify::new()),
            readied: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Returns a receiver that changes whenever this process makes a namespace ready.
    pub fn readied(&self) -> watch::Receiver<u64> {
        self.readied.subscribe()
    }

    /// Asks for a sweep now rather than at the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
        self.wake_provisioning.notify_one();
    }

    /// Runs forever: provisions pending namespaces, and sweeps deleted ones at once, whenever
    /// woken, and every `reconcile_interval_seconds`.
    pub async fn run(self) {
        tokio::join!(self.provision_forever(), self.delete_forever());
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(self.config.reconcile_interval_seconds.max(1))
    }

    async fn delete_forever(&self) {
        let interval = self.interval();
        loop {
            let wait = match self.sweep().await {
                Ok(true) => FOLLOW_UP,
                Ok(false) => interval,
                Err(error) => {
                    tracing::warn!(error = %error, "namespace sweep failed; retrying");
                    interval.min(Duration::from_secs(1))
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Keeps up to `provision_workers` namespaces being provisioned, taking the next one (in
    /// [`NamespaceStore::next_to_provision`]'s order) whenever one ends, on a wake, and every
    /// interval (to take over what a dead replica held).
    async fn provision_forever(&self) {
        let workers = self.config.provision_workers();
        let mut running = JoinSet::new();
        loop {
            let free = workers.saturating_sub(running.len());
            let wait = match self.claim_next(free).await {
                Ok(claimed) => {
                    for namespace in claimed {
                        let reconciler = self.clone();
                        running.spawn(async move { reconciler.provision_held(namespace).await });
                    }
                    self.interval()
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot look for pending namespaces; retrying");
                    RETRY
                }
            };
            tokio::select! {
                Some(_) = running.join_next() => {}
                () = self.wake_provisioning.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Claims up to `free` namespaces to provision, in turn; returns those it got.
    async fn claim_next(&self, free: usize) -> Result<Vec<Namespace>, NamespacesError> {
        let mut claimed = Vec::new();
        while claimed.len() < free {
            let wanted = free - claimed.len();
            let candidates = self
                .store
                .next_to_provision(i64::try_from(wanted).unwrap_or(i64::MAX))
                .await?;
            if candidates.is_empty() {
                break;
            }
            for namespace in candidates {
                // Another replica may have been first: then the next query finds the next one.
                if self.store.claim(namespace.id, self.lease_end()).await? {
                    claimed.push(namespace);
                }
            }
        }
        Ok(claimed)
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.config.provision_lease_seconds.max(1))
    }

    fn lease_end(&self) -> i64 {
        now_micros() + i64::try_from(self.lease().as_micros()).unwrap_or(i64::MAX)
    }

    /// Provisions `namespace`, which this replica holds, renewing the hold meanwhile; after a
    /// failure, lets it be retried shortly (by any replica) without holding up the others.
    async fn provision_held(&self, namespace: Namespace) {
        let provision = self.provision(&namespace);
        tokio::pin!(provision);
        let mut renew = tokio::time::interval(self.lease() / 3);
        renew.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut provision => break result,
                _ = renew.tick() => {
                    if let Err(error) = self.store.hold_until(namespace.id, self.lease_end()).await {
                        tracing::warn!(namespace_id = %namespace.id, %error, "cannot renew the hold on a namespace");
                    }
                }
            }
        };
        let release_at = match result {
            Ok(true) => return,
            // Deleted meanwhile: the deletion sweep removes it once it is released.
            Ok(false) => 0,
            Err(error) => {
                tracing::warn!(namespace_id = %namespace.id, %error, "namespace provisioning failed; retrying");
                now_micros() + i64::try_from(RETRY.as_micros()).unwrap_or(i64::MAX)
            }
        };
        if let Err(error) = self.store.hold_until(namespace.id, release_at).await {
            tracing::warn!(namespace_id = %namespace.id, %error, "cannot release a namespace");
        }
        self.wake.notify_one();
    }

    /// Handles every namespace being deleted once; returns whether some deleted namespace
    /// still waits for its children to go.
    pub async fn sweep(&self) -> Result<bool, NamespacesError> {
        let mut waiting = false;
        for namespace in self.store.in_status(NamespaceStatus::Deleting, BATCH).await? {
            // Children first: functions and containers, which take their crons with them.
            if self.children_remaining(&namespace).await? > 0 {
                waiting = true;
                continue;
            }
            // Its key goes with it: tokens it signed stop working, and a namespace recreated
            // with the same name gets a key of its own.
            self.peers
                .tokens
                .clone()
                .delete_key_pair(KeyPairRequest {
                    namespace_id: namespace.id.to_string(),
                })
                .await
                .map_err(|status| NamespacesError::Peer(ApiError::from_status(&status)))?;
            if self.store.remove_deleted(namespace.id).await? {
                tracing::info!(namespace_id = %namespace.id, "namespace deleted");
            }
        }
        Ok(waiting)
    }

    /// Asks the owners of a namespace's functions and containers to delete them; returns how
    /// many still exist.
    async fn children_remaining(&self, namespace: &Namespace) -> Result<u64, NamespacesError> {
        let unavailable = |status: tonic::Status| NamespacesError::Peer(ApiError::from_status(&status));
        let request = || DeleteNamespaceApplicationsRequest {
            organization_id: namespace.organization_id.to_string(),
            namespace_id: namespace.id.to_string(),
        };
        let mut functions = self.peers.functions.clone();
        let mut containers = self.peers.containers.clone();
        let functions = functions.delete_namespace_functions(request()).await;
        let containers = containers.delete_namespace_containers(request()).await;
        let functions = functions.map_err(unavailable)?.into_inner().remaining;
        let containers = containers.map_err(unavailable)?.into_inner().remaining;
        Ok(functions + containers)
    }

    /// Makes the namespace's key pair and registry namespace, then marks it ready; returns
    /// whether it is (not when it was deleted meanwhile).
    async fn provision(&self, namespace: &Namespace) -> Result<bool, NamespacesError> {
        self.peers
            .tokens
            .clone()
            .create_key_pair(KeyPairRequest {
                namespace_id: namespace.id.to_string(),
            })
            .await
            .map_err(|status| NamespacesError::Peer(ApiError::from_status(&status)))?;
        // The registry namespace id is derived from the namespace id, so a retried provision
        // after a crash names the same registry namespace.
        let registry_namespace_id = Uuid::new_v5(&namespace.id, b"registry-namespace");
        let simple = registry_namespace_id.simple().to_string();
        let registry_endpoint = format!(
            "{}/funcscw{}-{}",
            self.config
                .registry_host
                .as_deref()
                .unwrap_or(EMBEDDED_REGISTRY_HOST)
                .trim_end_matches('/'),
            namespace.name.as_str(),
            &simple[..8]
        );
        let readied = self
            .store
            .mark_ready(namespace.id, &registry_namespace_id.to_string(), &registry_endpoint)
            .await?;
        if readied {
            tracing::info!(namespace_id = %namespace.id, registry_endpoint, "namespace ready");
            self.readied.send_modify(|count| *count += 1);
        }
        Ok(readied)
    }
}
