//! What a deleted function leaves of its own: its builds (jobs and images, which the builder
//! owns) and its source archive, removed by the shared reconciler once its crons, instances
//! and logs are gone (which then forgets its deployments, as any application's).

use crate::archive_records::ArchiveRecords;
use crate::archives::Archives;
use nuage_applications::Leftovers;
use nuage_core::transport::Authed;
use nuage_core::{ApiError, ErrorCode};
use nuage_proto::builder::v1::DeleteFunctionBuildsRequest;
use nuage_proto::builder::v1::builder_client::BuilderClient;
use uuid::Uuid;

/// A function's builds and archive.
#[derive(Debug, Clone)]
pub struct FunctionLeftovers {
    /// Owns builds.
    pub builder: BuilderClient<Authed>,
    /// Where archives are.
    pub archives: Archives,
    /// Which functions may have an archive.
    pub archive_records: ArchiveRecords,
}

impl Leftovers for FunctionLeftovers {
    async fn remove(&self, id: Uuid) -> Result<(), ApiError> {
        // Builds first: one still running reports to its deployment when it ends.
        let remaining = self
            .builder
            .clone()
            .delete_function_builds(DeleteFunctionBuildsRequest {
                function_id: id.to_string(),
            })
            .await
            .map_err(|status| ApiError::from_peer("builder", &status))?
            .into_inner()
            .remaining;
        if remaining > 0 {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("{remaining} build(s) of function `{id}` still running; deleting it once they end"),
            ));
        }
        // One that was never given an upload URL has no archive: no call to the store.
        if self.archive_records.may_have_archive(id).await? {
            self.archives.delete(id).await?;
        }
        self.archive_records.remove_for(id).await
    }
}

impl FunctionLeftovers {
    /// Every `every`, removes again the archive of each deleted function an upload URL may
    /// still write one for (a PUT after the delete), and forgets the function once that URL has
    /// expired: nothing is left in the store that no function owns.
    pub async fn sweep_late_uploads(self, every: std::time::Duration) {
        loop {
            tokio::time::sleep(every).await;
            if let Err(error) = self.sweep_once().await {
                tracing::warn!(%error, "cannot remove archives uploaded after their function was deleted");
            }
        }
    }

    async fn sweep_once(&self) -> Result<(), ApiError> {
        for (id, expired) in self.archive_records.deleted(100).await? {
            self.archives.delete(id).await?;
            if expired {
                self.archive_records.forget(id).await?;
            } else {
                self.archive_records.swept(id).await?;
            }
        }
        Ok(())
    }
}
