//! Removes triggers that are `deleting`, once every replica's [`Subscriber`] has had time to
//! see the change and unsubscribe (and a client waiting on the deletion to see `deleting`).
//!
//! [`Subscriber`]: crate::Subscriber

use crate::store::TriggerStore;
use nuage_core::ApiError;
use nuage_core::clock::now_micros;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How many triggers one sweep removes.
const BATCH: i64 = 100;

/// Removes `deleting` triggers.
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: TriggerStore,
    linger: Duration,
    wake: Arc<Notify>,
}

impl Reconciler {
    /// Returns a reconciler that removes a trigger `linger` after it was marked `deleting`;
    /// call [`Reconciler::run`].
    pub fn new(store: TriggerStore, linger: Duration) -> Self {
        Self {
            store,
            linger,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks for a sweep soon: a trigger was marked `deleting`.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sweeps forever: whenever woken (once the linger has passed) and every linger.
    pub async fn run(self) {
        loop {
            if let Err(error) = self.sweep().await {
                tracing::warn!(%error, "trigger sweep failed; retrying");
            }
            tokio::select! {
                () = self.wake.notified() => tokio::time::sleep(self.linger).await,
                () = tokio::time::sleep(self.linger) => {}
            }
            // A little past the linger, so that what woke the sweep is old enough.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes the triggers `deleting` for longer than the linger.
    pub async fn sweep(&self) -> Result<(), ApiError> {
        let linger = i64::try_from(self.linger.as_micros()).unwrap_or(i64::MAX);
        for id in self.store.deleting_before(now_micros() - linger, BATCH).await? {
            if self.store.remove_deleted(id).await? {
                tracing::info!(trigger_id = %id, "trigger deleted");
            }
        }
        Ok(())
    }
}
