//! Starting and stopping the roles of one process.

use crate::admin::{master_key, open_iam};
use crate::config::{Config, Role};
use anyhow::Context;
use nuage_builder::{BuilderService, JobStore, Worker};
use nuage_clients::LogSink;
use nuage_core::internal::{InternalAuth, REQUEST_ID_HEADER, RequireInternalAuth};
use nuage_core::secret::create_private_file;
use nuage_core::storage::StorageAccess;
use nuage_core::transport::{self, Transport};
use nuage_core::{Database, Secret};
use nuage_crons::{CronStore, CronsService};
use nuage_functions::Archives;
use nuage_gateway::{GatewayExtras, GatewayState, ServiceClients, ServiceTransports};
use nuage_iam::{IamService, NewApiKey};
use nuage_logs::{LogStore, LogsService};
use nuage_namespaces::{NamespaceStore, NamespacesService, Reconciler};
use nuage_proto::builder::v1::builder_client::BuilderClient;
use nuage_proto::builder::v1::builder_server::{self, BuilderServer};
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::containers::v1::containers_server;
use nuage_proto::crons::v1::crons_client::CronsClient;
use nuage_proto::crons::v1::crons_server::{self, CronsServer};
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use nuage_proto::functions::v1::functions_server;
use nuage_proto::iam::v1::iam_server::{self, IamServer};
use nuage_proto::logs::v1::logs_client::LogsClient;
use nuage_proto::logs::v1::logs_server::{self, LogsServer};
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use nuage_proto::namespaces::v1::namespaces_server::{self, NamespacesServer};
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::runner::v1::runner_server::{self, RunnerServer};
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use nuage_proto::tokens::v1::tokens_server::{self, TokensServer};
use nuage_runner::{LocalBackend, LogShipping, RunnerService, SpecStore};
use nuage_tokens::{KeyStore, TokensService};
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic_health::ServingStatus;

/// Lines, and message bytes, a process's log sink holds before it drops (and counts) more.
const LOG_SINK_LINES: usize = 65_536;
const LOG_SINK_BYTES: usize = 64 * 1024 * 1024;
/// Largest gRPC message of the logs service (batches of lines, pages of 64 KiB lines).
const LOGS_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Seconds between two sweeps of crons stuck in a transient state.
const CRON_RECONCILE_SECONDS: u64 = 5;

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
}

/// A started server; stop it with [`RunningServer::shutdown`].
pub struct RunningServer {
    endpoints: Endpoints,
    /// The tenant created on first start, if this start created it.
    bootstrap: Option<NewApiKey>,
    http_stop: watch::Sender<bool>,
    grpc_stop: watch::Sender<bool>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    grpc: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    s3: Option<JoinHandle<std::io::Result<()>>>,
    background: Vec<JoinHandle<()>>,
    database: Option<Database>,
    storage: Option<StorageAccess>,
    router: Option<nuage_router::Router>,
    runner: Option<RunnerService<LocalBackend>>,
    crons: Option<nuage_crons::Scheduler>,
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
        self.storage.as_ref()
    }

    /// Returns the default tenant's key if this start created it.
    pub fn bootstrap_key(&self) -> Option<&NewApiKey> {
        self.bootstrap.as_ref()
    }

    /// Stops accepting requests, lets in-flight ones finish (up to the grace period), then
    /// stops the services they depend on.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        // Claim no more firings: other replicas fire what comes due from now on.
        if let Some(crons) = self.crons.take() {
            crons.stop().await;
        }
        let _ = self.http_stop.send(true);
        if let Some(http) = self.http.take() {
            match tokio::time::timeout(self.grace, http).await {
                Ok(joined) => joined.context("http server task")?.context("http server")?,
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish within the grace period")
                }
            }
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
        if let Some(runner) = self.runner.take() {
            runner.stop_all().await;
        }
        let _ = self.grpc_stop.send(true);
        if let Some(grpc) = self.grpc.take() {
            match tokio::time::timeout(self.grace, grpc).await {
                Ok(joined) => joined.context("grpc server task")?.context("grpc server")?,
                Err(_) => tracing::warn!("grpc calls did not finish within the grace period"),
            }
        }
        if let Some(s3) = self.s3.take() {
            match tokio::time::timeout(self.grace, s3).await {
                Ok(joined) => joined.context("S3 endpoint task")?.context("S3 endpoint")?,
                Err(_) => tracing::warn!("S3 requests did not finish within the grace period"),
            }
        }
        for task in self.background.drain(..) {
            task.abort();
        }
        if let Some(database) = self.database.take() {
            database.close().await;
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
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir `{}`", config.data_dir.display()))?;
    let auth = internal_auth(&config)?;
    let runs_service = Role::SERVICES.iter().any(|role| config.runs(*role));
    let (http_stop, http_stopped) = watch::channel(false);
    let (grpc_stop, grpc_stopped) = watch::channel(false);
    let mut background = Vec::new();
    let mut warnings = Vec::new();

    // The router's listener comes first: endpoints name its address.
    let router_listener = if config.runs(Role::Router) {
        Some(
            TcpListener::bind(config.router.listen)
                .await
                .with_context(|| format!("binding the router listener {}", config.router.listen))?,
        )
    } else {
        None
    };
    let router_address = match &router_listener {
        Some(listener) => listener.local_addr()?,
        None => config.router.listen,
    };
    // Its internal listener: crons fire through it.
    let router_internal = if config.runs(Role::Router) {
        Some(
            TcpListener::bind(config.router.internal_listen)
                .await
                .with_context(|| {
                    format!(
                        "binding the router's internal listener {}",
                        config.router.internal_listen
                    )
                })?,
        )
    } else {
        None
    };
    let router_internal_address = match &router_internal {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    let router_internal_url = match (&router_internal, &config.services.router) {
        (Some(listener), _) => Some(format!("http://{}", listener.local_addr()?)),
        (None, url) => url.clone(),
    };
    let mut applications = config.applications.clone();
    if applications.endpoint_base_url.is_none() {
        applications.endpoint_base_url = Some(format!("http://{router_address}"));
    }
    let mut runner = None;

    let database = if runs_service {
        let url = config.database_url();
        let database = Database::connect(&url)
            .await
            .with_context(|| format!("connecting to `{}`", nuage_core::db::redact_url(&url)))?;
        database.migrate().await.context("applying migrations")?;
        Some(database)
    } else {
        None
    };

    let mut bootstrap = None;
    let mut logs_metrics = None;
    let mut cron_scheduler = None;
    let mut log_sink: Option<LogSink> = None;
    let mut grpc = None;
    let mut grpc_address = None;
    let mut grpc_routes = None;
    let mut s3 = None;
    let mut s3_address = None;
    let mut storage_access = None;
    if let Some(database) = &database {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let mut builder = Routes::builder();
        // Health answers only callers holding the internal secret, like every other service.
        builder.add_service(tonic::service::interceptor::InterceptedService::new(
            health_service,
            RequireInternalAuth(auth.clone()),
        ));
        let listener = TcpListener::bind(config.grpc_listen)
            .await
            .with_context(|| format!("binding gRPC listener {}", config.grpc_listen))?;
        // Services call each other over gRPC: this process's own listener for the roles it
        // runs, the configured URL for the others.
        let local_url = format!("http://{}", listener.local_addr()?);
        let peer = |role: Role| -> anyhow::Result<transport::Authed> {
            let url = if config.runs(role) {
                local_url.as_str()
            } else {
                config
                    .services
                    .get(role)
                    .with_context(|| format!("no gRPC URL for the {} service (set services.{0})", role.name()))?
            };
            Ok(transport::authed(transport::dial(url)?, auth.clone()))
        };
        let mut served = Vec::new();
        if config.runs(Role::Iam) {
            let store = open_iam(&config, database.clone())?;
            if store.is_empty().await? {
                let key = store.create_tenant("default").await?;
                write_credentials(&config.data_dir, &key)?;
                bootstrap = Some(key);
            }
            let service = IamServer::with_interceptor(IamService::new(store), RequireInternalAuth(auth.clone()));
            builder.add_service(service);
            served.push(iam_server::SERVICE_NAME);
        }
        if config.runs(Role::Logs) {
            let (service, tasks) =
                LogsService::start(LogStore::new(database.clone()), &config.logs, grpc_stopped.clone());
            background.extend(tasks);
            logs_metrics = Some(service.metrics());
            let server = LogsServer::new(service)
                .max_decoding_message_size(LOGS_MESSAGE_BYTES)
                .max_encoding_message_size(LOGS_MESSAGE_BYTES);
            builder.add_service(tonic::service::interceptor::InterceptedService::new(
                server,
                RequireInternalAuth(auth.clone()),
            ));
            served.push(logs_server::SERVICE_NAME);
        }
        // Producers of lines (runner, builder, crons, router) ship them through one sink.
        if log_sink.is_none() && (config.runs(Role::Logs) || config.services.logs.is_some()) {
            log_sink = Some(LogSink::start(
                LogsClient::new(peer(Role::Logs)?),
                LOG_SINK_LINES,
                LOG_SINK_BYTES,
            ));
        }
        if config.runs(Role::Tokens) {
            let keys = KeyStore::new(database.clone(), &master_key(&config)?, config.tokens.key_bits);
            builder.add_service(TokensServer::with_interceptor(
                TokensService::new(keys),
                RequireInternalAuth(auth.clone()),
            ));
            served.push(tokens_server::SERVICE_NAME);
        }
        if config.runs(Role::Namespaces) {
            let store = NamespaceStore::new(database.clone());
            let peers = nuage_namespaces::Peers {
                functions: FunctionsClient::new(peer(Role::Functions)?),
                containers: ContainersClient::new(peer(Role::Containers)?),
                tokens: TokensClient::new(peer(Role::Tokens)?),
            };
            // Namespaces name the registry the builder pushes to, unless told otherwise.
            let mut namespaces = config.namespaces.clone();
            if namespaces.registry_host.is_none() {
                namespaces.registry_host = config.builder.registry.clone();
            }
            // Before serving: a namespace made before endpoint suffixes existed must not hand
            // out an endpoint another tenant's namespace of the same name could share.
            let filled = store
                .fill_endpoint_suffixes()
                .await
                .context("giving namespaces their endpoint suffix")?;
            if filled > 0 {
                tracing::info!(namespaces = filled, "namespaces given an endpoint suffix");
            }
            let reconciler = Reconciler::new(store.clone(), namespaces.clone(), peers);
            background.push(tokio::spawn(reconciler.clone().run()));
            let service = NamespacesServer::with_interceptor(
                NamespacesService::new(store, reconciler, namespaces),
                RequireInternalAuth(auth.clone()),
            );
            builder.add_service(service);
            served.push(namespaces_server::SERVICE_NAME);
        }
        if config.runs(Role::Functions) {
            let access = match &config.storage.endpoint {
                Some(endpoint) => StorageAccess {
                    endpoint: endpoint.clone(),
                    access_key: config.storage.access_key.clone().unwrap_or_default(),
                    secret_key: config.storage.secret_key.clone().unwrap_or_else(|| Secret::new("")),
                },
                None => {
                    let embedded = crate::s3::start(
                        &config.storage,
                        &config.data_dir,
                        &master_key(&config)?,
                        grpc_stopped.clone(),
                    )
                    .await?;
                    s3_address = Some(embedded.address);
                    s3 = Some(embedded.task);
                    embedded.access
                }
            };
            storage_access = Some(access.clone());
            let archives = Archives::new(&config.storage, &access);
            // Ready before the first upload when the store answers; an unreachable store holds
            // up start-up for at most a few seconds, then the check goes on in the background.
            match tokio::time::timeout(Duration::from_secs(3), archives.ensure_bucket()).await {
                Ok(Ok(())) => {}
                _ => {
                    tracing::warn!("the archive bucket is not usable yet; uploads fail until it is");
                    let bucket = archives.clone();
                    background.push(tokio::spawn(async move {
                        if let Err(error) = bucket.ensure_bucket().await {
                            tracing::warn!(%error, "the archive bucket is still not usable");
                        }
                    }));
                }
            }
            let functions = nuage_functions::serve(
                &config.functions,
                applications.clone(),
                database.clone(),
                archives,
                application_peers(&peer)?,
                BuilderClient::new(peer(Role::Builder)?),
            );
            background.extend(functions.background);
            builder.add_service(tonic::service::interceptor::InterceptedService::new(
                functions.service,
                RequireInternalAuth(auth.clone()),
            ));
            served.push(functions_server::SERVICE_NAME);
        }
        if config.runs(Role::Containers) {
            let containers = nuage_containers::serve(
                &config.containers,
                applications.clone(),
                database.clone(),
                application_peers(&peer)?,
            );
            background.extend(containers.background);
            builder.add_service(tonic::service::interceptor::InterceptedService::new(
                containers.service,
                RequireInternalAuth(auth.clone()),
            ));
            served.push(containers_server::SERVICE_NAME);
        }
        if config.runs(Role::Builder) {
            // The builder reads archives from the same store the functions service signs for.
            let access = match (&storage_access, &config.storage.endpoint) {
                (Some(access), _) => access.clone(),
                (None, Some(endpoint)) => StorageAccess {
                    endpoint: endpoint.clone(),
                    access_key: config.storage.access_key.clone().unwrap_or_default(),
                    secret_key: config.storage.secret_key.clone().unwrap_or_else(|| Secret::new("")),
                },
                (None, None) => {
                    anyhow::bail!("the builder role without the functions role needs an external storage.endpoint")
                }
            };
            let registry = config
                .builder
                .registry_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("registry"));
            let jobs = JobStore::new(database.clone());
            let worker = Worker::new(
                jobs.clone(),
                nuage_clients::storage::client(&config.storage, &access),
                config.storage.bucket.clone(),
                FunctionsClient::new(peer(Role::Functions)?),
                registry,
                config.builder.clone(),
            )
            .with_logs(log_sink.clone());
            background.push(tokio::spawn(worker.clone().run()));
            let service = BuilderService::new(jobs, worker);
            builder.add_service(BuilderServer::with_interceptor(
                service,
                RequireInternalAuth(auth.clone()),
            ));
            served.push(builder_server::SERVICE_NAME);
        }
        if config.runs(Role::Runner) {
            if config.runner.backend != "local" {
                anyhow::bail!(
                    "runner.backend `{}` is not available: only `local` is built in",
                    config.runner.backend
                );
            }
            let work_dir = config
                .runner
                .work_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("runner"));
            let registry_dir = config
                .runner
                .registry_dir
                .clone()
                .or_else(|| config.builder.registry_dir.clone())
                .unwrap_or_else(|| config.data_dir.join("registry"));
            let output = tokio::sync::broadcast::channel(4096).0;
            let shipping = log_sink.clone().map(|sink| LogShipping {
                sink,
                rate: config.runner.log_lines_per_second,
            });
            let backend = LocalBackend::new(&config.runner, work_dir, registry_dir, output.clone(), shipping)
                .map_err(anyhow::Error::msg)?;
            warnings.extend(backend.warnings());
            let service = RunnerService::new(backend, SpecStore::new(database.clone()), output);
            runner = Some(service.clone());
            builder.add_service(RunnerServer::with_interceptor(
                service,
                RequireInternalAuth(auth.clone()),
            ));
            served.push(runner_server::SERVICE_NAME);
        }
        if config.runs(Role::Crons) {
            let store = CronStore::new(database.clone());
            let reconciler = nuage_crons::Reconciler::new(store.clone(), CRON_RECONCILE_SECONDS);
            let peers = nuage_crons::Peers {
                functions: FunctionsClient::new(peer(Role::Functions)?),
                containers: ContainersClient::new(peer(Role::Containers)?),
            };
            let router_url = router_internal_url
                .as_deref()
                .context("the crons role needs the router: run it too, or set services.router")?;
            let scheduler = nuage_crons::Scheduler::new(
                store.clone(),
                nuage_crons::FiringStore::new(database.clone()),
                nuage_crons::Invoker::new(router_url, auth.authorization()),
                config.crons.clone(),
                log_sink.clone(),
            );
            background.push(tokio::spawn(scheduler.clone().run()));
            cron_scheduler = Some(scheduler.clone());
            let reconciler = reconciler.with_scheduler(scheduler);
            background.push(tokio::spawn(reconciler.clone().run()));
            let service = CronsService::new(store, reconciler, peers, config.crons.seconds_schedules);
            builder.add_service(CronsServer::with_interceptor(
                service,
                RequireInternalAuth(auth.clone()),
            ));
            served.push(crons_server::SERVICE_NAME);
        }
        // Services report SERVING only while their database answers.
        background.push(tokio::spawn(watch_database(database.clone(), reporter, served)));
        grpc_address = Some(listener.local_addr()?);
        // Accepted sockets need TCP_NODELAY: without it a reply that spans two writes
        // waits for the peer's delayed ACK (about 40 ms) before its tail leaves.
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let routes = builder.routes();
        grpc_routes = Some(routes.clone());
        let router = tonic::transport::Server::builder()
            .trace_fn(|request| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                tracing::info_span!("grpc", path = %request.uri().path(), request_id)
            })
            .add_routes(routes);
        let mut stopped = grpc_stopped;
        grpc = Some(tokio::spawn(router.serve_with_incoming_shutdown(
            incoming,
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        )));
    }

    // A router without services in this process ships its failure lines to a remote logs.
    if log_sink.is_none()
        && let Some(url) = &config.services.logs
    {
        let client = LogsClient::new(transport::authed(transport::dial(url)?, auth.clone()));
        log_sink = Some(LogSink::start(client, LOG_SINK_LINES, LOG_SINK_BYTES));
    }
    if log_sink.is_none()
        && [Role::Runner, Role::Builder, Role::Crons, Role::Router]
            .iter()
            .any(|role| config.runs(*role))
    {
        tracing::warn!("neither the logs role nor services.logs: instance, build, cron and router lines are not kept");
    }

    // The gateway and the router call a service of this process in process, another
    // process's over gRPC.
    let transport = |role: Role| -> anyhow::Result<Transport> {
        match (&grpc_routes, config.services.get(role)) {
            (Some(routes), _) if config.runs(role) => Ok(transport::in_process(routes.clone())),
            (_, Some(url)) => Ok(transport::dial(url)?),
            _ => anyhow::bail!("no gRPC URL for the {} service", role.name()),
        }
    };
    let mut router = None;
    if let Some(listener) = router_listener {
        let peers = nuage_router::Peers {
            functions: FunctionsClient::new(transport::authed(transport(Role::Functions)?, auth.clone())),
            containers: ContainersClient::new(transport::authed(transport(Role::Containers)?, auth.clone())),
            runner: RunnerClient::new(transport::authed(transport(Role::Runner)?, auth.clone())),
            tokens: TokensClient::new(transport::authed(transport(Role::Tokens)?, auth.clone())),
        };
        router = Some(
            nuage_router::start(
                &config.router,
                applications.domain.clone().filter(|domain| !domain.is_empty()),
                nuage_router::Listeners {
                    public: listener,
                    internal: router_internal.map(|internal| (internal, auth.clone())),
                },
                peers,
                log_sink.clone(),
                http_stopped.clone(),
                Duration::from_secs(config.shutdown_grace_seconds),
            )
            .context("starting the router's threads")?,
        );
    }

    let mut http = None;
    let mut api_address = None;
    if config.runs(Role::Gateway) {
        let clients = ServiceClients::new(
            ServiceTransports {
                iam: transport(Role::Iam)?,
                namespaces: transport(Role::Namespaces)?,
                functions: transport(Role::Functions)?,
                containers: transport(Role::Containers)?,
                crons: transport(Role::Crons)?,
                tokens: transport(Role::Tokens)?,
                logs: transport(Role::Logs)?,
            },
            auth.clone(),
        );
        let mut extras = GatewayExtras {
            warnings: warnings.clone(),
            stopping: Some(http_stopped.clone()),
            ..GatewayExtras::default()
        };
        if let Some(router) = &router {
            extras.metrics.push(Box::new(router.metrics_renderer()));
        }
        if let Some(logs) = logs_metrics.clone() {
            extras.metrics.push(Box::new(move || logs.render()));
        }
        let mut gateway = config.gateway.clone();
        gateway.metrics_token = configured_secret(
            &gateway.metrics_token,
            &gateway.metrics_token_file,
            "gateway.metrics_token",
        )?;
        let app = nuage_gateway::router(GatewayState::with_extras(gateway, clients, extras));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the API listener {}", config.listen))?;
        api_address = Some(listener.local_addr()?);
        // Without TCP_NODELAY, a response written in several segments waits on the client's
        // delayed ACK: ~40 ms on list answers at low load.
        let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
        });
        let mut stopped = http_stopped;
        let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
        http = Some(tokio::spawn(server.into_future()));
    }

    let endpoints = Endpoints {
        api: api_address,
        grpc: grpc_address,
        s3: s3_address,
        functions: router.as_ref().map(|_| router_address),
        router_internal: router_internal_address,
    };
    write_atomically(
        &config.data_dir.join("endpoints.json"),
        &serde_json::to_vec_pretty(&endpoints)?,
    )?;
    tracing::info!(api = ?endpoints.api, grpc = ?endpoints.grpc, s3 = ?endpoints.s3, functions = ?endpoints.functions, roles = ?config.roles, "nuage ready");
    Ok(RunningServer {
        endpoints,
        bootstrap,
        http_stop,
        grpc_stop,
        http,
        grpc,
        s3,
        background,
        database,
        storage: storage_access,
        router,
        runner,
        crons: cron_scheduler,
        grace: Duration::from_secs(config.shutdown_grace_seconds),
    })
}

/// Returns the services functions and containers call, through `peer`.
fn application_peers(
    peer: &dyn Fn(Role) -> anyhow::Result<transport::Authed>,
) -> anyhow::Result<nuage_applications::Peers> {
    Ok(nuage_applications::Peers {
        namespaces: NamespacesClient::new(peer(Role::Namespaces)?),
        crons: CronsClient::new(peer(Role::Crons)?),
        runner: RunnerClient::new(peer(Role::Runner)?),
        tokens: TokensClient::new(peer(Role::Tokens)?),
        logs: LogsClient::new(peer(Role::Logs)?),
    })
}

async fn watch_database(
    database: Database,
    reporter: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
) {
    let mut last = None;
    loop {
        let status = if database.ping().await {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            if status == ServingStatus::NotServing {
                tracing::warn!("database does not answer; services report NOT_SERVING");
            }
            for service in &services {
                reporter.set_service_status(*service, status).await;
            }
            last = Some(status);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Writes the first tenant's credentials to `credentials.json` (mode 0600).
fn write_credentials(data_dir: &Path, key: &NewApiKey) -> anyhow::Result<()> {
    let path = data_dir.join("credentials.json");
    // A file left from an earlier, now empty, database is stale.
    let _ = std::fs::remove_file(&path);
    let mut file = create_private_file(&path).with_context(|| format!("creating `{}`", path.display()))?;
    file.write_all(&serde_json::to_vec_pretty(&crate::admin::key_json(key))?)?;
    file.sync_all()?;
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).with_context(|| format!("writing `{}`", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing `{}`", path.display()))?;
    Ok(())
}
