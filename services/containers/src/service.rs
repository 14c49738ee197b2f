//! The containers gRPC service: each RPC validates, calls the store, maps.

use crate::config::ContainersConfig;
use crate::model::Container;
use crate::reconciler::Reconciler;
use crate::store::{ContainerStore, ListFilter};
use nuage_core::application::{
    self, ApplicationStatus, ApplicationsConfig, DEFAULT_MAX_SCALE, DEFAULT_MEMORY_LIMIT, DEFAULT_MIN_SCALE,
    DEFAULT_TIMEOUT_MS, Privacy,
};
use nuage_core::clock::now_micros;
use nuage_core::error::Reason;
use nuage_core::ids::parse_id;
use nuage_core::transport::Authed;
use nuage_core::{ApiError, Caller, Page};
use nuage_proto::common::v1 as common;
use nuage_proto::containers::v1::{self as pb, containers_server::Containers};
use nuage_proto::crons::v1::crons_client::CronsClient;
use nuage_proto::namespaces::v1::Namespace;
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::runner::v1::{DeployRequest, Kind, Spec};
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The services containers calls.
#[derive(Debug, Clone)]
pub struct Peers {
    /// To check that a namespace exists, is the caller's and is ready.
    pub namespaces: NamespacesClient<Authed>,
    /// To delete a deleted container's crons.
    pub crons: CronsClient<Authed>,
    /// To run deployed containers.
    pub runner: RunnerClient<Authed>,
    /// To give them their namespace's public key.
    pub tokens: TokensClient<Authed>,
}

/// Serves `nuage.containers.v1.Containers`.
#[derive(Debug, Clone)]
pub struct ContainersService {
    store: ContainerStore,
    reconciler: Reconciler,
    peers: Peers,
    applications: ApplicationsConfig,
    concurrency: u32,
    /// The newest roll-out of each container: an older one that ends later changes nothing.
    latest: Arc<Mutex<HashMap<Uuid, String>>>,
    route_changes: tokio::sync::broadcast::Sender<common::Route>,
}

impl ContainersService {
    /// Returns a service over `store`.
    pub fn new(
        store: ContainerStore,
        reconciler: Reconciler,
        peers: Peers,
        applications: ApplicationsConfig,
        config: &ContainersConfig,
    ) -> Self {
        Self {
            store,
            reconciler,
            peers,
            applications,
            concurrency: config.concurrency.max(1),
            latest: Arc::default(),
            route_changes: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Returns the caller's namespace `namespace_id` once it is ready.
    async fn ready_namespace(&self, caller: &Caller, region: &str, namespace_id: &str) -> Result<Namespace, ApiError> {
        self.applications
            .ready_namespace(&self.peers.namespaces, caller, region, namespace_id, "containers")
            .await
    }
}

/// Checks that `image` parses as an image reference (`[registry/]repository[:tag][@digest]`).
fn check_image(image: &str) -> Result<(), ApiError> {
    image
        .parse::<oci_spec::distribution::Reference>()
        .map(drop)
        .map_err(|error| {
            ApiError::invalid_argument(
                "registry_image",
                Reason::Format,
                format!("`{image}` is not an image reference such as `registry.example.com/team/app:1.0`: {error}"),
            )
        })
}

impl ContainersService {
    /// What the router needs of `container`.
    fn route(&self, container: &Container) -> common::Route {
        common::Route {
            application_id: container.id.to_string(),
            namespace_id: container.namespace_id.to_string(),
            endpoint: container.endpoint.clone(),
            status: container.status.to_proto().into(),
            error_message: container.error_message.clone(),
            privacy: container.privacy.to_proto().into(),
            timeout_ms: container.timeout_ms,
            min_scale: container.min_scale,
            max_scale: container.max_scale,
            concurrency: self.concurrency,
        }
    }

    /// Tells routers that `container` changed.
    fn changed(&self, container: &Container) {
        let _ = self.route_changes.send(self.route(container));
    }

    /// Moves containers made before endpoint suffixes existed to their namespace's endpoint, and
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
        let containers = self.store.all().await?;
        let addressed: Vec<application::Addressed<'_>> = containers
            .iter()
            .filter(|container| container.status != ApplicationStatus::Deleting)
            .map(|container| application::Addressed {
                id: container.id,
                organization_id: container.organization_id,
                project_id: container.project_id,
                region: &container.region,
                namespace_id: container.namespace_id,
                name: &container.name,
                endpoint: &container.endpoint,
            })
            .collect();
        let moved = self
            .applications
            .moved_endpoints(&self.peers.namespaces, &addressed)
            .await?;
        for (id, from, to) in moved {
            if let Some(container) = self.store.set_endpoint(id, &from, &to).await? {
                tracing::info!(container_id = %id, endpoint = %to, "endpoint moved to its namespace's form");
                self.changed(&container);
            }
        }
        Ok(())
    }

    /// Makes `container` `pending` and rolls its image out in the background.
    async fn deploy(&self, container: &Container) -> Result<Container, ApiError> {
        let pending = self
            .store
            .set_status(container.id, ApplicationStatus::Pending, "")
            .await?
            .ok_or_else(|| ApiError::transient_state("container", container.id.to_string(), "deleting"))?;
        let service = self.clone();
        let version = Uuid::new_v4().to_string();
        self.latest
            .lock()
            .expect("latest lock")
            .insert(container.id, version.clone());
        let deployed = pending.clone();
        tokio::spawn(async move { service.roll_out(deployed, version).await });
        Ok(pending)
    }

    /// Hands `container`'s image to the runner, which answers once an instance of it answered;
    /// then the container is `ready`, or in `error` with why.
    async fn roll_out(&self, container: Container, version: String) {
        let runnable = application::Runnable {
            organization_id: container.organization_id,
            project_id: container.project_id,
            region: &container.region,
            namespace_id: container.namespace_id,
            id: container.id,
            name: &container.name,
            memory_limit: container.memory_limit,
            privacy: container.privacy,
            variables: &container.environment_variables,
        };
        let outcome =
            match application::runtime_environment(&self.peers.namespaces, &self.peers.tokens, &runnable, &version)
                .await
            {
                Ok(environment) => {
                    let spec = Spec {
                        application_id: container.id.to_string(),
                        version: version.clone(),
                        kind: Kind::Container.into(),
                        image: container.registry_image.clone(),
                        environment,
                        memory_limit_mb: container.memory_limit,
                        cpu_limit_mcpu: application::cpu_limit(container.memory_limit).unwrap_or_default(),
                        port: 0,
                    };
                    self.peers
                        .runner
                        .clone()
                        .deploy(DeployRequest { spec: Some(spec) })
                        .await
                        .map(drop)
                        .map_err(|status| status.message().to_owned())
                }
                Err(message) => Err(message),
            };
        // A newer deploy may have started meanwhile: only the newest sets the status.
        if self.latest.lock().expect("latest lock").get(&container.id) != Some(&version) {
            return;
        }
        let (status, message) = match outcome {
            Ok(()) => (ApplicationStatus::Ready, String::new()),
            Err(message) => (
                ApplicationStatus::Error,
                format!("the container did not start: {message}"),
            ),
        };
        if let Err(error) = self.store.set_status(container.id, status, &message).await {
            tracing::warn!(container_id = %container.id, %error, "cannot record the end of a deployment");
        }
        tracing::info!(container_id = %container.id, status = status.as_str(), "container deployment finished");
    }
}

fn to_proto(container: Container) -> pb::Container {
    pb::Container {
        id: container.id.to_string(),
        name: container.name,
        namespace_id: container.namespace_id.to_string(),
        status: container.status.to_proto() as i32,
        environment_variables: container.environment_variables.into_iter().collect(),
        min_scale: container.min_scale,
        max_scale: container.max_scale,
        cpu_limit: application::cpu_limit(container.memory_limit).unwrap_or_default(),
        memory_limit: container.memory_limit,
        endpoint: container.endpoint,
        timeout_ms: container.timeout_ms,
        registry_image: container.registry_image,
        error_message: container.error_message,
        privacy: container.privacy.to_proto() as i32,
        description: container.description,
        region: container.region,
        organization_id: container.organization_id.to_string(),
        project_id: container.project_id.to_string(),
        redeploy_due: container.redeploy_due,
        created_at: container.created_at,
        updated_at: container.updated_at,
    }
}

fn answer(container: Container) -> Response<pb::ContainerResponse> {
    Response::new(pb::ContainerResponse {
        container: Some(to_proto(container)),
    })
}

#[tonic::async_trait]
impl Containers for ContainersService {
    async fn create_container(
        &self,
        request: Request<pb::CreateContainerRequest>,
    ) -> Result<Response<pb::ContainerResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        if request.namespace_id.is_empty() {
            return Err(ApiError::invalid_argument("namespace_id", Reason::Required, "is required").into());
        }
        let namespace_id = parse_id("namespace_id", &request.namespace_id)?;
        if request.name.is_empty() {
            return Err(ApiError::invalid_argument("name", Reason::Required, "is required").into());
        }
        let environment_variables = application::environment(request.environment_variables)?.unwrap_or_default();
        let memory_limit = request.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT);
        application::cpu_limit(memory_limit)?;
        let min_scale = request.min_scale.unwrap_or(DEFAULT_MIN_SCALE);
        let max_scale = request.max_scale.unwrap_or(DEFAULT_MAX_SCALE.max(min_scale));
        self.applications.check_scale(min_scale, max_scale)?;
        let timeout_ms = request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        application::check_timeout(timeout_ms)?;
        let registry_image = request.registry_image.filter(|image| !image.is_empty());
        if let Some(image) = &registry_image {
            check_image(image)?;
        }
        let description = request.description.unwrap_or_default();
        application::check_description(&description)?;
        let privacy = Privacy::from_proto(request.privacy).unwrap_or_default();
        let namespace = self
            .ready_namespace(&caller, &request.region, &request.namespace_id)
            .await?;
        application::check_name(&request.name, &namespace.name)?;
        let registry_image =
            registry_image.unwrap_or_else(|| format!("{}/{}:latest", namespace.registry_endpoint, request.name));
        let now = now_micros();
        let container = Container {
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
            memory_limit,
            timeout_ms,
            registry_image,
            privacy,
            status: ApplicationStatus::Created,
            error_message: String::new(),
            redeploy_due: false,
            created_at: now,
            updated_at: now,
        };
        self.store.insert(&container).await?;
        Ok(answer(container))
    }

    async fn get_container(
        &self,
        request: Request<pb::GetContainerRequest>,
    ) -> Result<Response<pb::ContainerResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("container_id", &request.container_id)?;
        Ok(answer(self.store.get(&caller, &request.region, id).await?))
    }

    async fn list_containers(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
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
        let (containers, total_count) = self
            .store
            .list(&caller, &request.region, &filter, request.order_by, page)
            .await?;
        Ok(Response::new(pb::ListContainersResponse {
            containers: containers.into_iter().map(to_proto).collect(),
            total_count,
        }))
    }

    async fn update_container(
        &self,
        request: Request<pb::UpdateContainerRequest>,
    ) -> Result<Response<pb::ContainerResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("container_id", &request.container_id)?;
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
                return Err(ApiError::transient_state("container", id.to_string(), "deleting").into());
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
            if let Some(image) = request.registry_image.as_ref().filter(|image| !image.is_empty()) {
                check_image(image)?;
                next.registry_image = image.clone();
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
                // A change to a deployed container redeploys it, unless the client said not to.
                if stored.redeploy_due && request.redeploy != Some(false) {
                    return Ok(answer(self.deploy(&stored).await?));
                }
                return Ok(answer(stored));
            }
        }
        Err(ApiError::transient_state("container", id.to_string(), "updating").into())
    }

    async fn deploy_container(
        &self,
        request: Request<pb::GetContainerRequest>,
    ) -> Result<Response<pb::ContainerResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("container_id", &request.container_id)?;
        let container = self.store.get(&caller, &request.region, id).await?;
        if container.status == ApplicationStatus::Deleting {
            return Err(ApiError::transient_state("container", id.to_string(), "deleting").into());
        }
        self.ready_namespace(&caller, &container.region, &container.namespace_id.to_string())
            .await?;
        Ok(answer(self.deploy(&container).await?))
    }

    async fn delete_container(
        &self,
        request: Request<pb::GetContainerRequest>,
    ) -> Result<Response<pb::ContainerResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("container_id", &request.container_id)?;
        let container = self.store.mark_deleting(&caller, &request.region, id).await?;
        self.changed(&container);
        self.reconciler.wake();
        Ok(answer(container))
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
            .map(|container| self.route(&container))
            .collect();
        Ok(Response::new(common::ListRoutesResponse { routes }))
    }

    type WatchRoutesStream = application::RouteStream;

    async fn watch_routes(
        &self,
        _request: Request<common::ListRoutesRequest>,
    ) -> Result<Response<Self::WatchRoutesStream>, Status> {
        Ok(Response::new(application::route_stream(&self.route_changes)))
    }

    async fn delete_namespace_containers(
        &self,
        request: Request<pb::DeleteNamespaceContainersRequest>,
    ) -> Result<Response<pb::DeleteNamespaceContainersResponse>, Status> {
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
        Ok(Response::new(pb::DeleteNamespaceContainersResponse { remaining }))
    }
}
