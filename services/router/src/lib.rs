//! The router: the invocation data plane. It owns nothing durable.
//!
//! A request to a function's or container's endpoint arrives on the router's own listener; the
//! route table (refreshed from the functions and containers services, never queried per
//! request) names the application; [`pool::Pools`] holds an instance for it, starting one
//! through the runner when none is idle (scale from zero, up to `max_scale`, then a bounded
//! queue, then 503); the request is proxied with the application's `timeout` as its one
//! deadline. Idle instances are stopped down to `min_scale`.

mod config;
mod metrics;
mod pool;
mod privacy;
mod proxy;
mod routes;

pub use config::RouterConfig;
pub use metrics::Metrics;
pub use pool::Pools;
pub use privacy::{Privacy, TOKEN_HEADERS};
pub use proxy::{Proxy, ProxyBody, error};
pub use routes::{Route, Routes, key_of};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use nuage_core::internal::InternalAuth;
use nuage_core::logsink::LogSink;
use nuage_core::transport::Authed;
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use nuage_proto::runner::v1::WatchEventsRequest;
use nuage_proto::runner::v1::event::Change;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

/// The services the router calls.
#[derive(Debug, Clone)]
pub struct Peers {
    /// Function routes.
    pub functions: FunctionsClient<Authed>,
    /// Container routes.
    pub containers: ContainersClient<Authed>,
    /// Instances.
    pub runner: RunnerClient<Authed>,
    /// Namespace public keys, to check tokens of private applications.
    pub tokens: TokensClient<Authed>,
}

/// A running router.
#[derive(Debug)]
pub struct Router {
    proxy: Proxy,
    /// The serving task; it ends once the stop signal fired and connections drained.
    pub task: JoinHandle<()>,
    /// Route refresh, runner events and idle reaping.
    pub background: Vec<JoinHandle<()>>,
}

impl Router {
    /// Returns a function that renders the router's figures.
    pub fn metrics_renderer(&self) -> impl Fn() -> String + Send + Sync + 'static {
        let proxy = self.proxy.clone();
        move || proxy.metrics.render(&proxy.pools)
    }
}

/// Where the router listens.
#[derive(Debug)]
pub struct Listeners {
    /// Function and container endpoints.
    pub public: TcpListener,
    /// `/{application_id}/...` for nuage itself (crons), without the privacy check, for
    /// callers presenting the credential.
    pub internal: Option<(TcpListener, InternalAuth)>,
}

/// Serves `listeners` until `stopped` fires; `domain` enables host-based endpoints. Failed
/// invocations leave a line in `logs`.
pub fn start(
    config: &RouterConfig,
    domain: Option<String>,
    listeners: Listeners,
    peers: Peers,
    logs: Option<LogSink>,
    stopped: watch::Receiver<bool>,
    grace: Duration,
) -> Router {
    let routes = Routes::new(peers.functions, peers.containers);
    let pools = Pools::new(peers.runner.clone(), config.queue_limit);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    let proxy = Proxy {
        routes: routes.clone(),
        pools: pools.clone(),
        client,
        domain: domain.map(|domain| domain.trim_matches('.').to_owned()),
        max_body_bytes: config.max_body_bytes,
        metrics: Metrics::default(),
        privacy: Privacy::new(peers.tokens),
        logs,
    };
    let refresh = Duration::from_millis(config.routes_refresh_ms.max(10));
    let idle = Duration::from_secs(config.idle_seconds);
    let background = vec![
        tokio::spawn(routes.clone().run(refresh)),
        tokio::spawn(routes.clone().follow()),
        tokio::spawn(watch_runner(peers.runner, pools.clone())),
        tokio::spawn(reap(routes, pools, idle)),
    ];
    let serving = std::sync::Arc::new(proxy.clone());
    let Listeners {
        public: listener,
        internal,
    } = listeners;
    let internal = internal.map(|(listener, auth)| {
        tokio::spawn(serve(
            listener,
            serving.clone(),
            Some(std::sync::Arc::new(auth)),
            stopped.clone(),
            grace,
        ))
    });
    let public = tokio::spawn(serve(listener, serving, None, stopped, grace));
    let task = tokio::spawn(async move {
        let _ = public.await;
        if let Some(internal) = internal {
            let _ = internal.await;
        }
    });
    Router {
        proxy,
        task,
        background,
    }
}

/// Answers connections on `listener` until `stopped` fires, then lets them finish within
/// `grace`; `internal` makes it the internal listener.
async fn serve(
    listener: TcpListener,
    proxy: std::sync::Arc<Proxy>,
    internal: Option<std::sync::Arc<InternalAuth>>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let internal = internal.clone();
        let service = service_fn(move |request| {
            // One reference count per request, not a copy of every client.
            let proxy = proxy.clone();
            let internal = internal.clone();
            async move {
                Ok::<_, Infallible>(match internal {
                    Some(auth) => proxy.handle_internal(request, peer, &auth).await,
                    None => proxy.handle(request, peer).await,
                })
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("invocations did not finish within the grace period");
    }
}

/// Follows the runner's events: new versions, instances that died, removed applications.
async fn watch_runner(runner: RunnerClient<Authed>, pools: Pools) {
    loop {
        match runner.clone().watch_events(WatchEventsRequest {}).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                while let Some(Ok(event)) = stream.next().await {
                    match event.change {
                        Some(Change::Deployed(instance)) => pools.deployed(instance),
                        Some(Change::Exited(instance)) => pools.exited(&instance),
                        Some(Change::Removed(_)) => pools.removed(&event.application_id),
                        None => {}
                    }
                }
            }
            Err(status) => tracing::debug!(%status, "cannot follow the runner's events yet"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops idle instances and keeps `min_scale` ones warm.
async fn reap(routes: Routes, pools: Pools, idle: Duration) {
    let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        let warm: std::collections::HashMap<String, u32> = routes
            .all()
            .into_iter()
            .filter(|route| route.status == nuage_proto::common::v1::ApplicationStatus::Ready)
            .map(|route| (route.application_id.clone(), route.min_scale))
            .collect();
        pools.reap(|application_id| warm.get(application_id).copied(), idle);
    }
}
