//! The functions gRPC service: each RPC parses, calls the shared applications layer or what
//! only functions have (runtimes, archives, builds), and maps.

use crate::archive_records::ArchiveRecords;
use crate::archives::{Archives, Presigned};
use crate::leftovers::FunctionLeftovers;
use crate::model::{Function, FunctionKind};
use crate::runtimes::{Runtimes, check_handler, default_handler, describe};
use nuage_applications::{ApplicationStatus, Applications, BuildResult, answer, requested};
use nuage_core::error::Reason;
use nuage_core::ids::parse_id;
use nuage_core::transport::Authed;
use nuage_core::{ApiError, Caller, validate};
use nuage_proto::applications::v1 as wire;
use nuage_proto::builder::v1::SubmitBuildRequest;
use nuage_proto::builder::v1::builder_client::BuilderClient;
use nuage_proto::functions::v1::{self as pb, functions_server::Functions};
use nuage_proto::namespaces::v1::Namespace;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// How long a deployment's namespace is kept for its roll-out: past this, the build is taken to
/// have been reported elsewhere (or very late, and then the namespace is read again).
const KEEP_READ_NAMESPACE: Duration = Duration::from_secs(3600);

/// How long a deployment stays `queued` before its build is queued again, in case the process
/// that recorded it died before queuing it.
const LOST_BUILD_AFTER: Duration = Duration::from_secs(60);

/// Functions as the shared applications layer keeps them.
pub type FunctionApplications = Applications<FunctionKind, FunctionLeftovers>;

/// Serves `nuage.functions.v1.Functions`.
#[derive(Debug, Clone)]
pub struct FunctionsService {
    applications: FunctionApplications,
    builder: BuilderClient<Authed>,
    runtimes: Runtimes,
    archives: Archives,
    archive_records: ArchiveRecords,
    /// The namespace each deployment read when it was asked for (and when), until its build is
    /// reported: the roll-out runs with it rather than reading it again. A deployment this
    /// process did not start (another replica, a restart) reads it; one whose build was
    /// reported to another replica is forgotten after [`KEEP_READ_NAMESPACE`].
    read_at_deploy: Arc<Mutex<HashMap<Uuid, (Instant, Namespace)>>>,
}

impl FunctionsService {
    /// Returns a service over `applications` offering `runtimes`, building through `builder`.
    pub fn new(
        applications: FunctionApplications,
        builder: BuilderClient<Authed>,
        runtimes: Runtimes,
        archives: Archives,
        archive_records: ArchiveRecords,
    ) -> Self {
        Self {
            applications,
            builder,
            runtimes,
            archives,
            archive_records,
            read_at_deploy: Arc::default(),
        }
    }

    /// Returns the functions it serves (to run their reconciler and endpoint moves).
    pub fn applications(&self) -> &FunctionApplications {
        &self.applications
    }

    /// Records a deployment of `function`, makes it `pending` and queues its build, once its
    /// archive is known to exist.
    async fn deploy(&self, caller: &Caller, function: &Function) -> Result<Function, ApiError> {
        if !self.archives.exists(function.id).await? {
            return Err(ApiError {
                help_message: Some(
                    "no archive was uploaded for this function: GET its upload-url and PUT the zip there, then deploy"
                        .to_owned(),
                ),
                ..ApiError::new(
                    nuage_core::ErrorCode::FailedPrecondition,
                    "precondition is not respected",
                )
            });
        }
        self.deploy_archive(caller, function).await
    }

    /// Records a deployment of `function`, whose archive exists, makes it `pending` and queues
    /// its build.
    async fn deploy_archive(&self, caller: &Caller, function: &Function) -> Result<Function, ApiError> {
        let namespace = self
            .applications
            .ready_namespace(caller, &function.region, &function.namespace_id.to_string())
            .await?;
        let deployment_id = self
            .applications
            .history()
            .insert((function.id, function.organization_id), "queued", "")
            .await?;
        {
            let mut read = self.read_at_deploy.lock().expect("read_at_deploy lock");
            read.retain(|_, (at, _)| at.elapsed() < KEEP_READ_NAMESPACE);
            read.insert(deployment_id, (Instant::now(), namespace.clone()));
        }
        let pending = self.applications.mark_pending(function).await?;
        if let Err(status) = self.submit_build(function, deployment_id, &namespace).await {
            self.namespace_read_by(deployment_id);
            let error = ApiError::from_peer("builder", &status);
            if error.code == nuage_core::ErrorCode::ResourceExhausted {
                // The tenant's build queue is full: nothing changes, and it may deploy again.
                let refused = BuildResult {
                    error_message: error.message.clone(),
                    ..BuildResult::default()
                };
                self.applications
                    .history()
                    .finish(deployment_id, function.id, &refused)
                    .await?;
                self.applications
                    .store()
                    .set_status(function.id, function.status, &function.error_message)
                    .await?;
                return Err(error);
            }
            self.applications
                .store()
                .set_status(
                    function.id,
                    ApplicationStatus::Error,
                    "the build could not be queued; deploy again",
                )
                .await?;
            return Err(error);
        }
        Ok(pending)
    }

    /// Queues the build of deployment `deployment_id` of `function` in `namespace` (again is
    /// harmless).
    async fn submit_build(
        &self,
        function: &Function,
        deployment_id: Uuid,
        namespace: &Namespace,
    ) -> Result<(), Status> {
        let repository = namespace
            .registry_endpoint
            .split_once('/')
            .map_or(namespace.registry_endpoint.as_str(), |(_, path)| path);
        let request = SubmitBuildRequest {
            deployment_id: deployment_id.to_string(),
            function_id: function.id.to_string(),
            organization_id: function.organization_id.to_string(),
            namespace_id: function.namespace_id.to_string(),
            runtime: function.kind.runtime.clone(),
            handler: function.kind.handler.clone(),
            archive_key: Archives::key(function.id),
            repository: format!("{repository}/{}", function.name),
        };
        self.builder.clone().submit_build(request).await.map(drop)
    }

    /// Queues again, every `every`, the builds of `pending` functions whose newest deployment
    /// is still `queued` after [`LOST_BUILD_AFTER`]: the process that recorded it may have died
    /// before it queued the build (queuing again is harmless to one that was queued).
    pub async fn requeue_lost_builds(self, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            if let Err(error) = self.requeue_lost_builds_once().await {
                tracing::warn!(%error, "cannot look for lost builds");
            }
        }
    }

    async fn requeue_lost_builds_once(&self) -> Result<(), ApiError> {
        let pending = self
            .applications
            .store()
            .in_status(ApplicationStatus::Pending, 100)
            .await?;
        for function in pending {
            let Some(deployment_id) = self
                .applications
                .history()
                .queued_since(function.id, LOST_BUILD_AFTER)
                .await?
            else {
                continue;
            };
            let owner = Caller {
                organization_id: function.organization_id,
                project_id: function.project_id,
            };
            let requeued = match self
                .applications
                .ready_namespace(&owner, &function.region, &function.namespace_id.to_string())
                .await
            {
                Ok(namespace) => self
                    .submit_build(&function, deployment_id, &namespace)
                    .await
                    .map_err(|status| ApiError::from_peer("builder", &status)),
                Err(error) => Err(error),
            };
            match requeued {
                Ok(()) => tracing::info!(function_id = %function.id, %deployment_id, "queued a build again"),
                Err(error) => {
                    tracing::warn!(function_id = %function.id, %deployment_id, %error, "cannot queue a build again")
                }
            }
        }
        Ok(())
    }

    /// Returns (and forgets) the namespace deployment `deployment_id` read, if this process
    /// started it.
    fn namespace_read_by(&self, deployment_id: Uuid) -> Option<Namespace> {
        self.read_at_deploy
            .lock()
            .expect("read_at_deploy lock")
            .remove(&deployment_id)
            .map(|(_, namespace)| namespace)
    }

    /// Checks that `runtime` is given and is one of this installation's.
    fn check_runtime(&self, runtime: &str) -> Result<(), ApiError> {
        validate::required("runtime", runtime)?;
        if !self.runtimes.contains(runtime) {
            return Err(ApiError::invalid_argument(
                "runtime",
                Reason::Constraint,
                format!(
                    "`{runtime}` is not a runtime of this installation; GET /runtimes lists them: {}",
                    self.runtimes.names().join(", ")
                ),
            ));
        }
        Ok(())
    }
}

fn handler_error(help: String) -> ApiError {
    ApiError::invalid_argument("handler", Reason::Format, help)
}

fn presigned(presigned: Presigned) -> Response<pb::PresignedUrl> {
    Response::new(pb::PresignedUrl {
        url: presigned.url,
        headers: presigned.headers,
    })
}

#[tonic::async_trait]
impl Functions for FunctionsService {
    nuage_applications::shared_rpcs! {
        get: get_function,
        list: list_functions,
        delete: delete_function,
        list_deployments: list_function_deployments,
        rollback: rollback_function,
        delete_namespace: delete_namespace_functions,
    }

    async fn create_function(
        &self,
        request: Request<wire::CreateApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let requested = requested(&request)?;
        self.check_runtime(&request.runtime)?;
        let settings = self.applications.check_new(requested)?;
        let handler = request
            .handler
            .filter(|handler| !handler.is_empty())
            .unwrap_or_else(|| default_handler(&request.runtime).to_owned());
        check_handler(&request.runtime, &handler).map_err(handler_error)?;
        let kind = FunctionKind {
            runtime: request.runtime,
            handler,
        };
        let function = self
            .applications
            .create(
                &caller,
                &request.region,
                settings,
                request.description,
                request.privacy,
                |_| Ok(kind),
            )
            .await?;
        Ok(answer(function))
    }

    async fn update_function(
        &self,
        request: Request<wire::UpdateApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let handler = request.handler.clone().filter(|handler| !handler.is_empty());
        let (caller, stored) = self
            .applications
            .update_from(&request, |kind| {
                if let Some(handler) = &handler {
                    check_handler(&kind.runtime, handler).map_err(handler_error)?;
                    kind.handler = handler.clone();
                }
                Ok(())
            })
            .await?;
        // A change to a deployed function redeploys it, unless the client said not to.
        if stored.redeploy_due && request.redeploy != Some(false) && self.archives.exists(stored.id).await? {
            return Ok(answer(self.deploy_archive(&caller, &stored).await?));
        }
        Ok(answer(stored))
    }

    async fn list_runtimes(
        &self,
        _request: Request<pb::ListRuntimesRequest>,
    ) -> Result<Response<pb::ListRuntimesResponse>, Status> {
        let names = self.runtimes.names();
        Ok(Response::new(pb::ListRuntimesResponse {
            runtimes: names.to_vec(),
            details: names.iter().map(|name| describe(name)).collect(),
        }))
    }

    async fn deploy_function(
        &self,
        request: Request<wire::GetApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let function = self
            .applications
            .get(&caller, &request.region, &request.application_id, true)
            .await?;
        Ok(answer(self.deploy(&caller, &function).await?))
    }

    async fn report_build(
        &self,
        request: Request<pb::ReportBuildRequest>,
    ) -> Result<Response<pb::ReportBuildResponse>, Status> {
        let request = request.into_inner();
        let deployment_id = parse_id("deployment_id", &request.deployment_id)?;
        let function_id = parse_id("function_id", &request.function_id)?;
        let result = BuildResult {
            succeeded: request.succeeded,
            error_message: request.error_message,
            archive_digest: request.archive_digest,
            image_reference: request.image_reference,
            image_digest: request.image_digest,
        };
        let newest = self
            .applications
            .history()
            .finish(deployment_id, function_id, &result)
            .await?;
        if newest && result.succeeded {
            // `ready` once an instance of the new image answered; the builder need not wait.
            // The image is rolled out by the digest it was built as: the builder pushes it
            // into the namespace's repository, where the tenant may push too, and a tag
            // pushed again before the runner pins it must not change what runs (a wasm
            // function's precompiled component is loaded into the router as trusted code).
            let image = nuage_applications::at_digest(&result.image_reference, &result.image_digest);
            let (applications, namespace) = (self.applications.clone(), self.namespace_read_by(deployment_id));
            tokio::spawn(async move {
                applications
                    .roll_out(function_id, namespace, &deployment_id.to_string(), &image)
                    .await;
            });
        } else {
            // A failed or superseded build rolls nothing out.
            self.namespace_read_by(deployment_id);
        }
        if newest && !result.succeeded {
            self.applications
                .store()
                .set_status(function_id, ApplicationStatus::Error, &result.error_message)
                .await?;
            tracing::info!(%function_id, %deployment_id, "deployment failed to build");
        }
        Ok(Response::new(pb::ReportBuildResponse {}))
    }

    async fn get_upload_url(
        &self,
        request: Request<pb::GetUploadUrlRequest>,
    ) -> Result<Response<pb::PresignedUrl>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let function = self
            .applications
            .get(&caller, &request.region, &request.function_id, true)
            .await?;
        let valid_until = nuage_core::clock::now_micros()
            .saturating_add(i64::try_from(self.archives.ttl().as_micros()).unwrap_or(i64::MAX));
        self.archive_records.archive_requested(function.id, valid_until).await?;
        Ok(presigned(
            self.archives.upload_url(function.id, request.content_length).await?,
        ))
    }

    async fn get_download_url(
        &self,
        request: Request<wire::GetApplicationRequest>,
    ) -> Result<Response<pb::PresignedUrl>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let function = self
            .applications
            .get(&caller, &request.region, &request.application_id, false)
            .await?;
        Ok(presigned(self.archives.download_url(function.id).await?))
    }
}
