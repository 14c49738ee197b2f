//! The containers gRPC service: each RPC parses, calls the shared applications layer, and maps.
//! What only containers have is their image, checked here.

use crate::model::{Container, ContainerKind, Settings, check_image, foreign_repository, not_owned};
use nuage_applications::{Applications, SUCCEEDED, answer, requested};
use nuage_core::{ApiError, Caller};
use nuage_proto::applications::v1 as wire;
use nuage_proto::containers::v1::containers_server::Containers;
use nuage_proto::namespaces::v1::Namespace;
use tonic::{Request, Response, Status};

/// Containers as the shared applications layer keeps them; they leave nothing of their own.
pub type ContainerApplications = Applications<ContainerKind, ()>;

/// Serves `nuage.containers.v1.Containers`.
#[derive(Debug, Clone)]
pub struct ContainersService {
    applications: ContainerApplications,
    /// Requests one instance takes at once, when a container does not say.
    concurrency: u32,
}

impl ContainersService {
    /// Returns a service over `applications`, whose instances take `concurrency` requests at
    /// once unless a container says otherwise.
    pub fn new(applications: ContainerApplications, concurrency: u32) -> Self {
        Self {
            applications,
            concurrency: concurrency.max(1),
        }
    }

    /// Returns the containers it serves (to run their reconciler and endpoint moves).
    pub fn applications(&self) -> &ContainerApplications {
        &self.applications
    }

    /// Returns the caller's container `id` (for a change) and its namespace, which must be
    /// ready.
    async fn with_namespace(
        &self,
        caller: &Caller,
        region: &str,
        id: &str,
    ) -> Result<(Container, Namespace), ApiError> {
        let container = self.applications.get(caller, region, id, true).await?;
        let namespace = self
            .applications
            .ready_namespace(caller, &container.region, &container.namespace_id.to_string())
            .await?;
        Ok((container, namespace))
    }

    /// Checks that `image`, when it is in the installation's own registry, is in the repository
    /// of `namespace` or of another of `owner`'s namespaces in `region`: never another tenant's.
    async fn check_image_owned(
        &self,
        owner: &Caller,
        region: &str,
        image: &str,
        namespace: &Namespace,
    ) -> Result<(), ApiError> {
        let Some(repository) = foreign_repository(image, namespace) else {
            return Ok(());
        };
        if self.applications.owns_repository(owner, region, &repository).await? {
            return Ok(());
        }
        Err(not_owned(image, namespace))
    }

    /// Makes `container` `pending` and rolls its image out in the background; `namespace` is
    /// the one the deploy read, if it did.
    async fn deploy(&self, container: &Container, namespace: Option<Namespace>) -> Result<Container, ApiError> {
        // Its image may have changed since it was made: it must still be its namespace's to run.
        let owner = Caller {
            organization_id: container.organization_id,
            project_id: container.project_id,
        };
        let namespace = match namespace {
            Some(namespace) => namespace,
            None => {
                self.applications
                    .ready_namespace(&owner, &container.region, &container.namespace_id.to_string())
                    .await?
            }
        };
        self.check_image_owned(&owner, &container.region, &container.kind.registry_image, &namespace)
            .await?;
        let namespace = Some(namespace);
        let (id, image) = (container.id, container.kind.registry_image.clone());
        // Nothing to build: the deployment has its image at once, pinned to its digest once
        // it serves (a tag pushed again later does not change what a rollback to it runs).
        let version = self
            .applications
            .history()
            .insert((id, container.organization_id), SUCCEEDED, &image)
            .await?;
        let pending = self.applications.mark_pending(container).await?;
        let applications = self.applications.clone();
        tokio::spawn(async move {
            applications.roll_out(id, namespace, &version.to_string(), &image).await;
        });
        Ok(pending)
    }
}

#[tonic::async_trait]
impl Containers for ContainersService {
    nuage_applications::shared_rpcs! {
        get: get_container,
        list: list_containers,
        delete: delete_container,
        list_deployments: list_container_deployments,
        rollback: rollback_container,
        delete_namespace: delete_namespace_containers,
    }

    async fn create_container(
        &self,
        request: Request<wire::CreateApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let settings = self.applications.check_new(requested(&request)?)?;
        let registry_image = request.registry_image.filter(|image| !image.is_empty());
        if let Some(image) = &registry_image {
            check_image(image)?;
            let namespace = self
                .applications
                .ready_namespace(&caller, &request.region, &settings.namespace_id.to_string())
                .await?;
            self.check_image_owned(&caller, &request.region, image, &namespace)
                .await?;
        }
        let mut container_settings = Settings::with_concurrency(self.concurrency);
        if let Some(changes) = request.container {
            container_settings.apply(changes)?;
        }
        // Without an image of its own, it runs the one pushed to its namespace's registry.
        let name = request.name;
        let kind = |namespace: &Namespace| {
            let registry_image =
                registry_image.unwrap_or_else(|| format!("{}/{name}:latest", namespace.registry_endpoint));
            Ok(ContainerKind {
                registry_image,
                settings: container_settings,
            })
        };
        let container = self
            .applications
            .create(
                &caller,
                &request.region,
                settings,
                request.description,
                request.privacy,
                kind,
            )
            .await?;
        Ok(answer(container))
    }

    async fn update_container(
        &self,
        request: Request<wire::UpdateApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let image = request.registry_image.clone().filter(|image| !image.is_empty());
        if let Some(image) = &image {
            // A new image must be its namespace's to run, checked before it is stored.
            let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
            let (container, namespace) = self
                .with_namespace(&caller, &request.region, &request.application_id)
                .await?;
            check_image(image)?;
            self.check_image_owned(&caller, &container.region, image, &namespace)
                .await?;
        }
        let settings = request.container.clone();
        let (_, stored) = self
            .applications
            .update_from(&request, |kind| {
                if let Some(image) = &image {
                    check_image(image)?;
                    kind.registry_image = image.clone();
                }
                if let Some(changes) = &settings {
                    kind.settings.apply(changes.clone())?;
                }
                Ok(())
            })
            .await?;
        // A change to a deployed container redeploys it, unless the client said not to.
        if stored.redeploy_due && request.redeploy != Some(false) {
            return Ok(answer(self.deploy(&stored, None).await?));
        }
        Ok(answer(stored))
    }

    async fn deploy_container(
        &self,
        request: Request<wire::GetApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let (container, namespace) = self
            .with_namespace(&caller, &request.region, &request.application_id)
            .await?;
        Ok(answer(self.deploy(&container, Some(namespace)).await?))
    }
}
