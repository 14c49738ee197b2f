//! How the router is started: its worker threads, its listeners (public and internal), and
//! what runs beside them on the main runtime (route and revocation refresh, runner events, idle
//! reaping).

use crate::activity::Activity;
use crate::components::Components;
use crate::config::RouterConfig;
use crate::control::Control;
use crate::metrics::Metrics;
use crate::pool::Pools;
use crate::privacy::Privacy;
use crate::proxy::Proxy;
use crate::revocations::Revocations;
use crate::routes::Routes;
use crate::upstream::Upstreams;
use crate::workers::Workers;
use nuage_clients::logsink::LogSink;
use nuage_core::internal::InternalAuth;
use nuage_core::listener::Gate;
use nuage_core::transport::Authed;
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use nuage_proto::runner::v1::WatchEventsRequest;
use nuage_proto::runner::v1::event::Change;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
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
    metrics: Metrics,
    pools: Pools,
    /// The serving task; it ends once the stop signal fired and connections drained.
    pub task: JoinHandle<()>,
    /// Route refresh, runner events and idle reaping.
    pub background: Vec<JoinHandle<()>>,
}

impl Router {
    /// Returns a function that renders the router's figures.
    pub fn metrics_renderer(&self) -> impl Fn() -> String + Send + Sync + 'static {
        let (metrics, pools) = (self.metrics.clone(), self.pools.clone());
        move || metrics.render(&pools)
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

/// Serves `listeners` until `stopped` fires, on `config.threads` threads of its own; `domain`
/// enables host-based endpoints. Failed invocations leave a line in `logs`.
pub fn start(
    config: &RouterConfig,
    domain: Option<String>,
    listeners: Listeners,
    peers: Peers,
    logs: Option<LogSink>,
    stopped: watch::Receiver<bool>,
    grace: Duration,
) -> std::io::Result<Router> {
    let control = Control::current();
    let routes = Routes::new(peers.functions, peers.containers, control.clone());
    let pools = Pools::new(peers.runner.clone(), config.queue_limit, control.clone());
    let revocations = Revocations::new(peers.tokens.clone(), control.clone());
    let components = Components::new(config.wasm.clone(), peers.runner.clone(), control.clone(), logs.clone());
    let proxy = Proxy {
        components,
        routes: routes.clone(),
        pools: pools.clone(),
        upstreams: Upstreams::default(),
        domain: domain.map(|domain| domain.trim_matches('.').to_owned()),
        max_body_bytes: config.max_body_bytes,
        metrics: Metrics::default(),
        privacy: Privacy::new(peers.tokens, control, revocations.clone()),
        logs,
        activity: Activity::default(),
    };
    let (workers, worker_threads) = Workers::start(
        config.worker_threads(),
        &proxy,
        grace,
        Duration::from_micros(config.idle_poll_us),
        &config.connections,
    )?;
    let refresh = Duration::from_millis(config.routes_refresh_ms.max(10));
    let revocations_refresh = Duration::from_millis(config.revocations_refresh_ms);
    let idle = Duration::from_secs(config.idle_seconds);
    let background = vec![
        tokio::spawn(routes.clone().run(refresh)),
        tokio::spawn(routes.clone().follow()),
        tokio::spawn(revocations.run(revocations_refresh)),
        tokio::spawn(watch_runner(peers.runner, pools.clone(), proxy.components.clone())),
        tokio::spawn(reap(routes, pools, idle)),
    ];
    let gate = || Gate::new(&config.connections);
    let task = serve(listeners, workers, worker_threads, gate, stopped);
    Ok(Router {
        metrics: proxy.metrics,
        pools: proxy.pools,
        task,
        background,
    })
}

/// Starts accepting connections on `listeners` for `workers` until `stopped` fires; returns
/// the task that then waits for the worker threads to finish their connections.
fn serve(
    listeners: Listeners,
    workers: Workers,
    worker_threads: Vec<std::thread::JoinHandle<()>>,
    gate: impl Fn() -> Gate,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let workers = std::sync::Arc::new(workers);
    // Each listener has places of its own: a flood of public connections never takes the
    // places crons fire through.
    let internal = listeners.internal.map(|(listener, auth)| {
        tokio::spawn(accept(
            listener,
            workers.clone(),
            Some(std::sync::Arc::new(auth)),
            gate(),
            stopped.clone(),
        ))
    });
    let public = tokio::spawn(accept(listeners.public, workers, None, gate(), stopped));
    tokio::spawn(async move {
        let _ = public.await;
        if let Some(internal) = internal {
            let _ = internal.await;
        }
        // The listeners let go of the workers: they finish their connections, then end.
        let _ = tokio::task::spawn_blocking(move || {
            for thread in worker_threads {
                let _ = thread.join();
            }
        })
        .await;
    })
}

/// Accepts connections on `listener` until `stopped` fires and hands them to `workers`, as
/// many at once as `gate` has places; `internal` makes it the internal listener.
async fn accept(
    listener: TcpListener,
    workers: std::sync::Arc<Workers>,
    internal: Option<std::sync::Arc<InternalAuth>>,
    gate: Gate,
    mut stopped: watch::Receiver<bool>,
) {
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
        let Some((stream, place)) = gate.admit(stream) else {
            continue;
        };
        workers.hand(stream, peer, internal.clone(), place);
    }
}

/// Follows the runner's events: new versions (and components), instances that died, removed
/// applications.
async fn watch_runner(runner: RunnerClient<Authed>, pools: Pools, components: Components) {
    loop {
        match runner.clone().watch_events(WatchEventsRequest {}).await {
            Ok(stream) => {
                // What changed while the stream was down was not seen: load components anew.
                components.forget_all();
                let mut stream = stream.into_inner();
                while let Some(Ok(event)) = stream.next().await {
                    match event.change {
                        Some(Change::Deployed(instance)) => pools.deployed(instance),
                        Some(Change::Exited(instance)) => pools.exited(&instance),
                        Some(Change::Removed(_)) => {
                            pools.removed(&event.application_id);
                            components.forget(&event.application_id, None);
                        }
                        Some(Change::Component(version)) => components.forget(&event.application_id, Some(version)),
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
            // WebAssembly functions have no instances to keep warm.
            .filter(|route| route.status == nuage_proto::common::v1::ApplicationStatus::Ready && !route.wasm)
            .map(|route| (route.application_id.clone(), route.min_scale))
            .collect();
        pools.reap(|application_id| warm.get(application_id).copied(), idle);
    }
}
