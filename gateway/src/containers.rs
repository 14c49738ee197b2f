//! Containers: the shared application handlers over the containers service (`/containers`,
//! `/namespaces/{id}/containers`). A container has nothing the handlers of functions lack but
//! its image, which the shared handlers pass on; and, as functions, its deployment history.

use crate::GatewayState;
use crate::applications::Owner;
use axum::Router;
use nuage_core::transport::Authed;
use nuage_proto::applications::v1 as wire;
use nuage_proto::containers::v1::containers_client::ContainersClient;
use tonic::{Request, Response, Status};

/// The containers service, as the application handlers call it.
pub(crate) struct Containers;

impl Owner for Containers {
    const NOUN: &'static str = "container";
    const PLURAL: &'static str = "containers";
    const ID_PARAM: &'static str = "container_id";
    const FUNCTION: bool = false;
    type Client = ContainersClient<Authed>;

    fn client(state: &GatewayState) -> Self::Client {
        state.clients().containers.clone()
    }

    async fn create(
        mut client: Self::Client,
        request: Request<wire::CreateApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        client.create_container(request).await
    }

    async fn get(
        mut client: Self::Client,
        request: Request<wire::GetApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        client.get_container(request).await
    }

    async fn list(
        mut client: Self::Client,
        request: Request<wire::ListApplicationsRequest>,
    ) -> Result<Response<wire::ListApplicationsResponse>, Status> {
        client.list_containers(request).await
    }

    async fn update(
        mut client: Self::Client,
        request: Request<wire::UpdateApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        client.update_container(request).await
    }

    async fn delete(
        mut client: Self::Client,
        request: Request<wire::GetApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        client.delete_container(request).await
    }

    async fn deploy(
        mut client: Self::Client,
        request: Request<wire::GetApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        client.deploy_container(request).await
    }

    async fn list_deployments(
        mut client: Self::Client,
        request: Request<wire::ListDeploymentsRequest>,
    ) -> Result<Response<wire::ListDeploymentsResponse>, Status> {
        client.list_container_deployments(request).await
    }

    async fn rollback(
        mut client: Self::Client,
        request: Request<wire::RollbackRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        client.rollback_container(request).await
    }

    async fn create_domain(
        mut client: Self::Client,
        request: Request<wire::CreateDomainRequest>,
    ) -> Result<Response<wire::DomainResponse>, Status> {
        client.create_domain(request).await
    }

    async fn get_domain(
        mut client: Self::Client,
        request: Request<wire::GetDomainRequest>,
    ) -> Result<Response<wire::DomainResponse>, Status> {
        client.get_domain(request).await
    }

    async fn list_domains(
        mut client: Self::Client,
        request: Request<wire::ListDomainsRequest>,
    ) -> Result<Response<wire::ListDomainsResponse>, Status> {
        client.list_domains(request).await
    }

    async fn update_domain(
        mut client: Self::Client,
        request: Request<wire::UpdateDomainRequest>,
    ) -> Result<Response<wire::DomainResponse>, Status> {
        client.update_domain(request).await
    }

    async fn delete_domain(
        mut client: Self::Client,
        request: Request<wire::GetDomainRequest>,
    ) -> Result<Response<wire::DomainResponse>, Status> {
        client.delete_domain(request).await
    }
}

pub(crate) fn routes<V: crate::version::Version>() -> Router<GatewayState> {
    crate::applications::routes::<Containers, V>().merge(crate::deployments::routes::<Containers, V>())
}
