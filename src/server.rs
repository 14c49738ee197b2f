//! Starting and stopping the roles of one process. Each role's start is its crate's `serve`
//! (the gRPC roles are composed in `roles`); this file binds the listeners, hands every role
//! what it calls, and stops them in order.

use crate::config::{Config, Role};
use crate::grpc::{Services, Serving};
use crate::probes::{Probes, Stage};
use crate::roles::{self, Handles};
use crate::s3::EmbeddedS3;
use anyhow::Context;
use nuage_clients::LogSink;
use nuage_core::internal::InternalAuth;
use nuage_core::storage::StorageAccess;
use nuage_core::transport::{self, Authed, Transport};
use nuage_core::{Database, Secret};
use nuage_gateway::{GatewayExtras, ServiceClients, ServiceTransports};
use nuage_iam::NewApiKey;
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use nuage_proto::logs::v1::logs_client::LogsClient;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::Routes;

/// Lines, and message bytes, a process's log sink holds before it drops (and counts) more.
const LOG_SINK_LINES: usize = 65_536;
const LOG_SINK_BYTES: usize = 64 * 1024 * 1024;

/// The addresses a running server bound, as written to `<data-dir>/endpoints.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoints {
    /// The REST API, when the gateway role runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<SocketAddr>,
    /// The internal gRPC listener, when any service role runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<SocketAddr>,
    /// The embedded S3 endpoint, when the functions role runs without an external store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<SocketAddr>,
    /// The router: where function and container endpoints answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functions: Option<SocketAddr>,
    /// The router's internal listener (`services.router` of crons replicas run elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router_internal: Option<SocketAddr>,
    /// The health listener (`/healthz`, `/livez`), when `health_listen` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<SocketAddr>,
}

/// A started server; stop it with [`RunningServer::shutdown`].
pub struct RunningServer {
    endpoints: Endpoints,
    http_stop: watch::Sender<bool>,
    grpc_stop: watch::Sender<bool>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    grpc: Option<Grpc>,
    router: Option<nuage_router::Router>,
    database: Option<Database>,
    probes: Option<Probes>,
    grace: Duration,
}

impl RunningServer {
    /// Returns the bound addresses.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Returns the object store and the credentials the functions role signs with (the
    /// embedded endpoint's when no external store is configured), when that role runs here.
    pub fn storage_access(&self) -> Option<&StorageAccess> {
        self.grpc.as_ref()?.storage.as_ref()
    }

    /// Returns the default tenant's key if this start created it.
    pub fn bootstrap_key(&self) -> Option<&NewApiKey> {
        self.grpc.as_ref()?.handles.bootstrap.as_ref()
    }

    /// Stops accepting requests, lets in-flight ones finish (up to the grace period), then
    /// stops the services they depend on.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        // Out of rotation first: `/healthz` answers 503 while in-flight work drains.
        if let Some(probes) = &self.probes {
            probes.set(Stage::Stopping);
        }
        let mut grpc = self.grpc.take();
        // Claim no more firings: other replicas fire what comes due from now on.
        if let Some(crons) = grpc.as_mut().and_then(|grpc| grpc.handles.crons.take()) {
            crons.stop().await;
        }
        // Deliver no more messages: other replicas' subscriptions receive them from now on.
        if let Some(triggers) = grpc.as_mut().and_then(|grpc| grpc.handles.triggers.take()) {
            triggers.stop().await;
        }
        let _ = self.http_stop.send(true);
        if let Some(http) = self.http.take() {
            let late = "in-flight requests did not finish within the grace period";
            drain(self.grace, http, "http server", late).await?;
        }
        if let Some(router) = self.router.take() {
            // Its listener stopped with the gateway's (same signal): wait for invocations.
            if tokio::time::timeout(self.grace, router.task).await.is_err() {
                tracing::warn!("invocations did not finish within the grace period");
            }
            for task in router.background {
                task.abort();
            }
        }
        if let Some(runner) = grpc.as_mut().and_then(|grpc| grpc.handles.runner.take()) {
            runner.stop_all().await;
        }
        let _ = self.grpc_stop.send(true);
        if let Some(grpc) = grpc {
            grpc.stop(self.grace).await?;
        }
        if let Some(database) = self.database.take() {
            database.close().await;
        }
        if let Some(probes) = self.probes.take() {
            probes.stop().await;
        }
        tracing::info!("nuage stopped");
        Ok(())
    }
}

/// Installs SIGINT and SIGTERM handlers now and returns a future that resolves when either
/// arrives. Installing before awaiting means a signal sent in between is not lost.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, draining"),
            _ = interrupt.recv() => tracing::info!("SIGINT received, draining"),
        }
    })
}

/// Returns a secret set in the config, or else read from its file (setting `name`_file).
fn configured_secret(secret: &Option<Secret>, file: &Option<PathBuf>, name: &str) -> anyhow::Result<Option<Secret>> {
    match (secret, file) {
        (Some(secret), _) => Ok(Some(secret.clone())),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {name}_file `{}`", path.display()))?;
            if text.trim().is_empty() {
                anyhow::bail!("{name}_file `{}` is empty", path.display());
            }
            Ok(Some(Secret::new(text.trim())))
        }
        (None, None) => Ok(None),
    }
}

fn internal_auth(config: &Config) -> anyhow::Result<InternalAuth> {
    match configured_secret(&config.internal_secret, &config.internal_secret_file, "internal_secret")? {
        Some(secret) => InternalAuth::new(&secret).map_err(anyhow::Error::msg),
        None => Ok(InternalAuth::random()),
    }
}

/// Starts every role `config` names and returns once all listeners are bound and
/// `endpoints.json` is written.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    // rustls has two cryptographic providers here (the crates nuage uses ask for both): crates
    // that build their TLS clients with the process-wide one, such as async-nats for a NATS
    // server over TLS, panic unless it is chosen. Another start in this process chose it.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir `{}`", config.data_dir.display()))?;
    let auth = internal_auth(&config)?;
    // Bound first, so that a probe finds the process starting (503) rather than nothing.
    let probes = match config.health_listen {
        Some(listen) => Some(
            Probes::bind(listen)
                .await
                .with_context(|| format!("binding the health listener {listen}"))?,
        ),
        None => None,
    };
    let (http_stop, http_stopped) = watch::channel(false);
    let (grpc_stop, grpc_stopped) = watch::channel(false);
    // The router's listeners come first: endpoints name their address.
    let place = RouterPlace::bind(&config, &auth).await?;
    let database = open_database(&config).await?;
    let grpc = match &database {
        Some(database) => Some(start_grpc(&config, database, &auth, &place, grpc_stopped).await?),
        None => None,
    };
    if let (Some(probes), Some(grpc)) = (&probes, &grpc) {
        probes.watch_database(grpc.serving.database_up.clone());
    }
    let reach = Reach {
        config: &config,
        routes: grpc.as_ref().map(|grpc| &grpc.serving.routes),
        auth: &auth,
    };
    let router = match place.listeners {
        Some(listeners) => {
            let logs = match &grpc {
                Some(grpc) => grpc.logs.clone(),
                None => log_sink(&config, None, &auth)?,
            };
            Some(router_role(&config, listeners, &reach, logs, http_stopped.clone())?)
        }
        None => None,
    };
    let mut gateway = None;
    if config.runs(Role::Gateway) {
        let extras = gateway_extras(&config, database.as_ref(), grpc.as_ref(), router.as_ref());
        gateway = Some(gateway_role(&config, &reach, extras, http_stopped).await?);
    }
    let endpoints = Endpoints {
        api: gateway.as_ref().map(|(address, _)| *address),
        grpc: grpc.as_ref().map(|grpc| grpc.address),
        s3: grpc.as_ref().and_then(|grpc| grpc.s3.as_ref()).map(|s3| s3.address),
        functions: router.as_ref().map(|_| place.address),
        router_internal: place.internal,
        health: probes.as_ref().map(Probes::address),
    };
    write_atomically(
        &config.data_dir.join("endpoints.json"),
        &serde_json::to_vec_pretty(&endpoints)?,
    )?;
    tracing::info!(api = ?endpoints.api, grpc = ?endpoints.grpc, s3 = ?endpoints.s3, functions = ?endpoints.functions, roles = ?config.roles, "nuage ready");
    if let Some(probes) = &probes {
        probes.set(Stage::Serving);
    }
    Ok(RunningServer {
        endpoints,
        http_stop,
        grpc_stop,
        http: gateway.map(|(_, task)| task),
        grpc,
        router,
        database,
        probes,
        grace: Duration::from_secs(config.shutdown_grace_seconds),
    })
}

/// Returns the database, migrated, when this process runs a service role.
async fn open_database(config: &Config) -> anyhow::Result<Option<Database>> {
    if !Role::SERVICES.iter().any(|role| config.runs(*role)) {
        return Ok(None);
    }
    let url = config.database_url();
    let deadline = std::time::Duration::from_millis(config.database_timeout_ms.max(1));
    let database = Database::connect_with_deadline(&url, deadline)
        .await
        .with_context(|| format!("connecting to `{}`", nuage_core::db::redact_url(&url)))?;
    database.migrate().await.context("applying migrations")?;
    Ok(Some(database))
}

/// Where the router answers, and its listeners when this process runs it.
struct RouterPlace {
    listeners: Option<nuage_router::Listeners>,
    /// Function and container endpoints (the configured address when another process runs it).
    address: SocketAddr,
    /// The internal listener, when this process runs the router.
    internal: Option<SocketAddr>,
    /// Where crons fire: the internal listener, or `services.router`.
    internal_url: Option<String>,
}

impl RouterPlace {
    async fn bind(config: &Config, auth: &InternalAuth) -> anyhow::Result<Self> {
        if !config.runs(Role::Router) {
            return Ok(Self {
                listeners: None,
                address: config.router.listen,
                internal: None,
                internal_url: config.services.router.clone(),
            });
        }
        let public = TcpListener::bind(config.router.listen)
            .await
            .with_context(|| format!("binding the router listener {}", config.router.listen))?;
        // Its internal listener: crons fire through it.
        let internal_listen = config.router.internal_listen;
        let internal = TcpListener::bind(internal_listen)
            .await
            .with_context(|| format!("binding the router's internal listener {internal_listen}"))?;
        let internal_address = internal.local_addr()?;
        Ok(Self {
            address: public.local_addr()?,
            internal: Some(internal_address),
            internal_url: Some(format!("http://{internal_address}")),
            listeners: Some(nuage_router::Listeners {
                public,
                internal: Some((internal, auth.clone())),
            }),
        })
    }
}

/// The gRPC side of one process: its services, served, and what it keeps of them.
struct Grpc {
    address: SocketAddr,
    serving: Serving,
    handles: Handles,
    /// Where this process's producers of lines ship them.
    logs: Option<LogSink>,
    /// The object store the functions role signs for, when it runs here.
    storage: Option<StorageAccess>,
    /// The embedded S3 endpoint, when this process runs it.
    s3: Option<EmbeddedS3>,
}

impl Grpc {
    /// Waits up to `grace` for gRPC calls, then for S3 requests, and stops background tasks.
    async fn stop(self, grace: Duration) -> anyhow::Result<()> {
        let late = "grpc calls did not finish within the grace period";
        drain(grace, self.serving.task, "grpc server", late).await?;
        if let Some(s3) = self.s3 {
            let late = "S3 requests did not finish within the grace period";
            drain(grace, s3.task, "S3 endpoint", late).await?;
        }
        for task in self.serving.background {
            task.abort();
        }
        Ok(())
    }
}

/// Binds the gRPC listener, starts every gRPC role of `config` on it, and serves them.
async fn start_grpc(
    config: &Config,
    database: &Database,
    auth: &InternalAuth,
    router: &RouterPlace,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<Grpc> {
    let listener = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("binding gRPC listener {}", config.grpc_listen))?;
    let address = listener.local_addr()?;
    // Services call each other over gRPC: this process's own listener for the roles it runs,
    // the configured URL for the others.
    let local_url = format!("http://{address}");
    let logs = log_sink(config, Some(&local_url), auth)?;
    let (storage, s3) = object_store(config, stopped.clone()).await?;
    let mut applications = config.applications.clone();
    if applications.endpoint_base_url.is_none() {
        applications.endpoint_base_url = Some(format!("http://{}", router.address));
    }
    let context = roles::Context {
        config,
        database: database.clone(),
        auth: auth.clone(),
        local_url,
        logs: logs.clone(),
        stopped: stopped.clone(),
        applications,
        storage: storage.clone(),
        router: router.internal_url.clone(),
    };
    let mut services = Services::new(auth.clone());
    let handles = roles::start(&context, &mut services).await?;
    Ok(Grpc {
        address,
        serving: services.serve(config, listener, database.clone(), stopped).await,
        handles,
        logs,
        storage: storage.filter(|_| config.runs(Role::Functions)),
        s3,
    })
}

/// Returns the object store functions sign for (the embedded endpoint, started here, when no
/// external one is configured) and the builder reads from, when either runs here.
async fn object_store(
    config: &Config,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<(Option<StorageAccess>, Option<EmbeddedS3>)> {
    let external = config.storage.external_access();
    if !config.runs(Role::Functions) || external.is_some() {
        return Ok((external, None));
    }
    let master_key = crate::admin::master_key(config)?;
    let embedded = crate::s3::start(&config.storage, &config.data_dir, &master_key, stopped).await?;
    Ok((Some(embedded.access.clone()), Some(embedded)))
}

/// Returns the sink through which this process's producers of lines (runner, builder, crons,
/// router) ship them: to its own logs service through `local_url`, else to `services.logs`.
fn log_sink(config: &Config, local_url: Option<&str>, auth: &InternalAuth) -> anyhow::Result<Option<LogSink>> {
    let url = if config.runs(Role::Logs) {
        local_url
    } else {
        config.services.logs.as_deref()
    };
    let Some(url) = url else {
        let producers = [Role::Runner, Role::Builder, Role::Crons, Role::Router];
        if producers.iter().any(|role| config.runs(*role)) {
            tracing::warn!(
                "neither the logs role nor services.logs: instance, build, cron and router lines are not kept"
            );
        }
        return Ok(None);
    };
    let client = LogsClient::new(transport::authed(
        transport::dial(Role::Logs.name(), url, config.services.deadline())?,
        auth.clone(),
    ));
    Ok(Some(LogSink::start(client, LOG_SINK_LINES, LOG_SINK_BYTES)))
}

/// How the gateway and the router reach services: in process when this process runs them,
/// over gRPC otherwise.
struct Reach<'a> {
    config: &'a Config,
    routes: Option<&'a Routes>,
    auth: &'a InternalAuth,
}

impl Reach<'_> {
    fn transport(&self, role: Role) -> anyhow::Result<Transport> {
        // Twice a service's: what a service calls in turn is cut at its own deadline first, and
        // the answer names that dependency rather than the service.
        let deadline = self.config.services.deadline() * 2;
        match (self.routes, self.config.services.get(role)) {
            (Some(routes), _) if self.config.runs(role) => {
                Ok(transport::in_process(role.name(), routes.clone(), deadline))
            }
            (_, Some(url)) => Ok(transport::dial(role.name(), url, deadline)?),
            _ => anyhow::bail!("no gRPC URL for the {} service", role.name()),
        }
    }

    fn authed(&self, role: Role) -> anyhow::Result<Authed> {
        Ok(transport::authed(self.transport(role)?, self.auth.clone()))
    }
}

/// Starts the router on `listeners`; failed invocations leave a line in `logs`.
fn router_role(
    config: &Config,
    listeners: nuage_router::Listeners,
    reach: &Reach<'_>,
    logs: Option<LogSink>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<nuage_router::Router> {
    let peers = nuage_router::Peers {
        functions: FunctionsClient::new(reach.authed(Role::Functions)?),
        containers: ContainersClient::new(reach.authed(Role::Containers)?),
        runner: RunnerClient::new(reach.authed(Role::Runner)?),
        tokens: TokensClient::new(reach.authed(Role::Tokens)?),
    };
    let domain = config.applications.domain.clone().filter(|domain| !domain.is_empty());
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    // Half the cores are left to instance processes only where this process runs them.
    let mut router = config.router.clone();
    router.instances_beside = config.runs(Role::Runner) && config.runner.backend == "local";
    nuage_router::start(&router, domain, listeners, peers, logs, stopped, grace)
        .context("starting the router's threads")
}

/// Returns what the gateway shows of the rest of the process on `/healthz` and `/metrics`.
fn gateway_extras(
    config: &Config,
    database: Option<&Database>,
    grpc: Option<&Grpc>,
    router: Option<&nuage_router::Router>,
) -> GatewayExtras {
    let mut extras = GatewayExtras::default();
    let storage = grpc.and_then(|grpc| grpc.storage.as_ref());
    extras.dependencies = crate::health::dependencies(
        database,
        storage.map(|access| (&config.storage, access)),
        config.data_dir.clone(),
        config.gateway.health_min_free_disk_bytes,
    );
    if let Some(router) = router {
        extras.metrics.push(Box::new(router.metrics_renderer()));
    }
    if let Some(grpc) = grpc {
        extras.warnings = grpc.serving.warnings.clone();
        if let Some(logs) = grpc.handles.logs.clone() {
            extras.metrics.push(Box::new(move || logs.render()));
        }
        if let Some(tokens) = grpc.handles.tokens.clone() {
            extras.metrics.push(Box::new(move || tokens.render()));
        }
    }
    extras
}

/// Starts the gateway on `config.listen`; returns its address and serving task.
async fn gateway_role(
    config: &Config,
    reach: &Reach<'_>,
    extras: GatewayExtras,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let transports = ServiceTransports {
        iam: reach.transport(Role::Iam)?,
        namespaces: reach.transport(Role::Namespaces)?,
        functions: reach.transport(Role::Functions)?,
        containers: reach.transport(Role::Containers)?,
        crons: reach.transport(Role::Crons)?,
        tokens: reach.transport(Role::Tokens)?,
        logs: reach.transport(Role::Logs)?,
    };
    let clients = ServiceClients::new(transports, reach.auth.clone());
    let mut gateway = config.gateway.clone();
    gateway.metrics_token = configured_secret(
        &gateway.metrics_token,
        &gateway.metrics_token_file,
        "gateway.metrics_token",
    )?;
    // v1beta1 names sandboxes: `v2` is gVisor, `v1` the bubblewrap sandbox (or, as a default,
    // plain processes). The gateway offers what the runner does (on Kubernetes, what the
    // cluster's runtime classes do).
    let offer = nuage_runner::Offer::of_backend(&config.runner);
    gateway.sandbox = offer
        .default
        .map_or("v1", nuage_runner::SandboxKind::api_name)
        .to_owned();
    gateway.sandboxes = offer.offered.iter().map(|kind| kind.api_name().to_owned()).collect();
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API listener {}", config.listen))?;
    let address = listener.local_addr()?;
    Ok((
        address,
        nuage_gateway::serve(gateway, clients, extras, listener, stopped),
    ))
}

/// Waits up to `grace` for `task`, the serving task of `name`; warns `late` when it runs over.
async fn drain<E>(grace: Duration, task: JoinHandle<Result<(), E>>, name: &str, late: &str) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(grace, task).await {
        Ok(joined) => joined
            .with_context(|| format!("{name} task"))?
            .with_context(|| name.to_owned()),
        Err(_) => {
            tracing::warn!("{late}");
            Ok(())
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).with_context(|| format!("writing `{}`", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing `{}`", path.display()))?;
    Ok(())
}
