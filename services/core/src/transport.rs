//! How one part of nuage reaches a service: a gRPC channel to another process, or the
//! service's routes themselves when it runs in this one.

use std::convert::Infallible;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::service::Routes;
use tonic::transport::Endpoint;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// A gRPC transport. Both kinds speak the same protobuf messages, metadata and status codes;
/// the in-process one skips HTTP/2 framing and a loopback TCP round trip.
///
/// The error type is the channel's; in-process routes cannot fail. (A boxed `dyn Error`
/// would trip a higher-ranked lifetime limitation of the compiler in async handlers.)
pub type Transport = BoxCloneSyncService<Request<Body>, Response<Body>, tonic::transport::Error>;

/// Returns a transport that dials `url` (such as `http://127.0.0.1:9090`) lazily, so a caller
/// can start before the service it calls.
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

/// A transport whose calls carry the internal credential.
pub type Authed = tonic::service::interceptor::InterceptedService<Transport, crate::internal::InternalAuth>;

/// Returns `transport` with the internal credential added to every call.
pub fn authed(transport: Transport, auth: crate::internal::InternalAuth) -> Authed {
    tonic::service::interceptor::InterceptedService::new(transport, auth)
}
