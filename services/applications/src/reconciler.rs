//! Converges functions and containers out of their transient states. State lives in the
//! database and every step is idempotent, so a crash or two replicas sweeping at once are
//! harmless.

use crate::model::{ApplicationStatus, Kind};
use crate::peers::Peers;
use crate::store::ApplicationStore;
use nuage_core::ApiError;
use nuage_proto::crons::v1::DeleteApplicationCronsRequest;
use nuage_proto::logs::v1::DeleteApplicationLogsRequest;
use nuage_proto::runner::v1::RemoveRequest;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// How many applications one sweep handles.
const BATCH: i64 = 100;
/// How soon to sweep again while children are still being deleted.
const FOLLOW_UP: Duration = Duration::from_millis(200);

/// What a kind leaves behind of its own when one of its applications is deleted (a function's
/// archive and deployments), removed after its crons, instances and logs.
pub trait Leftovers: Clone + Send + Sync + 'static {
    /// Removes what application `id` left; removing what is already gone is not an error.
    fn remove(&self, id: Uuid) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Nothing of its own is left behind.
impl Leftovers for () {
    async fn remove(&self, _id: Uuid) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Removes `deleting` applications of kind `K` once their crons, instances, logs and
/// leftovers are gone.
#[derive(Debug)]
pub struct Reconciler<K, L> {
    store: ApplicationStore<K>,
    peers: Peers,
    leftovers: L,
    interval: Duration,
    wake: Arc<Notify>,
}

impl<K, L: Clone> Clone for Reconciler<K, L> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            peers: self.peers.clone(),
            leftovers: self.leftovers.clone(),
            interval: self.interval,
            wake: self.wake.clone(),
        }
    }
}

impl<K: Kind, L: Leftovers> Reconciler<K, L> {
    /// Returns a reconciler that sweeps every `interval_seconds`; call [`Reconciler::run`].
    pub fn new(store: ApplicationStore<K>, peers: Peers, leftovers: L, interval_seconds: u64) -> Self {
        Self {
            store,
            peers,
            leftovers,
            interval: Duration::from_secs(interval_seconds.max(1)),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks for a sweep now rather than at the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sweeps forever: at once, whenever woken, and every interval.
    pub async fn run(self) {
        loop {
            let wait = match self.sweep().await {
                Ok(true) => FOLLOW_UP,
                Ok(false) => self.interval,
                Err(error) => {
                    tracing::warn!(%error, "{} sweep failed; retrying", K::NOUN);
                    self.interval.min(Duration::from_secs(1))
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Handles every application being deleted once; returns whether some still wait on crons.
    pub async fn sweep(&self) -> Result<bool, ApiError> {
        let mut waiting = false;
        for application in self.store.in_status(ApplicationStatus::Deleting, BATCH).await? {
            if self
                .crons_remaining(application.organization_id, application.id)
                .await?
                > 0
            {
                waiting = true;
                continue;
            }
            self.remove_children(application.id).await?;
            if self.store.remove_deleted(application.id).await? {
                tracing::info!(application_id = %application.id, "{} deleted", K::NOUN);
            }
        }
        Ok(waiting)
    }

    /// Asks for the application's crons to be deleted; returns how many still exist.
    async fn crons_remaining(&self, organization_id: Uuid, id: Uuid) -> Result<u64, ApiError> {
        let request = DeleteApplicationCronsRequest {
            organization_id: organization_id.to_string(),
            application_id: id.to_string(),
        };
        Ok(self
            .peers
            .crons
            .clone()
            .delete_application_crons(request)
            .await
            .map_err(|status| ApiError::from_status(&status))?
            .into_inner()
            .remaining)
    }

    /// Stops every instance, then removes the logs and the kind's leftovers.
    async fn remove_children(&self, id: Uuid) -> Result<(), ApiError> {
        self.peers
            .runner
            .clone()
            .remove(RemoveRequest {
                application_id: id.to_string(),
            })
            .await
            .map_err(|status| ApiError::from_status(&status))?;
        // Lines still on their way are dropped by the logs service.
        self.peers
            .logs
            .clone()
            .delete_application_logs(DeleteApplicationLogsRequest {
                application_id: id.to_string(),
            })
            .await
            .map_err(|status| ApiError::from_status(&status))?;
        self.leftovers.remove(id).await
    }
}
