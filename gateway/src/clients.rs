//! gRPC clients of the services the gateway calls.

use nuage_core::internal::InternalAuth;
use nuage_proto::iam::v1::iam_client::IamClient;
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use std::convert::Infallible;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// How the gateway reaches a service: a gRPC channel to another process, or the service's
/// routes themselves when it runs in this one. Both speak the same protobuf messages, metadata
/// and status codes; the in-process one skips HTTP/2 framing and a loopback TCP round trip.
///
/// The error type is the channel's; the in-process routes cannot fail. (A boxed `dyn Error`
/// would trip a higher-ranked lifetime limitation of the compiler in async handlers.)
pub type Transport = BoxCloneSyncService<Request<Body>, Response<Body>, tonic::transport::Error>;

/// A transport whose calls carry the internal credential.
pub(crate) type Authed = InterceptedService<Transport, InternalAuth>;

/// Returns a transport that dials `url` (such as `http://127.0.0.1:9090`) lazily, so a
/// gateway can start before the services it calls.
pub fn dial(url: &str) -> Result<Transport, tonic::transport::Error> {
    let channel = Endpoint::from_shared(url.to_owned())?.connect_lazy();
    Ok(BoxCloneSyncService::new(channel))
}

/// Returns a transport that hands requests straight to `routes`, the gRPC services of this
/// process (the same routes its gRPC listener serves).
pub fn in_process(routes: Routes) -> Transport {
    BoxCloneSyncService::new(ServiceExt::<Request<Body>>::map_err(routes.prepare(), unreachable))
}

fn unreachable(never: Infallible) -> tonic::transport::Error {
    match never {}
}

/// One client per service; cheap to clone.
#[derive(Clone, Debug)]
pub struct ServiceClients {
    /// iam.
    pub iam: IamClient<Authed>,
    /// namespaces.
    pub namespaces: NamespacesClient<Authed>,
    /// The health endpoints of each, with the gRPC service name to ask about.
    pub health: Vec<(String, HealthClient<Transport>)>,
}

impl ServiceClients {
    /// Returns clients of the iam and namespaces services reached through these transports.
    pub fn new(iam: Transport, namespaces: Transport, auth: InternalAuth) -> Self {
        Self {
            iam: IamClient::with_interceptor(iam.clone(), auth.clone()),
            namespaces: NamespacesClient::with_interceptor(namespaces.clone(), auth),
            health: vec![
                (
                    nuage_proto::iam::v1::iam_server::SERVICE_NAME.to_owned(),
                    HealthClient::new(iam),
                ),
                (
                    nuage_proto::namespaces::v1::namespaces_server::SERVICE_NAME.to_owned(),
                    HealthClient::new(namespaces),
                ),
            ],
        }
    }
}
