//! Converges functions and containers out of their transient states: `deleting` ones are
//! removed with what they own, and roll-outs whose process died are resumed (`pending` ends
//! `ready` or `error`). State lives in the database and every step is idempotent or claimed
//! with a lease, so a crash or two replicas sweeping at once are harmless.

use crate::domain_store::DomainStore;
use crate::history::History;
use crate::model::{ApplicationStatus, Kind};
use crate::peers::Peers;
use crate::rollouts::Rollouts;
use crate::store::ApplicationStore;
use nuage_core::ApiError;
use nuage_proto::crons::v1::DeleteApplicationCronsRequest;
use nuage_proto::logs::v1::DeleteApplicationLogsRequest;
use nuage_proto::runner::v1::RemoveRequest;
use nuage_proto::tokens::v1::RevokeApplicationTokensRequest;
use nuage_proto::triggers::v1::DeleteApplicationTriggersRequest;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

/// How many applications one sweep handles.
const BATCH: i64 = 100;
/// How soon to sweep again while children are still being deleted.
const FOLLOW_UP: Duration = Duration::from_millis(200);
/// How long a deletion that failed waits before it is tried again, at first; each failure
/// doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries of a deletion that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What a kind leaves behind of its own when one of its applications is deleted (a function's
/// archive and deployments), removed after its crons, triggers, instances and logs.
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

/// Removes `deleting` applications of kind `K` once their crons, triggers, instances, logs,
/// domains and leftovers are gone.
#[derive(Debug)]
pub struct Reconciler<K, L> {
    store: ApplicationStore<K>,
    rollouts: Rollouts<K>,
    peers: Peers,
    leftovers: L,
    domains: DomainStore,
    history: History<K>,
    interval: Duration,
    wake: Arc<Notify>,
    /// Deletions that failed: when each may be tried again, and the wait after its next failure.
    backoff: Arc<Mutex<HashMap<Uuid, (Instant, Duration)>>>,
}

impl<K, L: Clone> Clone for Reconciler<K, L> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            rollouts: self.rollouts.clone(),
            peers: self.peers.clone(),
            leftovers: self.leftovers.clone(),
            domains: self.domains.clone(),
            history: self.history.clone(),
            interval: self.interval,
            wake: self.wake.clone(),
            backoff: self.backoff.clone(),
        }
    }
}

impl<K: Kind, L: Leftovers> Reconciler<K, L> {
    /// Returns a reconciler that sweeps every `interval_seconds`, removing with each application
    /// its `leftovers`, its domains and its deployment history; call [`Reconciler::run`].
    pub fn new(
        store: ApplicationStore<K>,
        rollouts: Rollouts<K>,
        peers: Peers,
        (leftovers, domains, history): (L, DomainStore, History<K>),
        interval_seconds: u64,
    ) -> Self {
        Self {
            store,
            rollouts,
            peers,
            leftovers,
            domains,
            history,
            interval: Duration::from_secs(interval_seconds.max(1)),
            wake: Arc::new(Notify::new()),
            backoff: Arc::default(),
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

    /// Resumes roll-outs whose process died, then handles every application being deleted
    /// once; returns whether some still wait on crons or triggers.
    pub async fn sweep(&self) -> Result<bool, ApiError> {
        for rollout in self.rollouts.claim_abandoned(BATCH).await? {
            tracing::info!(application_id = %rollout.application_id, version = rollout.version, attempt = rollout.attempts, "resuming an interrupted {} roll-out", K::NOUN);
            let rollouts = self.rollouts.clone();
            tokio::spawn(async move { rollouts.run(rollout, None).await });
        }
        let mut waiting = false;
        let deleting = self.store.in_status(ApplicationStatus::Deleting, BATCH).await?;
        // Deletions another replica finished are forgotten.
        self.backoff
            .lock()
            .expect("backoff lock")
            .retain(|id, _| deleting.iter().any(|application| application.id == *id));
        for application in deleting {
            let id = application.id;
            if self.backing_off(id) {
                continue;
            }
            // Each deletion on its own: one that fails (its object store is down...) waits
            // and is tried again later, and never holds up the others.
            match self.delete(application.organization_id, id).await {
                Ok(done) => {
                    self.backoff.lock().expect("backoff lock").remove(&id);
                    waiting |= !done;
                }
                Err(error) => {
                    let wait = self.failed(id);
                    tracing::warn!(application_id = %id, %error, retry_in_s = wait.as_secs(), "cannot delete a {} yet", K::NOUN);
                    // Least recently changed first: it goes behind the others.
                    self.store.touch(id).await?;
                }
            }
        }
        Ok(waiting)
    }

    /// Whether deletion `id` failed and its wait is not over.
    fn backing_off(&self, id: Uuid) -> bool {
        self.backoff
            .lock()
            .expect("backoff lock")
            .get(&id)
            .is_some_and(|(due, _)| Instant::now() < *due)
    }

    /// Records that deletion `id` failed; returns how long it waits before its next try.
    fn failed(&self, id: Uuid) -> Duration {
        let mut backoff = self.backoff.lock().expect("backoff lock");
        let next = backoff.get(&id).map_or(FIRST_BACKOFF, |(_, wait)| *wait);
        backoff.insert(id, (Instant::now() + next, (next * 2).min(MAX_BACKOFF)));
        next
    }

    /// Removes application `id` of `organization_id` once its crons and triggers are gone,
    /// with everything it owns; returns false while some remain.
    async fn delete(&self, organization_id: Uuid, id: Uuid) -> Result<bool, ApiError> {
        // Both asked every time, so that both are marked for deletion at once.
        let crons = self.crons_remaining(organization_id, id).await?;
        let triggers = self.triggers_remaining(organization_id, id).await?;
        if crons + triggers > 0 {
            return Ok(false);
        }
        self.remove_children(id).await?;
        self.rollouts.cancel(id).await?;
        if self.store.remove_deleted(id).await? {
            tracing::info!(application_id = %id, "{} deleted", K::NOUN);
        }
        Ok(true)
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

    /// Asks for the application's triggers to be deleted (unsubscribed); returns how many
    /// still exist.
    async fn triggers_remaining(&self, organization_id: Uuid, id: Uuid) -> Result<u64, ApiError> {
        let request = DeleteApplicationTriggersRequest {
            organization_id: organization_id.to_string(),
            application_id: id.to_string(),
        };
        Ok(self
            .peers
            .triggers
            .clone()
            .delete_application_triggers(request)
            .await
            .map_err(|status| ApiError::from_status(&status))?
            .into_inner()
            .remaining)
    }

    /// Removes the domains, stops every instance, then removes the logs, revokes the tokens,
    /// removes the kind's leftovers and forgets the deployments.
    async fn remove_children(&self, id: Uuid) -> Result<(), ApiError> {
        self.domains.remove_for(id).await?;
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
        // Its tokens can open nothing now; they are no longer listed either.
        self.peers
            .tokens
            .clone()
            .revoke_application_tokens(RevokeApplicationTokensRequest {
                application_id: id.to_string(),
            })
            .await
            .map_err(|status| ApiError::from_status(&status))?;
        self.leftovers.remove(id).await?;
        self.history.remove_for(id).await
    }
}
