//! One invocation: find the application, check that the caller may call it, hold an instance,
//! forward the request, stream the answer back. Every failure is a JSON answer
//! ([`RouterError`]); none hangs.

use crate::activity::Activity;
use crate::body::ProxyBody;
use crate::components::Components;
use crate::error::RouterError;
use crate::leased::Leased;
use crate::metrics::Metrics;
use crate::pool::{AcquireError, Lease, Pools};
use crate::privacy::{Privacy, Refusal};
use crate::request::{self, Peer, X_REQUEST_ID};
use crate::routes::{Route, Routes};
use crate::upstream::Upstreams;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response};
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
    /// WebAssembly functions, run here.
    pub(crate) components: Components,
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
        match self.admit(&request).await {
            Ok((route, path)) => self.invoke(route, request, &path, peer).await,
            Err(error) => error.into_response(),
        }
    }

    /// Returns the application `request` is for and the path it sees, once the caller may
    /// call it: the one whose custom domain its host is, else the one its host label or first
    /// path segment names.
    async fn admit(&self, request: &Request<Incoming>) -> Result<(Arc<Route>, String), RouterError> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| request.uri().host());
        let hostname = host.and_then(request::hostname);
        let target = request::target(self.domain.as_deref(), host, request.uri());
        let whole_path = || request.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
        let found = self
            .lookup(|routes| {
                if let Some(route) = hostname.as_deref().and_then(|hostname| routes.by_host(hostname)) {
                    return Some((route, whole_path()));
                }
                let (key, path) = target.as_ref()?;
                routes.get(key).map(|route| (route, path.clone()))
            })
            .await;
        let Some((route, path)) = found else {
            return Err(match target {
                Some((key, _)) => RouterError::NoRoute { key },
                None => RouterError::NoTarget,
            });
        };
        if route.status == ApplicationStatus::Deleting {
            return Err(RouterError::Deleting { key: route.key.clone() });
        }
        if route.private {
            self.check_token(&route, request.headers()).await?;
        }
        Ok((route, path))
    }

    /// Checks the token of a call to the private application of `route`.
    async fn check_token(&self, route: &Route, headers: &HeaderMap) -> Result<(), RouterError> {
        let error = match self.privacy.check(route, headers).await {
            Ok(()) => return Ok(()),
            // As Scaleway documents it: a private function without a token is not there.
            Err(Refusal::Missing) => RouterError::NoRoute { key: route.key.clone() },
            Err(Refusal::Invalid(reason)) => RouterError::TokenRefused {
                key: route.key.clone(),
                reason,
            },
            Err(Refusal::Unavailable(reason)) => {
                tracing::warn!(application_id = %route.application_id, %reason, "cannot read a namespace key");
                return Err(RouterError::TokenUncheckable);
            }
        };
        self.metrics
            .invoked(&route.application_id, error.status().as_u16(), None);
        Err(error)
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
        match self.admit_internal(&mut request, auth).await {
            Ok((route, path)) => self.invoke(route, request, &path, peer).await,
            Err(error) => error.into_response(),
        }
    }

    /// Returns the application a request of nuage's names and the path it sees, once the
    /// request's credential (which it takes off) is nuage's.
    async fn admit_internal(
        &self,
        request: &mut Request<Incoming>,
        auth: &InternalAuth,
    ) -> Result<(Arc<Route>, String), RouterError> {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !auth.matches(presented) {
            return Err(RouterError::NotNuage);
        }
        // The credential is nuage's: the code does not get it.
        request.headers_mut().remove(header::AUTHORIZATION);
        let (application_id, path) = request::target(None, None, request.uri()).ok_or(RouterError::NoApplicationId)?;
        let Some((route, path)) = self
            .lookup(|routes| routes.by_id(&application_id).map(|route| (route, path.clone())))
            .await
        else {
            return Err(RouterError::UnknownApplication { application_id });
        };
        if route.status == ApplicationStatus::Deleting {
            return Err(RouterError::Deleting { key: application_id });
        }
        Ok((route, path))
    }

    /// Finds a route (and the path its application sees) with `find`, reloading the table
    /// once on a miss or on an application being deleted: the table may be behind (the
    /// application was created a moment ago, or made again under the name of one being
    /// deleted, or a custom domain of it just became ready).
    async fn lookup(&self, find: impl Fn(&Routes) -> Option<(Arc<Route>, String)>) -> Option<(Arc<Route>, String)> {
        if let Some(found) = find(&self.routes)
            && found.0.status != ApplicationStatus::Deleting
        {
            return Some(found);
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
        let error = match self.forward(route.clone(), request, path, peer).await {
            Ok(answer) => return answer,
            Err(error) => error,
        };
        if let Some(logs) = &self.logs {
            let status = error.status().as_u16();
            logs.push(
                &route.application_id,
                request_id.as_deref().unwrap_or_default(),
                "router",
                format!("invocation failed: HTTP {status}: {error}"),
            );
        }
        error.into_response()
    }

    /// Forwards `request` to an instance of `route`'s application, within its timeout, and
    /// counts the answer.
    async fn forward(
        &self,
        route: Arc<Route>,
        request: Request<Incoming>,
        path: &str,
        peer: &Peer,
    ) -> Result<Response<ProxyBody>, RouterError> {
        let request = self.within_limit(&route, request).await?;
        let started = Instant::now();
        if route.wasm {
            return self.run_component(route, request, path, peer, started).await;
        }
        let deadline = tokio::time::Instant::now() + route.timeout;
        let lease = match self
            .pools
            .acquire(&route.application_id, route.concurrency, route.max_scale, deadline)
            .await
        {
            Ok(lease) => lease,
            Err(failure) => return Err(self.no_instance(route, failure, started).await),
        };
        if lease.cold {
            self.metrics.cold_start(&route.application_id);
        }
        let upstream = request::to_instance(request, &lease.address, path, peer, self.max_body_bytes)?;
        let answer = self.send(&route, lease, upstream, deadline).await;
        self.counted(&route, answer, started)
    }

    /// Returns `answer` to a request for `route` that came at `started`, counted.
    fn counted(
        &self,
        route: &Route,
        answer: Result<Response<ProxyBody>, RouterError>,
        started: Instant,
    ) -> Result<Response<ProxyBody>, RouterError> {
        let status = match &answer {
            Ok(answer) => answer.status(),
            Err(error) => error.status(),
        };
        self.metrics
            .invoked(&route.application_id, status.as_u16(), Some(started.elapsed()));
        answer
    }

    /// Runs `request` in a fresh instance of `route`'s WebAssembly function, and counts the
    /// answer.
    async fn run_component(
        &self,
        route: Arc<Route>,
        request: Request<Incoming>,
        path: &str,
        peer: &Peer,
        started: Instant,
    ) -> Result<Response<ProxyBody>, RouterError> {
        let (loaded, cold) = match self.components.get(&route).await {
            Ok(got) => got,
            Err(failure) => return Err(self.no_instance(route, failure, started).await),
        };
        if cold {
            self.metrics.cold_start(&route.application_id);
        }
        let answer = self
            .components
            .invoke(&route, &loaded, request, (path, peer, self.max_body_bytes))
            .await;
        self.counted(&route, answer, started)
    }

    /// Returns `request` unless it says its body is larger than the limit; then reads what the
    /// client sends (up to a cap) so that it sees the answer rather than a connection reset
    /// mid-upload, and refuses it.
    async fn within_limit(&self, route: &Route, request: Request<Incoming>) -> Result<Request<Incoming>, RouterError> {
        let too_large = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .is_some_and(|length| length > self.max_body_bytes);
        if !too_large {
            return Ok(request);
        }
        let mut body = request.into_body();
        let mut read = 0_u64;
        while read <= DRAIN_CAP {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
                _ => break,
            }
        }
        let error = RouterError::TooLarge {
            limit: self.max_body_bytes,
        };
        self.metrics
            .invoked(&route.application_id, error.status().as_u16(), None);
        Err(error)
    }

    /// Returns why no instance of `route`'s application took a request that came at
    /// `started`, and counts it, unless the application is gone.
    async fn no_instance(&self, route: Arc<Route>, failure: AcquireError, started: Instant) -> RouterError {
        let key = route.key.clone();
        let route = match failure {
            // Nothing to run: the table may be behind (deleted, redeployed); look again.
            AcquireError::NotDeployed(_) => {
                self.routes.refresh_soon().await;
                match self.routes.get(&key) {
                    Some(route) if route.status != ApplicationStatus::Deleting => route,
                    _ => return RouterError::NoRoute { key },
                }
            }
            _ => route,
        };
        let error = match failure {
            AcquireError::NotDeployed(_) => match route.status {
                ApplicationStatus::Pending => RouterError::Deploying { key },
                ApplicationStatus::Error => RouterError::DeployFailed {
                    key,
                    message: route.error_message.clone(),
                },
                _ => RouterError::NeverDeployed { key },
            },
            AcquireError::StartFailed(message) => RouterError::StartFailed { key, message },
            AcquireError::Overloaded => RouterError::Overloaded {
                key,
                max_scale: route.max_scale,
            },
            AcquireError::Timeout => RouterError::TimedOut {
                key,
                timeout: route.timeout,
            },
        };
        self.metrics
            .invoked(&route.application_id, error.status().as_u16(), Some(started.elapsed()));
        error
    }

    /// Sends `upstream` to the instance `lease` holds and returns its answer, whose body frees
    /// the instance once read; an instance that does not answer by `deadline`, or fails, is
    /// replaced.
    async fn send(
        &self,
        route: &Route,
        lease: Lease,
        upstream: Request<ProxyBody>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<ProxyBody>, RouterError> {
        self.activity.mark();
        let answered = tokio::time::timeout_at(deadline, self.upstreams.send(&lease.address, upstream)).await;
        self.activity.mark();
        match answered {
            Err(_) => {
                // The instance is still busy with it: replace it rather than queue behind it.
                lease.broken();
                tracing::warn!(application_id = %route.application_id, "invocation timed out");
                Err(RouterError::TimedOut {
                    key: route.key.clone(),
                    timeout: route.timeout,
                })
            }
            Ok(Err(failure)) if over_limit(&*failure) => {
                drop(lease);
                Err(RouterError::TooLarge {
                    limit: self.max_body_bytes,
                })
            }
            Ok(Err(failure)) => {
                lease.broken();
                tracing::warn!(application_id = %route.application_id, error = %failure, "instance failed mid-request");
                Err(RouterError::Crashed { key: route.key.clone() })
            }
            Ok(Ok((response, connection))) => {
                let (mut parts, body) = response.into_parts();
                request::keep_end_to_end(&mut parts.headers);
                Ok(Response::from_parts(
                    parts,
                    Leased::new(body, lease, connection).boxed(),
                ))
            }
        }
    }
}

/// Whether `failure` is the request body going over its limit (a body without a length, or
/// a wrong one).
fn over_limit(failure: &(dyn std::error::Error + 'static)) -> bool {
    nuage_core::error::sources(failure).any(|error| error.is::<LengthLimitError>())
}
