//! WebAssembly functions, which the router runs itself: each one's precompiled component is
//! fetched from the runner (which reads it from the function's image and opens its secrets)
//! once per version and kept loaded; each request runs in a fresh instance of it (nuage-wasm's
//! [`Host`]) within the function's timeout and memory cap, and what the instance prints goes to
//! the function's logs.

use crate::body::{BoxError, ProxyBody};
use crate::control::Control;
use crate::error::RouterError;
use crate::pool::AcquireError;
use crate::request::{self, Peer, X_REQUEST_ID};
use crate::routes::Route;
use http::{Request, Response};
use http_body_util::{BodyExt, LengthLimitError};
use hyper::body::Incoming;
use nuage_clients::logsink::LogSink;
use nuage_core::transport::Authed;
use nuage_proto::runner::v1::GetComponentRequest;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_wasm::{Egress, Failure, Host, Loaded, Manifest, PoolConfig, Synced};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The components of WebAssembly functions, loaded.
#[derive(Debug, Clone)]
pub struct Components {
    /// Made on the first request to a WebAssembly function (its pool reserves address space).
    host: Arc<OnceLock<Result<Host, String>>>,
    pool: PoolConfig,
    loaded: Arc<Mutex<HashMap<String, Arc<Loaded>>>>,
    /// The version the runner last said is current, per application: a component fetched
    /// while a newer version was deployed serves its request but is not kept.
    current: Arc<Mutex<HashMap<String, String>>>,
    /// One load at a time: requests that arrive during it wait for it and share it.
    loading: Arc<tokio::sync::Mutex<()>>,
    /// Advances when every loaded component is forgotten: a load that began before is used
    /// for its request but not kept.
    generation: Arc<AtomicU64>,
    runner: RunnerClient<Authed>,
    control: Control,
    logs: Option<LogSink>,
}

impl Components {
    /// Returns no components; they come from `runner`, called on `control`, and instances come
    /// from a pool sized by `pool`. What instances print goes to `logs`.
    pub fn new(pool: PoolConfig, runner: RunnerClient<Authed>, control: Control, logs: Option<LogSink>) -> Self {
        Self {
            host: Arc::default(),
            pool,
            loaded: Arc::default(),
            current: Arc::default(),
            loading: Arc::default(),
            generation: Arc::default(),
            runner,
            control,
            logs,
        }
    }

    /// A new version of `application_id` is current (`None`: it was removed): its component
    /// is loaded again on its next request.
    pub fn forget(&self, application_id: &str, version: Option<String>) {
        self.loaded.lock().expect("components lock").remove(application_id);
        let mut current = self.current.lock().expect("components lock");
        match version {
            Some(version) => current.insert(application_id.to_owned(), version),
            None => current.remove(application_id),
        };
    }

    /// Forgets every loaded component and which versions are current: after the runner's
    /// events were not followed for a while (its stream broke), any of them may be stale.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.loaded.lock().expect("components lock").clear();
        self.current.lock().expect("components lock").clear();
    }

    fn host(&self) -> Result<&Host, AcquireError> {
        self.host
            .get_or_init(|| Host::new(&self.pool).map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|message| AcquireError::StartFailed(message.clone()))
    }

    /// Returns the loaded component of `route`'s function, and whether it was loaded now.
    pub async fn get(&self, route: &Route) -> Result<(Arc<Loaded>, bool), AcquireError> {
        let id = &route.application_id;
        if let Some(loaded) = self.loaded.lock().expect("components lock").get(id) {
            return Ok((loaded.clone(), false));
        }
        let _one = self.loading.lock().await;
        if let Some(loaded) = self.loaded.lock().expect("components lock").get(id) {
            return Ok((loaded.clone(), false));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let (bytes, manifest) = self.fetch(id).await?;
        let host = self.host()?;
        let loaded = Arc::new(
            host.load(&bytes, manifest)
                .map_err(|error| AcquireError::StartFailed(error.to_string()))?,
        );
        let stale = self
            .current
            .lock()
            .expect("components lock")
            .get(id)
            .is_some_and(|current| *current != loaded.manifest().version);
        if !stale && generation == self.generation.load(Ordering::SeqCst) {
            self.loaded
                .lock()
                .expect("components lock")
                .insert(id.clone(), loaded.clone());
        }
        Ok((loaded, true))
    }

    /// Returns the current component of `application_id` and what it runs with, from the
    /// runner.
    async fn fetch(&self, application_id: &str) -> Result<(Vec<u8>, Manifest), AcquireError> {
        let mut runner = self.runner.clone();
        let request = GetComponentRequest {
            application_id: application_id.to_owned(),
        };
        let fetched = self
            .control
            .run(async move {
                let mut parts = runner.get_component(request).await?.into_inner();
                let mut manifest = Manifest::default();
                let mut bytes = Vec::new();
                while let Some(part) = parts.message().await? {
                    if bytes.is_empty() && manifest.version.is_empty() {
                        manifest = Manifest {
                            version: part.version,
                            environment: part.environment.into_iter().collect(),
                            memory_limit_mb: part.memory_limit_mb,
                            egress: Egress {
                                public: part.public_egress,
                            },
                        };
                    }
                    bytes.extend_from_slice(&part.data);
                }
                Ok::<_, tonic::Status>((bytes, manifest))
            })
            .await
            .ok_or_else(|| AcquireError::StartFailed("the router is stopping".to_owned()))?;
        fetched.map_err(|status| {
            if status.code() == tonic::Code::FailedPrecondition && status.message().contains("no deployed version") {
                AcquireError::NotDeployed(status.message().to_owned())
            } else {
                AcquireError::StartFailed(status.message().to_owned())
            }
        })
    }

    /// Runs `request` (for `path`, from `peer`) in a fresh instance of `loaded`, `route`'s
    /// component, and returns its answer.
    pub async fn invoke(
        &self,
        route: &Route,
        loaded: &Loaded,
        request: Request<Incoming>,
        (path, peer, max_body_bytes): (&str, &Peer, u64),
    ) -> Result<Response<ProxyBody>, RouterError> {
        let host = self.host().map_err(|_| RouterError::StartFailed {
            key: route.key.clone(),
            message: "the WebAssembly host is not available".to_owned(),
        })?;
        let request = request::to_instance(request, "localhost", path, peer, max_body_bytes)?;
        let request_id = request
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let request = request.map(|body| body.map_err(incoming_error));
        let invocation = host.invoke(loaded, request, route.timeout).await;
        // A failure before the answer is logged by the caller, with the answer's status.
        let answered = invocation.response.is_ok();
        if let Some(logs) = self.logs.clone() {
            let application_id = route.application_id.clone();
            tokio::spawn(async move {
                let Ok(ended) = invocation.ended.await else { return };
                for (stream, lines) in [("stdout", ended.stdout), ("stderr", ended.stderr)] {
                    for line in lines {
                        logs.push(&application_id, &request_id, stream, line);
                    }
                }
                if let Some(failure) = ended.failure.filter(|_| answered) {
                    logs.push(
                        &application_id,
                        &request_id,
                        "router",
                        format!("the instance failed: {failure}"),
                    );
                }
            });
        }
        let (mut parts, body) = invocation
            .response
            .map_err(|failure| failed(route, failure))?
            .into_parts();
        request::keep_end_to_end(&mut parts.headers);
        let body = Synced::new(body).map_err(|error| Box::new(error) as BoxError).boxed();
        Ok(Response::from_parts(parts, body))
    }
}

/// Returns the wasi-http error for a request body that failed: over the router's limit, or cut.
fn incoming_error(error: BoxError) -> wasmtime_wasi_http::Error {
    if error.is::<LengthLimitError>() {
        wasmtime_wasi_http::Error::HttpRequestBodySize(None)
    } else {
        wasmtime_wasi_http::Error::ConnectionTerminated
    }
}

/// Returns the router's answer to a guest that gave none.
fn failed(route: &Route, failure: Failure) -> RouterError {
    let key = route.key.clone();
    match failure {
        Failure::TimedOut => RouterError::TimedOut {
            key,
            timeout: route.timeout,
        },
        Failure::Instantiate(message) => RouterError::StartFailed { key, message },
        failure @ (Failure::OverMemory { .. } | Failure::Trapped(_) | Failure::NoResponse(_)) => RouterError::Trapped {
            key,
            reason: failure.to_string(),
        },
    }
}
