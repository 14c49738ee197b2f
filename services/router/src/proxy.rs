//! One invocation: find the application, hold an instance, forward the request, stream the
//! answer back. Every failure is a JSON answer; none hangs.

use crate::activity::Activity;
use crate::body::ProxyBody;
use crate::error::{Failure, error};
use crate::leased::Leased;
use crate::metrics::Metrics;
use crate::pool::{AcquireError, Pools};
use crate::privacy::{Privacy, Refusal};
use crate::request::{self, Peer, X_REQUEST_ID};
use crate::routes::{Route, Routes};
use crate::upstream::Upstreams;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError};
use hyper::body::Incoming;
use nuage_clients::logsink::LogSink;
use nuage_core::internal::InternalAuth;
use nuage_proto::common::v1::ApplicationStatus;
use std::sync::Arc;
use std::time::Instant;

/// Most bytes of a refused body read before answering (the rest resets the connection).
const DRAIN_CAP: u64 = 64 * 1024 * 1024;

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
        let Some((key, path)) = request::target(self.domain.as_deref(), host.as_deref(), request.uri()) else {
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
        let Some((application_id, path)) = request::target(None, None, request.uri()) else {
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
        let upstream = match request::to_instance(request, &lease.address, path, peer, self.max_body_bytes) {
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
                request::keep_end_to_end(&mut parts.headers);
                Response::from_parts(parts, Leased::new(body, lease, connection).boxed())
            }
        };
        self.metrics
            .invoked(&route.application_id, answer.status().as_u16(), Some(started.elapsed()));
        answer
    }
}

fn timed_out(key: &str, timeout: std::time::Duration) -> Response<ProxyBody> {
    error(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        format!("`{key}` did not answer within its timeout ({} ms)", timeout.as_millis()),
    )
}
