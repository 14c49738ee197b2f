//! One invocation: find the application, hold an instance, forward the request, stream the
//! answer back. Every failure is a JSON answer; none hangs.

use crate::metrics::Metrics;
use crate::pool::{AcquireError, Lease, Pools};
use crate::privacy::{Privacy, Refusal, TOKEN_HEADERS};
use crate::routes::{Route, Routes};
use crate::upstream::{Reusable, Upstreams};
use crate::workers::Activity;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use nuage_clients::logsink::LogSink;
use nuage_core::internal::InternalAuth;
use nuage_proto::common::v1::ApplicationStatus;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// Errors of bodies passed through.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every answer.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Most bytes of a refused body read before answering (the rest resets the connection).
const DRAIN_CAP: u64 = 64 * 1024 * 1024;

/// Headers that concern one connection, never forwarded (names made once: a lookup by `&str`
/// parses the name each time).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a request needs from the router.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub(crate) routes: Routes,
    pub(crate) pools: Pools,
    /// Connections to instances (each worker has its own).
    pub(crate) upstreams: Upstreams,
    pub(crate) domain: Option<String>,
    pub(crate) max_body_bytes: u64,
    pub(crate) metrics: Metrics,
    pub(crate) privacy: Privacy,
    /// Where the failure of an invocation leaves a line (its application's logs).
    pub(crate) logs: Option<LogSink>,
    /// The worker's clock of activity (none off a worker).
    pub(crate) activity: Activity,
}

/// Who a client connection comes from.
#[derive(Debug)]
pub struct Peer {
    address: SocketAddr,
    /// Its `X-Forwarded-For` when the request carries none, made once per connection.
    forwarded_for: HeaderValue,
}

impl Peer {
    /// Returns the peer at `address`.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            forwarded_for: HeaderValue::from_str(&address.ip().to_string())
                .expect("an IP address is a valid header value"),
        }
    }

    fn ip(&self) -> std::net::IpAddr {
        self.address.ip()
    }
}

/// Why the router itself answered with an error (kept on the response, never sent).
#[derive(Debug, Clone)]
struct Failure(String);

/// A JSON error answer, Scaleway-style.
pub fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response<ProxyBody> {
    let message = message.into();
    let body = serde_json::json!({"message": &message, "type": kind}).to_string();
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed())
        .expect("valid response");
    response.extensions_mut().insert(Failure(message));
    response
}

/// The response body of an instance; holds the instance and the connection to it until it is
/// read to the end.
struct Leased {
    body: Incoming,
    lease: Option<Lease>,
    connection: Option<Reusable>,
}

impl Leased {
    /// The instance is done with this request: keep the connection, free the instance.
    fn done(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.give_back();
        }
        self.lease.take();
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        // An answer with no body (204, 304, a HEAD, `Content-Length: 0`) is never polled: it
        // is complete, and so is the instance's part.
        if self.body.is_end_stream() {
            self.done();
        }
    }
}

impl Body for Leased {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            // The instance is done with this request once its body is all read: free it now,
            // not after the last bytes reach the client.
            Poll::Ready(None) => self.done(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.done(),
            Poll::Ready(Some(Err(_))) => {
                self.connection.take();
                if let Some(lease) = self.lease.take() {
                    lease.broken();
                }
            }
            _ => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Splits a request's target into the route key and the path the application sees.
fn target(domain: Option<&str>, host: Option<&str>, uri: &Uri) -> Option<(String, String)> {
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    if let (Some(domain), Some(host)) = (domain, host) {
        let host = host.split(':').next().unwrap_or(host);
        if let Some(label) = host.strip_suffix(domain).and_then(|rest| rest.strip_suffix('.'))
            && !label.is_empty()
            && !label.contains('.')
        {
            return Some((label.to_owned(), path_and_query.to_owned()));
        }
    }
    let trimmed = path_and_query.strip_prefix('/')?;
    let end = trimmed.find(['/', '?']).unwrap_or(trimmed.len());
    let key = &trimmed[..end];
    if key.is_empty() {
        return None;
    }
    let rest = &trimmed[end..];
    let rest = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    Some((key.to_owned(), rest))
}

/// Drops hop-by-hop headers and those `Connection` names, in place.
fn keep_end_to_end(headers: &mut HeaderMap) {
    // Most messages carry none (and then no `Connection` either): a look at the few names they
    // have is cheaper than hashing each of these for a removal, twice per request.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    for name in named {
        headers.remove(name);
    }
}

impl Proxy {
    /// Returns a copy for a worker thread: the same routes, instances and figures, and its own
    /// connections to instances (a connection stays on the thread that opened it).
    pub(crate) fn for_worker(&self) -> Self {
        Self {
            upstreams: Upstreams::default(),
            activity: Activity::new(std::thread::available_parallelism().map_or(1, usize::from)),
            ..self.clone()
        }
    }

    /// Answers one request that arrived from `peer`.
    pub async fn handle(&self, request: Request<Incoming>, peer: &Peer) -> Response<ProxyBody> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| request.uri().host())
            .map(str::to_owned);
        let Some((key, path)) = target(self.domain.as_deref(), host.as_deref(), request.uri()) else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no function or container answers here",
            );
        };
        let Some(route) = self.lookup(|routes| routes.get(&key)).await else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no function or container answers at `{key}`"),
            );
        };
        if route.status == ApplicationStatus::Deleting {
            return error(StatusCode::NOT_FOUND, "not_found", format!("`{key}` is being deleted"));
        }
        if route.private {
            match self.privacy.check(&route, request.headers()).await {
                Ok(()) => {}
                // As Scaleway documents it: a private function without a token is not there.
                Err(Refusal::Missing) => {
                    self.metrics.invoked(&route.application_id, 404, None);
                    return error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("no function or container answers at `{key}`"),
                    );
                }
                Err(Refusal::Invalid(reason)) => {
                    self.metrics.invoked(&route.application_id, 403, None);
                    return error(
                        StatusCode::FORBIDDEN,
                        "permissions_denied",
                        format!("`{key}` is private and the token does not open it: {reason}"),
                    );
                }
                Err(Refusal::Unavailable(reason)) => {
                    tracing::warn!(application_id = %route.application_id, %reason, "cannot read a namespace key");
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "service_unavailable",
                        "the token cannot be checked now; retry shortly",
                    );
                }
            }
        }
        self.invoke(route, request, &path, peer).await
    }

    /// Answers one request that arrived on the internal listener: `/{application_id}/...`,
    /// from nuage itself (crons), carrying the internal credential. The application's privacy
    /// does not apply: the credential is nuage's own.
    pub async fn handle_internal(
        &self,
        mut request: Request<Incoming>,
        peer: &Peer,
        auth: &InternalAuth,
    ) -> Response<ProxyBody> {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !auth.matches(presented) {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this listener is for nuage itself: the internal credential is missing or wrong",
            );
        }
        // The credential is nuage's: the code does not get it.
        request.headers_mut().remove(header::AUTHORIZATION);
        let Some((application_id, path)) = target(None, None, request.uri()) else {
            return error(StatusCode::NOT_FOUND, "not_found", "no application id in the path");
        };
        let Some(route) = self.lookup(|routes| routes.by_id(&application_id)).await else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no function or container `{application_id}`"),
            );
        };
        if route.status == ApplicationStatus::Deleting {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("`{application_id}` is being deleted"),
            );
        }
        self.invoke(route, request, &path, peer).await
    }

    /// Finds a route with `find`, reloading the table once on a miss or on an application
    /// being deleted: the table may be behind (the application was created a moment ago, or
    /// made again under the name of one being deleted).
    async fn lookup(&self, find: impl Fn(&Routes) -> Option<Arc<Route>>) -> Option<Arc<Route>> {
        if let Some(route) = find(&self.routes)
            && route.status != ApplicationStatus::Deleting
        {
            return Some(route);
        }
        self.routes.refresh_soon().await;
        find(&self.routes)
    }

    /// Sends a request the caller may make to `route`'s application; when the router fails
    /// it (timeout, crash, too large, overloaded, not deployed), says why in its logs.
    async fn invoke(
        &self,
        route: Arc<Route>,
        request: Request<Incoming>,
        path: &str,
        peer: &Peer,
    ) -> Response<ProxyBody> {
        let request_id = request
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut answer = self.forward(route.clone(), request, path, peer).await;
        if let (Some(logs), Some(Failure(message))) = (&self.logs, answer.extensions_mut().remove::<Failure>()) {
            let status = answer.status().as_u16();
            logs.push(
                &route.application_id,
                request_id.as_deref().unwrap_or_default(),
                "router",
                format!("invocation failed: HTTP {status}: {message}"),
            );
        }
        answer
    }

    async fn forward(
        &self,
        route: Arc<Route>,
        request: Request<Incoming>,
        path: &str,
        peer: &Peer,
    ) -> Response<ProxyBody> {
        let key = route.key.clone();
        let too_large = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .is_some_and(|length| length > self.max_body_bytes);
        if too_large {
            // Read what the client sends (up to a cap) so that it sees the answer rather than
            // a connection reset mid-upload.
            let mut body = request.into_body();
            let mut read = 0_u64;
            while read <= DRAIN_CAP {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
                    _ => break,
                }
            }
            self.metrics.invoked(&route.application_id, 413, None);
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body exceeds {} bytes", self.max_body_bytes),
            );
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + route.timeout;
        let lease = match self
            .pools
            .acquire(&route.application_id, route.concurrency, route.max_scale, deadline)
            .await
        {
            Ok(lease) => lease,
            Err(failure) => {
                // Nothing to run: the table may be behind (deleted, redeployed); look again.
                let route = match failure {
                    AcquireError::NotDeployed(_) => {
                        self.routes.refresh_soon().await;
                        match self.routes.get(&key) {
                            Some(route) if route.status != ApplicationStatus::Deleting => route,
                            _ => {
                                return error(
                                    StatusCode::NOT_FOUND,
                                    "not_found",
                                    format!("no function or container answers at `{key}`"),
                                );
                            }
                        }
                    }
                    _ => route,
                };
                let answer = match failure {
                    AcquireError::NotDeployed(_) => match route.status {
                        ApplicationStatus::Pending => error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not_ready",
                            format!("`{key}` is being deployed; try again in a moment"),
                        ),
                        ApplicationStatus::Error => error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "deployment_failed",
                            format!("`{key}` failed to deploy: {}", route.error_message),
                        ),
                        _ => error(
                            StatusCode::NOT_FOUND,
                            "not_deployed",
                            format!("`{key}` has never been deployed: deploy it first"),
                        ),
                    },
                    AcquireError::StartFailed(message) => error(
                        StatusCode::BAD_GATEWAY,
                        "instance_failed",
                        format!("`{key}` could not start: {message}"),
                    ),
                    AcquireError::Overloaded => error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        format!(
                            "`{key}` is at max_scale ({}) and its queue is full; retry later",
                            route.max_scale
                        ),
                    ),
                    AcquireError::Timeout => timed_out(&key, route.timeout),
                };
                self.metrics
                    .invoked(&route.application_id, answer.status().as_u16(), Some(started.elapsed()));
                return answer;
            }
        };
        if lease.cold {
            self.metrics.cold_start(&route.application_id);
        }
        let upstream = match self.upstream(request, &lease.address, path, peer) {
            Ok(upstream) => upstream,
            Err(answer) => return answer,
        };
        self.activity.mark();
        let answered = tokio::time::timeout_at(deadline, self.upstreams.send(&lease.address, upstream)).await;
        self.activity.mark();
        let answer = match answered {
            Err(_) => {
                // The instance is still busy with it: replace it rather than queue behind it.
                lease.broken();
                tracing::warn!(application_id = %route.application_id, "invocation timed out");
                timed_out(&key, route.timeout)
            }
            Ok(Err(failure)) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*failure);
                let mut over_limit = false;
                while let Some(error) = source {
                    over_limit |= error.is::<LengthLimitError>();
                    source = error.source();
                }
                if over_limit {
                    drop(lease);
                    error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("the request body exceeds {} bytes", self.max_body_bytes),
                    )
                } else {
                    lease.broken();
                    tracing::warn!(application_id = %route.application_id, error = %failure, "instance failed mid-request");
                    error(
                        StatusCode::BAD_GATEWAY,
                        "instance_failed",
                        format!("`{key}` failed while handling the request (it crashed or closed the connection)"),
                    )
                }
            }
            Ok(Ok((response, connection))) => {
                let (mut parts, body) = response.into_parts();
                keep_end_to_end(&mut parts.headers);
                Response::from_parts(
                    parts,
                    Leased {
                        body,
                        lease: Some(lease),
                        connection: Some(connection),
                    }
                    .boxed(),
                )
            }
        };
        self.metrics
            .invoked(&route.application_id, answer.status().as_u16(), Some(started.elapsed()));
        answer
    }

    /// The request as the instance gets it.
    fn upstream(
        &self,
        request: Request<Incoming>,
        address: &str,
        path: &str,
        peer: &Peer,
    ) -> Result<Request<ProxyBody>, Response<ProxyBody>> {
        let (mut parts, body) = request.into_parts();
        // Origin form: the connection is to the instance already.
        let uri: Uri = path.parse().map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request path is not valid",
            )
        })?;
        keep_end_to_end(&mut parts.headers);
        let mut headers = std::mem::take(&mut parts.headers);
        // The token opened the door; the code does not get it.
        for name in &TOKEN_HEADERS {
            headers.remove(name);
        }
        let forwarded_for = match headers.get(X_FORWARDED_FOR).and_then(|value| value.to_str().ok()) {
            Some(earlier) => HeaderValue::from_str(&format!("{earlier}, {}", peer.ip())).ok(),
            None => Some(peer.forwarded_for.clone()),
        };
        if let Some(value) = forwarded_for {
            headers.insert(X_FORWARDED_FOR, value);
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        if !headers.contains_key(X_REQUEST_ID) {
            headers.insert(X_REQUEST_ID, request_id());
        }
        // HTTP/1.1 wants one; a client that sent none gets the instance's address.
        if !headers.contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(address.split_once('@').map_or(address, |(socket, _)| socket))
        {
            headers.insert(header::HOST, host);
        }
        let body = Limited::new(body, usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX)).boxed();
        let mut upstream = Request::new(body);
        *upstream.method_mut() = parts.method;
        *upstream.uri_mut() = uri;
        *upstream.headers_mut() = headers;
        Ok(upstream)
    }
}

/// A fresh request id (a random UUID from the thread's generator: no system call).
fn request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0_u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut text).as_bytes()).expect("a UUID is a valid header value")
}

fn timed_out(key: &str, timeout: std::time::Duration) -> Response<ProxyBody> {
    error(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        format!("`{key}` did not answer within its timeout ({} ms)", timeout.as_millis()),
    )
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn targets_come_from_the_host_or_the_first_path_segment() {
        let uri = |text: &str| text.parse::<http::Uri>().unwrap();
        assert_eq!(
            target(None, Some("127.0.0.1:8081"), &uri("/ns-f/a/b?x=1")),
            Some(("ns-f".into(), "/a/b?x=1".into()))
        );
        assert_eq!(
            target(None, None, &uri("/ns-f?x=1")),
            Some(("ns-f".into(), "/?x=1".into()))
        );
        assert_eq!(target(None, None, &uri("/ns-f")), Some(("ns-f".into(), "/".into())));
        assert_eq!(target(None, None, &uri("/")), None);
        assert_eq!(
            target(Some("fn.example.com"), Some("ns-f.fn.example.com:80"), &uri("/a")),
            Some(("ns-f".into(), "/a".into()))
        );
        // Another host falls back to the path form.
        assert_eq!(
            target(Some("fn.example.com"), Some("localhost"), &uri("/ns-f/a")),
            Some(("ns-f".into(), "/a".into()))
        );
    }
}
