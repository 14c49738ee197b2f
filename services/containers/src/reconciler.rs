//! Converges containers out of their transient states. State lives in the database and every
//! step is idempotent, so a crash or two replicas sweeping at once are harmless.

use crate::store::ContainerStore;
use nuage_core::ApiError;
use nuage_core::application::ApplicationStatus;
use nuage_core::transport::Authed;
use nuage_proto::crons::v1::DeleteApplicationCronsRequest;
use nuage_proto::crons::v1::crons_client::CronsClient;
use nuage_proto::logs::v1::DeleteApplicationLogsRequest;
use nuage_proto::logs::v1::logs_client::LogsClient;
use nuage_proto::runner::v1::RemoveRequest;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How many containers one sweep handles.
const BATCH: i64 = 100;
/// How soon to sweep again while children are still being deleted.
const FOLLOW_UP: Duration = Duration::from_millis(200);

/// Removes `deleting` containers once their crons, instances and logs are gone.
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: ContainerStore,
    crons: CronsClient<Authed>,
    runner: RunnerClient<Authed>,
    logs: LogsClient<Authed>,
    interval: Duration,
    wake: Arc<Notify>,
}

impl Reconciler {
    /// Returns a reconciler that sweeps every `interval_seconds`; call [`Reconciler::run`].
    pub fn new(
        store: ContainerStore,
        crons: CronsClient<Authed>,
        runner: RunnerClient<Authed>,
        logs: LogsClient<Authed>,
        interval_seconds: u64,
    ) -> Self {
        Self {
            store,
            crons,
            runner,
            logs,
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
                    tracing::warn!(%error, "container sweep failed; retrying");
                    self.interval.min(Duration::from_secs(1))
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Handles every container being deleted once; returns whether some still wait on crons.
    pub async fn sweep(&self) -> Result<bool, ApiError> {
        let mut waiting = false;
        for container in self.store.in_status(ApplicationStatus::Deleting, BATCH).await? {
            let request = DeleteApplicationCronsRequest {
                organization_id: container.organization_id.to_string(),
                application_id: container.id.to_string(),
            };
            let remaining = self
                .crons
                .clone()
                .delete_application_crons(request)
                .await
                .map_err(|status| ApiError::from_status(&status))?
                .into_inner()
                .remaining;
            if remaining > 0 {
                waiting = true;
                continue;
            }
            self.runner
                .clone()
                .remove(RemoveRequest {
                    application_id: container.id.to_string(),
                })
                .await
                .map_err(|status| ApiError::from_status(&status))?;
            // Its logs go with it (lines still on their way are dropped by the logs service).
            self.logs
                .clone()
                .delete_application_logs(DeleteApplicationLogsRequest {
                    application_id: container.id.to_string(),
                })
                .await
                .map_err(|status| ApiError::from_status(&status))?;
            if self.store.remove_deleted(container.id).await? {
                tracing::info!(container_id = %container.id, "container deleted");
            }
        }
        Ok(waiting)
    }
}
