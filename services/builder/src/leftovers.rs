//! What the builds of a deleted function leave: their jobs and the images they wrote.

use crate::image::remove_image;
use crate::jobs::JobStore;
use nuage_core::ApiError;
use std::path::PathBuf;

/// Removes the builds of deleted functions from the queue and from the registry directory.
#[derive(Debug, Clone)]
pub struct BuildLeftovers {
    jobs: JobStore,
    registry: PathBuf,
}

impl BuildLeftovers {
    /// Returns what removes jobs from `jobs` and their images from the layouts under
    /// `registry`.
    pub fn new(jobs: JobStore, registry: PathBuf) -> Self {
        Self { jobs, registry }
    }

    /// Removes every job of `function_id` and its image, but those a worker is building;
    /// returns how many those are (their function asks again once they end). Removing what is
    /// already gone is not an error.
    pub async fn remove(&self, function_id: &str) -> Result<u64, ApiError> {
        let mut running = 0;
        for job in self.jobs.of_function(function_id).await? {
            if job.running {
                running += 1;
                continue;
            }
            // The image before the job: the job is what names the image, so a crash between
            // the two leaves the job, and the next call finds the image again.
            let (registry, repository, tag) = (self.registry.clone(), job.repository, job.id.clone());
            tokio::task::spawn_blocking(move || remove_image(&registry, &repository, &tag))
                .await
                .map_err(|error| ApiError::internal(&error))?
                .map_err(|error| ApiError::internal(&error))?;
            // Claimed meanwhile: its build runs, and the next call removes it.
            if !self.jobs.remove_unless_running(&job.id).await? {
                running += 1;
            }
        }
        if running == 0 {
            tracing::info!(function_id, "builds of a deleted function removed");
        }
        Ok(running)
    }
}
