//! The services that own applications, functions and containers, as the gateway calls them
//! ([`Owner`]): the handlers of both kinds are written once over it.

use crate::GatewayState;
use nuage_proto::applications::v1 as wire;
use std::future::Future;
use tonic::{Request, Response, Status};

/// The service that owns one kind of application, as the gateway calls it: functions or
/// containers. Both take and give the shared `nuage.applications.v1` messages.
pub(crate) trait Owner: Send + Sync + 'static {
    /// `function` or `container`.
    const NOUN: &'static str;
    /// `functions` or `containers`: the path segment and the list's key.
    const PLURAL: &'static str;
    /// The path parameter naming one: `function_id` or `container_id`.
    const ID_PARAM: &'static str;
    /// Whether it is the functions service: its JSON has `runtime` and `handler`, a
    /// container's has `registry_image`.
    const FUNCTION: bool;
    /// Its generated gRPC client.
    type Client: Clone + Send + 'static;

    /// Returns its client.
    fn client(state: &GatewayState) -> Self::Client;

    /// `Create<Kind>`.
    fn create(
        client: Self::Client,
        request: Request<wire::CreateApplicationRequest>,
    ) -> impl Future<Output = Result<Response<wire::ApplicationResponse>, Status>> + Send;
    /// `Get<Kind>`.
    fn get(
        client: Self::Client,
        request: Request<wire::GetApplicationRequest>,
    ) -> impl Future<Output = Result<Response<wire::ApplicationResponse>, Status>> + Send;
    /// `List<Kinds>`.
    fn list(
        client: Self::Client,
        request: Request<wire::ListApplicationsRequest>,
    ) -> impl Future<Output = Result<Response<wire::ListApplicationsResponse>, Status>> + Send;
    /// `Update<Kind>`.
    fn update(
        client: Self::Client,
        request: Request<wire::UpdateApplicationRequest>,
    ) -> impl Future<Output = Result<Response<wire::ApplicationResponse>, Status>> + Send;
    /// `Delete<Kind>`.
    fn delete(
        client: Self::Client,
        request: Request<wire::GetApplicationRequest>,
    ) -> impl Future<Output = Result<Response<wire::ApplicationResponse>, Status>> + Send;
    /// `Deploy<Kind>`.
    fn deploy(
        client: Self::Client,
        request: Request<wire::GetApplicationRequest>,
    ) -> impl Future<Output = Result<Response<wire::ApplicationResponse>, Status>> + Send;
    /// `List<Kind>Deployments`.
    fn list_deployments(
        client: Self::Client,
        request: Request<wire::ListDeploymentsRequest>,
    ) -> impl Future<Output = Result<Response<wire::ListDeploymentsResponse>, Status>> + Send;
    /// `Rollback<Kind>`.
    fn rollback(
        client: Self::Client,
        request: Request<wire::RollbackRequest>,
    ) -> impl Future<Output = Result<Response<wire::ApplicationResponse>, Status>> + Send;
    /// `CreateDomain`: a domain of one of its applications.
    fn create_domain(
        client: Self::Client,
        request: Request<wire::CreateDomainRequest>,
    ) -> impl Future<Output = Result<Response<wire::DomainResponse>, Status>> + Send;
    /// `GetDomain`.
    fn get_domain(
        client: Self::Client,
        request: Request<wire::GetDomainRequest>,
    ) -> impl Future<Output = Result<Response<wire::DomainResponse>, Status>> + Send;
    /// `ListDomains`.
    fn list_domains(
        client: Self::Client,
        request: Request<wire::ListDomainsRequest>,
    ) -> impl Future<Output = Result<Response<wire::ListDomainsResponse>, Status>> + Send;
    /// `UpdateDomain`.
    fn update_domain(
        client: Self::Client,
        request: Request<wire::UpdateDomainRequest>,
    ) -> impl Future<Output = Result<Response<wire::DomainResponse>, Status>> + Send;
    /// `DeleteDomain`.
    fn delete_domain(
        client: Self::Client,
        request: Request<wire::GetDomainRequest>,
    ) -> impl Future<Output = Result<Response<wire::DomainResponse>, Status>> + Send;
}

/// Writes the RPC methods of an [`Owner`] impl, each handing its request to the client's RPC
/// named for it (`create => create_function`); the domain RPCs have the same names on both
/// clients. Both owners' methods are pure forwarding, so they are written once, here.
macro_rules! forward_to_client {
    (
        create: $create:ident,
        get: $get:ident,
        list: $list:ident,
        update: $update:ident,
        delete: $delete:ident,
        deploy: $deploy:ident,
        list_deployments: $list_deployments:ident,
        rollback: $rollback:ident $(,)?
    ) => {
        $crate::owner::forward_to_client!(@rpc create, $create, CreateApplicationRequest, ApplicationResponse);
        $crate::owner::forward_to_client!(@rpc get, $get, GetApplicationRequest, ApplicationResponse);
        $crate::owner::forward_to_client!(@rpc list, $list, ListApplicationsRequest, ListApplicationsResponse);
        $crate::owner::forward_to_client!(@rpc update, $update, UpdateApplicationRequest, ApplicationResponse);
        $crate::owner::forward_to_client!(@rpc delete, $delete, GetApplicationRequest, ApplicationResponse);
        $crate::owner::forward_to_client!(@rpc deploy, $deploy, GetApplicationRequest, ApplicationResponse);
        $crate::owner::forward_to_client!(
            @rpc list_deployments, $list_deployments, ListDeploymentsRequest, ListDeploymentsResponse
        );
        $crate::owner::forward_to_client!(@rpc rollback, $rollback, RollbackRequest, ApplicationResponse);
        $crate::owner::forward_to_client!(@rpc create_domain, create_domain, CreateDomainRequest, DomainResponse);
        $crate::owner::forward_to_client!(@rpc get_domain, get_domain, GetDomainRequest, DomainResponse);
        $crate::owner::forward_to_client!(@rpc list_domains, list_domains, ListDomainsRequest, ListDomainsResponse);
        $crate::owner::forward_to_client!(@rpc update_domain, update_domain, UpdateDomainRequest, DomainResponse);
        $crate::owner::forward_to_client!(@rpc delete_domain, delete_domain, GetDomainRequest, DomainResponse);
    };
    (@rpc $method:ident, $rpc:ident, $request:ident, $response:ident) => {
        async fn $method(
            mut client: Self::Client,
            request: ::tonic::Request<::nuage_proto::applications::v1::$request>,
        ) -> Result<::tonic::Response<::nuage_proto::applications::v1::$response>, ::tonic::Status> {
            client.$rpc(request).await
        }
    };
}
pub(crate) use forward_to_client;
