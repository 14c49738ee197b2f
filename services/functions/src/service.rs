//! The functions gRPC service: each RPC validates, calls the store, maps.

use crate::archives::{Archives, Presigned};
use crate::deployments::{BuildResult, DeploymentStore};
use crate::model::Function;
use crate::reconciler::Reconciler;
use crate::runtimes::{Runtimes, check_handler, default_handler};
use crate::store::{FunctionStore, ListFilter};
use nuage_core::application::{
    self, ApplicationStatus, ApplicationsConfig, DEFAULT_MAX_SCALE, DEFAULT_MEMORY_LIMIT, DEFAULT_MIN_SCALE,
    DEFAULT_TIMEOUT_MS, Privacy,
};
use nuage_core::application::{RouteStream, route_stream};
use nuage_core::clock::now_micros;
use nuage_core::error::Reason;
use nuage_core::ids::parse_id;
use nuage_core::transport::Authed;
use nuage_core::{ApiError, Caller, Page};
use nuage_proto::builder::v1::SubmitBuildRequest;
use nuage_proto::builder::v1::builder_client::BuilderClient;
use nuage_proto::common::v1 as common;
use nuage_proto::crons::v1::crons_client::CronsClient;
use nuage_proto::functions::v1::{self as pb, functions_server::Functions};
use nuage_proto::namespaces::v1::Namespace;
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::runner::v1::{DeployRequest, Kind, Spec};
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The services functions calls.
#[derive(Debug, Clone)]
pub struct Peers {
    /// To check that a namespace exists, is the caller's and is ready.
    pub namespaces: NamespacesClient<Authed>,
    /// To delete a deleted function's crons.
    pub crons: CronsClient<Authed>,
    /// To build deployed functions.
    pub builder: BuilderClient<Authed>,
    /// To run built ones.
    pub runner: RunnerClient<Authed>,
    /// To give them their namespace's public key.
    pub tokens: TokensClient<Authed>,
}

/// Serves `nuage.functions.v1.Functions`.
#[derive(Debug, Clone)]
pub struct FunctionsService {
    store: FunctionStore,
    reconciler: Reconciler,
    peers: Peers,
    runtimes: Runtimes,
    applications: ApplicationsConfig,
    archives: Archives,
    deployments: DeploymentStore,
    route_changes: broadcast::Sender<common::Route>,
}

impl FunctionsService {
    /// Returns a service over `store` offering `runtimes`.
    pub fn new(
        store: FunctionStore,
        reconciler: Reconciler,
        peers: Peers,
        runtimes: Runtimes,
        applications: ApplicationsConfig,
        archives: Archives,
        deployments: DeploymentStore,
    ) -> Self {
        Self {
            store,
            reconciler,
            peers,
            runtimes,
            applications,
            archives,
            deployments,
            route_changes: broadcast::channel(1024).0,
        }
    }

    /// Tells routers that `function` changed.
    fn changed(&self, function: &Function) {
        let _ = self.route_changes.send(route(function));
    }

    /// Moves functions made before endpoint suffixes existed to their namespace's endpoint, and
    /// tells routers. Runs at start-up, trying again (less and less often) until every
    /// namespace has its suffix and the namespaces service answers.
    pub async fn move_old_endpoints(self) {
        let mut wait = std::time::Duration::from_secs(1);
        while let Err(error) = self.move_endpoints_once().await {
            tracing::warn!(%error, "cannot move old endpoints yet; trying again");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(30));
        }
    }

    async fn move_endpoints_once(&self) -> Result<(), ApiError> {
        let functions = self.store.all().await?;
        let addressed: Vec<application::Addressed<'_>> = functions
            .iter()
            .filter(|function| function.status != ApplicationStatus::Deleting)
            .map(|function| application::Addressed {
                id: function.id,
                organization_id: function.organization_id,
                project_id: function.project_id,
                region: &function.region,
                namespace_id: function.namespace_id,
                name: &function.name,
                endpoint: &function.endpoint,
            })
            .collect();
        let moved = self
            .applications
            .moved_endpoints(&self.peers.namespaces, &addressed)
            .await?;
        for (id, from, to) in moved {
            if let Some(function) = self.store.set_endpoint(id, &from, &to).await? {
                tracing::info!(function_id = %id, endpoint = %to, "endpoint moved to its namespace's form");
                self.changed(&function);
            }
        }
        Ok(())
    }

    /// Hands the built image of deployment `deployment_id` to the runner, which answers once an
    /// instance of it answered; then the function is `ready`, or in `error` with why.
    async fn roll_out(&self, function_id: Uuid, deployment_id: Uuid, image: &str) {
        let outcome = match self.store.get_any(function_id).await {
            Ok(function) => self.spec(&function, deployment_id, image).await,
            Err(error) => Err(error.message),
        };
        let outcome = match outcome {
            Ok(spec) => self
                .peers
                .runner
                .clone()
                .deploy(DeployRequest { spec: Some(spec) })
                .await
                .map(|_| ())
                .map_err(|status| status.message().to_owned()),
            Err(message) => Err(message),
        };
        // A newer deployment may have started meanwhile: only the newest sets the status.
        match self.deployments.is_newest(deployment_id, function_id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%function_id, %error, "cannot tell whether a deployment is the newest");
                return;
            }
        }
        let (status, message) = match outcome {
            Ok(()) => (ApplicationStatus::Ready, String::new()),
            Err(message) => (
                ApplicationStatus::Error,
                format!("the new version did not start: {message}"),
            ),
        };
        if let Err(error) = self.store.set_status(function_id, status, &message).await {
            tracing::warn!(%function_id, %error, "cannot record the end of a deployment");
        }
        tracing::info!(%function_id, %deployment_id, status = status.as_str(), "deployment finished");
    }

    /// What the runner runs for `function`: its image and environment.
    async fn spec(&self, function: &Function, deployment_id: Uuid, image: &str) -> Result<Spec, String> {
        let runnable = application::Runnable {
            organization_id: function.organization_id,
            project_id: function.project_id,
            region: &function.region,
            namespace_id: function.namespace_id,
            id: function.id,
            name: &function.name,
            memory_limit: function.memory_limit,
            privacy: function.privacy,
            variables: &function.environment_variables,
        };
        let version = deployment_id.to_string();
        let environment =
            application::runtime_environment(&self.peers.namespaces, &self.peers.tokens, &runnable, &version).await?;
        Ok(Spec {
            application_id: function.id.to_string(),
            version,
            kind: Kind::Function.into(),
            image: image.to_owned(),
            environment,
            memory_limit_mb: function.memory_limit,
            cpu_limit_mcpu: application::cpu_limit(function.memory_limit).unwrap_or_default(),
            port: 0,
        })
    }

    /// Records a deployment of `function`, makes it `pending` and queues its build.
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
        let namespace = self
            .ready_namespace(caller, &function.region, &function.namespace_id.to_string())
            .await?;
        let deployment_id = self.deployments.insert(function.id, function.organization_id).await?;
        let pending = self
            .store
            .set_status(function.id, ApplicationStatus::Pending, "")
            .await?
            .ok_or_else(|| ApiError::transient_state("function", function.id.to_string(), "deleting"))?;
        let repository = namespace
            .registry_endpoint
            .split_once('/')
            .map_or(namespace.registry_endpoint.as_str(), |(_, path)| path)
            .to_owned();
        let request = SubmitBuildRequest {
            deployment_id: deployment_id.to_string(),
            function_id: function.id.to_string(),
            organization_id: function.organization_id.to_string(),
            namespace_id: function.namespace_id.to_string(),
            runtime: function.runtime.clone(),
            handler: function.handler.clone(),
            archive_key: Archives::key(function.id),
            repository: format!("{repository}/{}", function.name),
        };
        if let Err(status) = self.peers.builder.clone().submit_build(request).await {
            let error = ApiError::from_peer("builder", &status);
            self.store
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

    /// Returns the caller's namespace `namespace_id` once it is ready.
    async fn ready_namespace(&self, caller: &Caller, region: &str, namespace_id: &str) -> Result<Namespace, ApiError> {
        self.applications
            .ready_namespace(&self.peers.namespaces, caller, region, namespace_id, "functions")
            .await
    }
}

fn handler_error(help: String) -> ApiError {
    ApiError::invalid_argument("handler", Reason::Format, help)
}

fn to_proto(function: Function) -> pb::Function {
    pb::Function {
        id: function.id.to_string(),
        name: function.name,
        namespace_id: function.namespace_id.to_string(),
        status: function.status.to_proto() as i32,
        environment_variables: function.environment_variables.into_iter().collect(),
        min_scale: function.min_scale,
        max_scale: function.max_scale,
        runtime: function.runtime,
        cpu_limit: application::cpu_limit(function.memory_limit).unwrap_or_default(),
        memory_limit: function.memory_limit,
        endpoint: function.endpoint,
        timeout_ms: function.timeout_ms,
        handler: function.handler,
        error_message: function.error_message,
        privacy: function.privacy.to_proto() as i32,
        description: function.description,
        region: function.region,
        organization_id: function.organization_id.to_string(),
        project_id: function.project_id.to_string(),
        redeploy_due: function.redeploy_due,
        created_at: function.created_at,
        updated_at: function.updated_at,
    }
}

fn presigned(presigned: Presigned) -> Response<pb::PresignedUrl> {
    Response::new(pb::PresignedUrl {
        url: presigned.url,
        headers: presigned.headers,
    })
}

/// What the router needs of `function`.
fn route(function: &Function) -> common::Route {
    common::Route {
        application_id: function.id.to_string(),
        namespace_id: function.namespace_id.to_string(),
        endpoint: function.endpoint.clone(),
        status: function.status.to_proto().into(),
        error_message: function.error_message.clone(),
        privacy: function.privacy.to_proto().into(),
        timeout_ms: function.timeout_ms,
        min_scale: function.min_scale,
        max_scale: function.max_scale,
        concurrency: 1,
    }
}

fn answer(function: Function) -> Response<pb::FunctionResponse> {
    Response::new(pb::FunctionResponse {
        function: Some(to_proto(function)),
    })
}

#[tonic::async_trait]
impl Functions for FunctionsService {
    async fn create_function(
        &self,
        request: Request<pb::CreateFunctionRequest>,
    ) -> Result<Response<pb::FunctionResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        if request.namespace_id.is_empty() {
            return Err(ApiError::invalid_argument("namespace_id", Reason::Required, "is required").into());
        }
        let namespace_id = parse_id("namespace_id", &request.namespace_id)?;
        if request.name.is_empty() {
            return Err(ApiError::invalid_argument("name", Reason::Required, "is required").into());
        }
        if request.runtime.is_empty() {
            return Err(ApiError::invalid_argument("runtime", Reason::Required, "is required").into());
        }
        if !self.runtimes.contains(&request.runtime) {
            return Err(ApiError::invalid_argument(
                "runtime",
                Reason::Constraint,
                format!(
                    "`{}` is not a runtime of this installation; GET /runtimes lists them: {}",
                    request.runtime,
                    self.runtimes.names().join(", ")
                ),
            )
            .into());
        }
        let environment_variables = application::environment(request.environment_variables)?.unwrap_or_default();
        let memory_limit = request.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT);
        application::cpu_limit(memory_limit)?;
        let min_scale = request.min_scale.unwrap_or(DEFAULT_MIN_SCALE);
        let max_scale = request.max_scale.unwrap_or(DEFAULT_MAX_SCALE.max(min_scale));
        self.applications.check_scale(min_scale, max_scale)?;
        let timeout_ms = request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        application::check_timeout(timeout_ms)?;
        let handler = request
            .handler
            .filter(|handler| !handler.is_empty())
            .unwrap_or_else(|| default_handler(&request.runtime).to_owned());
        check_handler(&request.runtime, &handler).map_err(handler_error)?;
        let description = request.description.unwrap_or_default();
        application::check_description(&description)?;
        let privacy = Privacy::from_proto(request.privacy).unwrap_or_default();
        let namespace = self
            .ready_namespace(&caller, &request.region, &request.namespace_id)
            .await?;
        application::check_name(&request.name, &namespace.name)?;
        let now = now_micros();
        let function = Function {
            id: uuid::Uuid::new_v4(),
            organization_id: caller.organization_id,
            project_id: caller.project_id,
            endpoint: self.applications.endpoint(&namespace, &request.name)?,
            region: request.region,
            namespace_id,
            name: request.name,
            description,
            environment_variables,
            min_scale,
            max_scale,
            runtime: request.runtime,
            memory_limit,
            timeout_ms,
            handler,
            privacy,
            status: ApplicationStatus::Created,
            error_message: String::new(),
            redeploy_due: false,
            created_at: now,
            updated_at: now,
        };
        self.store.insert(&function).await?;
        Ok(answer(function))
    }

    async fn get_function(
        &self,
        request: Request<pb::GetFunctionRequest>,
    ) -> Result<Response<pb::FunctionResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("function_id", &request.function_id)?;
        Ok(answer(self.store.get(&caller, &request.region, id).await?))
    }

    async fn list_functions(
        &self,
        request: Request<pb::ListFunctionsRequest>,
    ) -> Result<Response<pb::ListFunctionsResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let page = Page::new(request.page, request.page_size)?;
        let filter = ListFilter {
            namespace_id: request
                .namespace_id
                .as_deref()
                .filter(|id| !id.is_empty())
                .map(|id| parse_id("namespace_id", id))
                .transpose()?,
            name: request.name.filter(|name| !name.is_empty()),
        };
        let (functions, total_count) = self
            .store
            .list(&caller, &request.region, &filter, request.order_by, page)
            .await?;
        Ok(Response::new(pb::ListFunctionsResponse {
            functions: functions.into_iter().map(to_proto).collect(),
            total_count,
        }))
    }

    async fn update_function(
        &self,
        request: Request<pb::UpdateFunctionRequest>,
    ) -> Result<Response<pb::FunctionResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("function_id", &request.function_id)?;
        let environment_variables = application::environment(request.environment_variables)?;
        if let Some(memory_limit) = request.memory_limit {
            application::cpu_limit(memory_limit)?;
        }
        if let Some(timeout_ms) = request.timeout_ms {
            application::check_timeout(timeout_ms)?;
        }
        if let Some(description) = &request.description {
            application::check_description(description)?;
        }
        // Optimistic: re-read and re-apply if someone else wrote in between.
        for _ in 0..3 {
            let current = self.store.get(&caller, &request.region, id).await?;
            if current.status == ApplicationStatus::Deleting {
                return Err(ApiError::transient_state("function", id.to_string(), "deleting").into());
            }
            let mut next = current.clone();
            if let Some(variables) = &environment_variables {
                next.environment_variables = variables.clone();
            }
            next.min_scale = request.min_scale.unwrap_or(next.min_scale);
            next.max_scale = request.max_scale.unwrap_or(next.max_scale);
            self.applications.check_scale(next.min_scale, next.max_scale)?;
            next.memory_limit = request.memory_limit.unwrap_or(next.memory_limit);
            next.timeout_ms = request.timeout_ms.unwrap_or(next.timeout_ms);
            if let Some(handler) = request.handler.as_ref().filter(|handler| !handler.is_empty()) {
                check_handler(&next.runtime, handler).map_err(handler_error)?;
                next.handler = handler.clone();
            }
            next.privacy = Privacy::from_proto(request.privacy).unwrap_or(next.privacy);
            if let Some(description) = &request.description {
                next.description = description.clone();
            }
            let changed = next != current;
            let deployed = current.status != ApplicationStatus::Created;
            next.redeploy_due = current.redeploy_due || (changed && deployed && request.redeploy != Some(false));
            next.updated_at = now_micros();
            if let Some(stored) = self.store.update(&next, current.updated_at).await? {
                self.changed(&stored);
                // A change to a deployed function redeploys it, unless the client said not to.
                if stored.redeploy_due && request.redeploy != Some(false) && self.archives.exists(id).await? {
                    return Ok(answer(self.deploy(&caller, &stored).await?));
                }
                return Ok(answer(stored));
            }
        }
        Err(ApiError::transient_state("function", id.to_string(), "updating").into())
    }

    async fn delete_function(
        &self,
        request: Request<pb::GetFunctionRequest>,
    ) -> Result<Response<pb::FunctionResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("function_id", &request.function_id)?;
        let function = self.store.mark_deleting(&caller, &request.region, id).await?;
        self.changed(&function);
        self.reconciler.wake();
        Ok(answer(function))
    }

    async fn list_runtimes(
        &self,
        _request: Request<pb::ListRuntimesRequest>,
    ) -> Result<Response<pb::ListRuntimesResponse>, Status> {
        Ok(Response::new(pb::ListRuntimesResponse {
            runtimes: self.runtimes.names().to_vec(),
        }))
    }

    async fn deploy_function(
        &self,
        request: Request<pb::GetFunctionRequest>,
    ) -> Result<Response<pb::FunctionResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("function_id", &request.function_id)?;
        let function = self.store.get(&caller, &request.region, id).await?;
        if function.status == ApplicationStatus::Deleting {
            return Err(ApiError::transient_state("function", id.to_string(), "deleting").into());
        }
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
        let newest = self.deployments.finish(deployment_id, function_id, &result).await?;
        if newest && result.succeeded {
            // `ready` once an instance of the new image answered; the builder need not wait.
            let service = self.clone();
            tokio::spawn(async move {
                service
                    .roll_out(function_id, deployment_id, &result.image_reference)
                    .await;
            });
        } else if newest {
            self.store
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
        let id = parse_id("function_id", &request.function_id)?;
        let function = self.store.get(&caller, &request.region, id).await?;
        if function.status == ApplicationStatus::Deleting {
            return Err(ApiError::transient_state("function", id.to_string(), "deleting").into());
        }
        Ok(presigned(self.archives.upload_url(id, request.content_length).await?))
    }

    async fn get_download_url(
        &self,
        request: Request<pb::GetFunctionRequest>,
    ) -> Result<Response<pb::PresignedUrl>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("function_id", &request.function_id)?;
        self.store.get(&caller, &request.region, id).await?;
        Ok(presigned(self.archives.download_url(id).await?))
    }

    async fn list_routes(
        &self,
        _request: Request<common::ListRoutesRequest>,
    ) -> Result<Response<common::ListRoutesResponse>, Status> {
        let routes = self
            .store
            .all()
            .await?
            .into_iter()
            .map(|function| route(&function))
            .collect();
        Ok(Response::new(common::ListRoutesResponse { routes }))
    }

    type WatchRoutesStream = RouteStream;

    async fn watch_routes(
        &self,
        _request: Request<common::ListRoutesRequest>,
    ) -> Result<Response<Self::WatchRoutesStream>, Status> {
        Ok(Response::new(route_stream(&self.route_changes)))
    }

    async fn delete_namespace_functions(
        &self,
        request: Request<pb::DeleteNamespaceFunctionsRequest>,
    ) -> Result<Response<pb::DeleteNamespaceFunctionsResponse>, Status> {
        let request = request.into_inner();
        let organization_id = parse_id("organization_id", &request.organization_id)?;
        let namespace_id = parse_id("namespace_id", &request.namespace_id)?;
        let remaining = self
            .store
            .mark_namespace_deleting(organization_id, namespace_id)
            .await?;
        if remaining > 0 {
            self.reconciler.wake();
        }
        Ok(Response::new(pb::DeleteNamespaceFunctionsResponse { remaining }))
    }
}
