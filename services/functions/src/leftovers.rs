//! What a deleted function leaves of its own: its source archive and its deployments, removed
//! by the shared reconciler once its crons, instances and logs are gone.

use crate::archives::Archives;
use crate::deployments::DeploymentStore;
use nuage_applications::Leftovers;
use nuage_core::ApiError;
use uuid::Uuid;

/// A function's archive and deployments.
#[derive(Debug, Clone)]
pub struct FunctionLeftovers {
    /// Where archives are.
    pub archives: Archives,
    /// Where deployments are.
    pub deployments: DeploymentStore,
}

impl Leftovers for FunctionLeftovers {
    async fn remove(&self, id: Uuid) -> Result<(), ApiError> {
        // One that was never given an upload URL has no archive: no call to the store.
        if self.deployments.may_have_archive(id).await? {
            self.archives.delete(id).await?;
        }
        self.deployments.remove_for(id).await
    }
}
