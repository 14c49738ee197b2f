//! The builder gRPC service: queues builds.

use crate::jobs::{Job, JobStore};
use crate::leftovers::BuildLeftovers;
use crate::worker::Worker;
use nuage_core::validate;
use nuage_proto::builder::v1::{self as pb, builder_server::Builder};
use tonic::{Request, Response, Status};

/// Serves `nuage.builder.v1.Builder`.
#[derive(Debug, Clone)]
pub struct BuilderService {
    jobs: JobStore,
    worker: Worker,
    leftovers: BuildLeftovers,
    /// Jobs of one organization that may wait in the queue.
    backlog: u32,
}

impl BuilderService {
    /// Returns a service that queues into `jobs`, at most `backlog` per organization, wakes
    /// `worker`, and removes deleted functions' builds with `leftovers`.
    pub fn new(jobs: JobStore, worker: Worker, leftovers: BuildLeftovers, backlog: u32) -> Self {
        Self {
            jobs,
            worker,
            leftovers,
            backlog,
        }
    }
}

#[tonic::async_trait]
impl Builder for BuilderService {
    async fn submit_build(
        &self,
        request: Request<pb::SubmitBuildRequest>,
    ) -> Result<Response<pb::SubmitBuildResponse>, Status> {
        let request = request.into_inner();
        for (name, value) in [
            ("deployment_id", &request.deployment_id),
            ("function_id", &request.function_id),
            ("archive_key", &request.archive_key),
            ("repository", &request.repository),
        ] {
            validate::required(name, value)?;
        }
        let job = Job {
            id: request.deployment_id,
            function_id: request.function_id,
            organization_id: request.organization_id,
            namespace_id: request.namespace_id,
            runtime: request.runtime,
            handler: request.handler,
            archive_key: request.archive_key,
            repository: request.repository,
            attempts: 0,
        };
        self.jobs.submit(&job, self.backlog).await?;
        self.worker.wake();
        Ok(Response::new(pb::SubmitBuildResponse {}))
    }

    async fn delete_function_builds(
        &self,
        request: Request<pb::DeleteFunctionBuildsRequest>,
    ) -> Result<Response<pb::DeleteFunctionBuildsResponse>, Status> {
        let function_id = nuage_core::ids::parse_id("function_id", &request.into_inner().function_id)?;
        let remaining = self.leftovers.remove(&function_id.to_string()).await?;
        Ok(Response::new(pb::DeleteFunctionBuildsResponse { remaining }))
    }
}
