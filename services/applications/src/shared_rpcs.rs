//! [`shared_rpcs!`](crate::shared_rpcs): the RPCs that the functions and containers services
//! answer alike, written once for both services' generated traits.

/// Implements, inside a service's `#[tonic::async_trait] impl` of its generated trait, the RPCs
/// that functions and containers answer alike, each handed to the service's `applications` field
/// (an [`Applications`](crate::Applications)): get, list, delete, deployments, rollback, the five
/// domain RPCs, routes and the namespace cascade. The invocation names the RPCs whose names carry
/// the kind.
///
/// A macro, not a function: each service implements its own generated trait, and only a macro
/// can add the same methods to two traits' impls. `async_trait` has already run over the impl
/// when this expands, so the methods are written as it writes them (a boxed `Send` future living
/// as long as `&self`).
#[macro_export]
macro_rules! shared_rpcs {
    (
        get: $get:ident,
        list: $list:ident,
        delete: $delete:ident,
        list_deployments: $list_deployments:ident,
        rollback: $rollback:ident,
        delete_namespace: $delete_namespace:ident $(,)?
    ) => {
        $crate::shared_rpcs!(@rpc $get(GetApplicationRequest) -> ApplicationResponse = get_rpc);
        $crate::shared_rpcs!(@rpc $list(ListApplicationsRequest) -> ListApplicationsResponse = list_rpc);
        $crate::shared_rpcs!(@rpc $delete(GetApplicationRequest) -> ApplicationResponse = delete_rpc);
        $crate::shared_rpcs!(
            @rpc $list_deployments(ListDeploymentsRequest) -> ListDeploymentsResponse = list_deployments_rpc
        );
        $crate::shared_rpcs!(@rpc $rollback(RollbackRequest) -> ApplicationResponse = rollback_rpc);
        $crate::shared_rpcs!(
            @rpc $delete_namespace(DeleteNamespaceApplicationsRequest)
                -> DeleteNamespaceApplicationsResponse = delete_namespace_rpc
        );
        $crate::shared_rpcs!(@rpc create_domain(CreateDomainRequest) -> DomainResponse = create_domain_rpc);
        $crate::shared_rpcs!(@rpc get_domain(GetDomainRequest) -> DomainResponse = get_domain_rpc);
        $crate::shared_rpcs!(@rpc list_domains(ListDomainsRequest) -> ListDomainsResponse = list_domains_rpc);
        $crate::shared_rpcs!(@rpc update_domain(UpdateDomainRequest) -> DomainResponse = update_domain_rpc);
        $crate::shared_rpcs!(@rpc delete_domain(GetDomainRequest) -> DomainResponse = delete_domain_rpc);

        fn list_routes<'life0, 'async_trait>(
            &'life0 self,
            _request: $crate::__macro::tonic::Request<$crate::__macro::common::ListRoutesRequest>,
        ) -> $crate::__macro::Answer<'async_trait, $crate::__macro::common::ListRoutesResponse>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(self.applications.list_routes_rpc())
        }

        type WatchRoutesStream = $crate::RouteStream;

        fn watch_routes<'life0, 'async_trait>(
            &'life0 self,
            _request: $crate::__macro::tonic::Request<$crate::__macro::common::ListRoutesRequest>,
        ) -> $crate::__macro::Answer<'async_trait, $crate::RouteStream>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            let answer = self.applications.watch_routes_rpc();
            Box::pin(async move { answer })
        }
    };
    (@rpc $name:ident($request:ident) -> $response:ident = $method:ident) => {
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            request: $crate::__macro::tonic::Request<$crate::__macro::wire::$request>,
        ) -> $crate::__macro::Answer<'async_trait, $crate::__macro::wire::$response>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(self.applications.$method(request))
        }
    };
}

/// What [`shared_rpcs!`](crate::shared_rpcs) names from the invoking crate's point of view.
#[doc(hidden)]
pub mod __macro {
    pub use nuage_proto::applications::v1 as wire;
    pub use nuage_proto::common::v1 as common;
    pub use tonic;

    /// The future an `async_trait` method returns: the answer to one RPC.
    pub type Answer<'a, T> =
        std::pin::Pin<Box<dyn Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'a>>;
}
