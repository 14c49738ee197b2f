//! Converges crons out of their transient states: `pending` becomes `ready`, `deleting`
//! disappears. State lives in the database and every step is idempotent.

use crate::model::CronStatus;
use crate::scheduler::Scheduler;
use crate::store::CronStore;
use nuage_core::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How many crons one sweep handles per state.
const BATCH: i64 = 100;

/// Drives crons out of `pending` and `deleting`.
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: CronStore,
    interval: Duration,
    wake: Arc<Notify>,
    scheduler: Option<Scheduler>,
}

impl Reconciler {
    /// Returns a reconciler that sweeps every `interval_seconds`; call [`Reconciler::run`].
    pub fn new(store: CronStore, interval_seconds: u64) -> Self {
        Self {
            store,
            interval: Duration::from_secs(interval_seconds.max(1)),
            wake: Arc::new(Notify::new()),
            scheduler: None,
        }
    }

    /// Tells `scheduler` after each sweep, so that a change made through this replica is
    /// scheduled at once.
    pub fn with_scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// Asks for a sweep now rather than at the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sweeps forever: at once, whenever woken, and every interval.
    pub async fn run(self) {
        loop {
            if let Err(error) = self.sweep().await {
                tracing::warn!(%error, "cron sweep failed; retrying");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Handles every cron in a transient state once. A `ready` cron is scheduled by every
    /// replica's [`Scheduler`], which follows the table.
    pub async fn sweep(&self) -> Result<(), ApiError> {
        let result = self.converge().await;
        if let Some(scheduler) = &self.scheduler {
            scheduler.wake();
        }
        result
    }

    async fn converge(&self) -> Result<(), ApiError> {
        for cron in self.store.in_status(CronStatus::Pending, BATCH).await? {
            self.store.mark_ready(cron.id).await?;
        }
        for cron in self.store.in_status(CronStatus::Deleting, BATCH).await? {
            if self.store.remove_deleted(cron.id).await? {
                tracing::info!(cron_id = %cron.id, "cron deleted");
            }
        }
        Ok(())
    }
}
