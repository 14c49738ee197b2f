//! How one part of nuage reaches a service: a gRPC channel to another process, or the
//! service's routes themselves when it runs in this one.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
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

/// Returns a transport to the service `peer` (such as "builder") that dials `url` (such as
/// `http://127.0.0.1:9090`) lazily, so a caller can start before the service it calls. A call
/// gets no answer after its deadline (see [`Deadline`]); connecting gets a fifth of `deadline`.
pub fn dial(peer: &'static str, url: &str, deadline: Duration) -> Result<Transport, tonic::transport::Error> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout((deadline / 5).max(Duration::from_millis(100)))
        .connect_lazy();
    Ok(BoxCloneSyncService::new(Deadline::new(channel, peer, deadline)))
}

/// Returns a transport to the service `peer` that hands requests straight to `routes`, the
/// gRPC services of this process (the same routes its gRPC listener serves), with the same
/// deadlines as a dialled one.
pub fn in_process(peer: &'static str, routes: Routes, deadline: Duration) -> Transport {
    let service = ServiceExt::<Request<Body>>::map_err(routes.prepare(), unreachable);
    BoxCloneSyncService::new(Deadline::new(service, peer, deadline))
}

/// Bounds how long a call waits for its answer: the deadline its caller set
/// (`tonic::Request::set_timeout`, sent as `grpc-timeout`), else the transport's default. A
/// call past it answers `DEADLINE_EXCEEDED` naming the service, as a status, so the caller sees
/// it like any other refusal. The deadline runs until the answer's headers arrive: a stream
/// (logs followed, route changes) runs on once it has started.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    peer: &'static str,
    default: Duration,
}

impl<S> Deadline<S> {
    /// Returns `inner`, calls to the service `peer` through which wait at most `default` when
    /// they set no deadline of their own.
    pub fn new(inner: S, peer: &'static str, default: Duration) -> Self {
        Self { inner, peer, default }
    }
}

impl<S> tower::Service<Request<Body>> for Deadline<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let limit = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(grpc_timeout)
            .unwrap_or(self.default);
        let peer = self.peer;
        let answer = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, answer).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "the {peer} service did not answer within {} ms",
                    limit.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// Returns the duration of a `grpc-timeout` header value (an integer of at most 8 digits and
/// a unit: `H`ours, `M`inutes, `S`econds, `m`illi-, `u`micro-, `n`anoseconds).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
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

#[cfg(test)]
mod tests {
    use super::grpc_timeout;
    use std::time::Duration;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_nothing_else() {
        assert_eq!(grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(grpc_timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "10", "10s", "123456789S", "-1S", "1.5S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad}");
        }
    }
}
