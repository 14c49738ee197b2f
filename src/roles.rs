//! The gRPC roles of one process: each started from its config section and the services it
//! calls, in start-up order, and added to the process's gRPC listener.

use crate::admin::master_key;
use crate::config::{Config, Role};
use crate::grpc::Services;
use anyhow::Context as _;
use nuage_applications::ApplicationsConfig;
use nuage_builder::BuilderService;
use nuage_clients::LogSink;
use nuage_containers::ContainersService;
use nuage_core::Database;
use nuage_core::internal::InternalAuth;
use nuage_core::secret::create_private_file;
use nuage_core::served::Served;
use nuage_core::storage::StorageAccess;
use nuage_core::transport::{self, Authed};
use nuage_crons::{CronsService, Scheduler};
use nuage_functions::{Archives, FunctionsService};
use nuage_iam::{IamService, NewApiKey};
use nuage_namespaces::NamespacesService;
use nuage_proto::builder::v1::builder_client::BuilderClient;
use nuage_proto::builder::v1::builder_server::BuilderServer;
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::containers::v1::containers_server::ContainersServer;
use nuage_proto::crons::v1::crons_client::CronsClient;
use nuage_proto::crons::v1::crons_server::CronsServer;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use nuage_proto::functions::v1::functions_server::FunctionsServer;
use nuage_proto::iam::v1::iam_server::IamServer;
use nuage_proto::logs::v1::logs_client::LogsClient;
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use nuage_proto::namespaces::v1::namespaces_server::NamespacesServer;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::runner::v1::runner_server::RunnerServer;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use nuage_proto::triggers::v1::triggers_client::TriggersClient;
use nuage_proto::triggers::v1::triggers_server::TriggersServer;
use nuage_runner::Runner;
use nuage_triggers::{Subscriber, TriggersService};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// What the gRPC roles of this process start from.
pub struct Context<'a> {
    /// The whole configuration; each role takes its section.
    pub config: &'a Config,
    /// The database every service keeps its tables in.
    pub database: Database,
    /// The credential internal calls carry.
    pub auth: InternalAuth,
    /// This process's gRPC listener: services call those of this process through it.
    pub local_url: String,
    /// Where producers of lines ship them, when logs runs somewhere.
    pub logs: Option<LogSink>,
    /// Turns true when the gRPC listener stops.
    pub stopped: watch::Receiver<bool>,
    /// Settings functions and containers share, endpoints on the router's address.
    pub applications: ApplicationsConfig,
    /// The object store functions sign for and the builder reads from, when either runs here.
    pub storage: Option<StorageAccess>,
    /// The router's internal listener, where crons fire, when known.
    pub router: Option<String>,
}

impl Context<'_> {
    /// Returns the clients of the services that own applications (functions, containers).
    fn owners(&self) -> anyhow::Result<nuage_applications::Owners> {
        Ok(nuage_applications::Owners {
            functions: FunctionsClient::new(self.peer(Role::Functions)?),
            containers: ContainersClient::new(self.peer(Role::Containers)?),
        })
    }

    /// Returns what calls applications through the router's internal listener (crons and
    /// triggers, which the crons role runs).
    fn invoker(&self) -> anyhow::Result<nuage_clients::Invoker> {
        let router = self
            .router
            .as_deref()
            .context("the crons role needs the router: run it too, or set services.router")?;
        Ok(nuage_clients::Invoker::new(router, self.auth.authorization()))
    }

    /// Returns a transport to `role`'s service: this process's listener when it runs the role,
    /// the configured URL otherwise.
    fn peer(&self, role: Role) -> anyhow::Result<Authed> {
        let url = if self.config.runs(role) {
            self.local_url.as_str()
        } else {
            self.config
                .services
                .get(role)
                .with_context(|| format!("no gRPC URL for the {} service (set services.{0})", role.name()))?
        };
        let transport = transport::dial(role.name(), url, self.config.services.deadline())?;
        Ok(transport::authed(transport, self.auth.clone()))
    }
}

/// What the process keeps of its gRPC roles.
#[derive(Default)]
pub struct Handles {
    /// The default tenant's key, when this start created it.
    pub bootstrap: Option<NewApiKey>,
    /// The logs service's figures.
    pub logs: Option<nuage_logs::Metrics>,
    /// The tokens service's figures.
    pub tokens: Option<nuage_tokens::Metrics>,
    /// The runner, to stop its instances.
    pub runner: Option<Runner>,
    /// The crons scheduler, to stop firing first.
    pub crons: Option<Scheduler>,
    /// The triggers subscriber, to stop delivering first.
    pub triggers: Option<Subscriber>,
}

/// Starts every gRPC role the config names, adding each to `services`.
pub async fn start(context: &Context<'_>, services: &mut Services) -> anyhow::Result<Handles> {
    let config = context.config;
    let database = || context.database.clone();
    let mut handles = Handles::default();
    if config.runs(Role::Iam) {
        handles.bootstrap = services.add(iam(context).await?);
    }
    if config.runs(Role::Logs) {
        let served = nuage_logs::serve(&config.logs, database(), context.stopped.clone());
        handles.logs = Some(services.add(served));
    }
    if config.runs(Role::Tokens) {
        let served = nuage_tokens::serve(&config.tokens, database(), &master_key(config)?);
        handles.tokens = Some(services.add(served));
    }
    if config.runs(Role::Namespaces) {
        services.add(namespaces(context).await?);
    }
    if config.runs(Role::Functions) {
        services.add(functions(context).await?);
    }
    if config.runs(Role::Containers) {
        services.add(containers(context)?);
    }
    if config.runs(Role::Builder) {
        services.add(builder(context)?);
    }
    if config.runs(Role::Runner) {
        handles.runner = Some(services.add(runner(context).await?));
    }
    if config.runs(Role::Crons) {
        handles.crons = Some(services.add(crons(context)?));
        handles.triggers = Some(services.add(triggers(context)?));
    }
    Ok(handles)
}

async fn iam(context: &Context<'_>) -> anyhow::Result<Served<IamServer<IamService>, Option<NewApiKey>>> {
    let served = nuage_iam::serve(context.database.clone(), &master_key(context.config)?).await?;
    if let Some(key) = &served.handle {
        write_credentials(&context.config.data_dir, key)?;
    }
    Ok(served)
}

async fn namespaces(context: &Context<'_>) -> anyhow::Result<Served<NamespacesServer<NamespacesService>>> {
    let config = context.config;
    let peers = nuage_namespaces::Peers {
        functions: FunctionsClient::new(context.peer(Role::Functions)?),
        containers: ContainersClient::new(context.peer(Role::Containers)?),
        tokens: TokensClient::new(context.peer(Role::Tokens)?),
    };
    let mut namespaces = config.namespaces.clone();
    namespaces.registry_host = Some(own_registry_host(config));
    nuage_namespaces::serve(namespaces, context.database.clone(), peers, secrets_sealing(config)?)
        .await
        .context("giving namespaces their endpoint suffix")
}

/// Returns the services functions and containers call.
fn application_peers(context: &Context<'_>) -> anyhow::Result<nuage_applications::Peers> {
    Ok(nuage_applications::Peers {
        namespaces: NamespacesClient::new(context.peer(Role::Namespaces)?),
        crons: CronsClient::new(context.peer(Role::Crons)?),
        // The crons role serves triggers too.
        triggers: TriggersClient::new(context.peer(Role::Crons)?),
        runner: RunnerClient::new(context.peer(Role::Runner)?),
        tokens: TokensClient::new(context.peer(Role::Tokens)?),
        logs: LogsClient::new(context.peer(Role::Logs)?),
    })
}

/// Returns the functions service over the object store's archive bucket, once the bucket is
/// known to be usable or, if the store does not answer within a few seconds, checked again in
/// the background.
async fn functions(context: &Context<'_>) -> anyhow::Result<Served<FunctionsServer<FunctionsService>>> {
    let config = context.config;
    let access = context
        .storage
        .as_ref()
        .context("no object store for the functions role")?;
    let archives = Archives::new(&config.storage, access);
    let mut background = Vec::new();
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
    let served = nuage_functions::serve(
        &config.functions,
        context.applications.clone(),
        context.database.clone(),
        archives,
        application_peers(context)?,
        BuilderClient::new(context.peer(Role::Builder)?),
        secrets_sealing(config)?,
    );
    Ok(served.with_background(background))
}

fn containers(context: &Context<'_>) -> anyhow::Result<Served<ContainersServer<ContainersService>>> {
    let config = context.config;
    let peers = application_peers(context)?;
    let applications = context.applications.clone();
    let database = context.database.clone();
    Ok(nuage_containers::serve(
        &config.containers,
        applications,
        database,
        peers,
        secrets_sealing(config)?,
    ))
}

/// Returns the key secret environment variables are sealed under.
fn secrets_sealing(config: &Config) -> anyhow::Result<[u8; 32]> {
    Ok(master_key(config)?.derive(nuage_core::secrets::SEALING_PURPOSE))
}

fn builder(context: &Context<'_>) -> anyhow::Result<Served<BuilderServer<BuilderService>>> {
    let config = context.config;
    // The builder reads archives from the same store the functions service signs for.
    let access = context
        .storage
        .as_ref()
        .context("the builder role without the functions role needs an external storage.endpoint")?;
    let functions = FunctionsClient::new(context.peer(Role::Functions)?);
    // Pods run a function's image alone: without a base, a Node or Python one has no
    // interpreter there.
    let mut warnings = Vec::new();
    if config.runner.backend == "kubernetes" {
        for family in config.builder.families_without_base() {
            let warning = format!(
                "runner.backend is kubernetes but builder.base_images names no {family} runtime: \
                 the pods of {family} functions have no interpreter"
            );
            tracing::warn!("{warning}");
            warnings.push(warning);
        }
    }
    Ok(nuage_builder::serve(
        &config.builder,
        &config.storage,
        access,
        (
            builder_registry(config),
            usize::try_from(config.applications.deployment_history).unwrap_or(usize::MAX),
        ),
        context.database.clone(),
        functions,
        context.logs.clone(),
    )
    .with_warnings(warnings))
}

async fn runner(context: &Context<'_>) -> anyhow::Result<Served<RunnerServer<Runner>, Runner>> {
    let config = context.config;
    let work_dir = config
        .runner
        .work_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("runner"));
    let registry = config
        .runner
        .registry_dir
        .clone()
        .unwrap_or_else(|| builder_registry(config));
    let database = context.database.clone();
    // The registry namespaces name (their `registry_endpoint`'s host) is the one whose images
    // are the layouts.
    let mut runner = config.runner.clone();
    runner.registry_host = Some(own_registry_host(config));
    Ok(nuage_runner::serve(
        &runner,
        work_dir,
        registry,
        database,
        context.logs.clone(),
        secrets_sealing(config)?,
    )
    .await?)
}

fn crons(context: &Context<'_>) -> anyhow::Result<Served<CronsServer<CronsService>, Scheduler>> {
    let config = context.config;
    Ok(nuage_crons::serve(
        &config.crons,
        context.database.clone(),
        context.owners()?,
        context.invoker()?,
        context.logs.clone(),
    ))
}

/// Returns the triggers service, which the crons role runs beside crons: both call
/// applications through the router.
fn triggers(context: &Context<'_>) -> anyhow::Result<Served<TriggersServer<TriggersService>, Subscriber>> {
    let peers = context.owners()?;
    let invoker = context.invoker()?;
    Ok(nuage_triggers::serve(
        &context.config.triggers,
        context.database.clone(),
        (peers, invoker, context.logs.clone()),
        secrets_sealing(context.config)?,
    ))
}

/// Returns where the builder writes image layouts (and the runner reads them, unless told
/// otherwise).
/// Returns the host of the registry namespaces get a repository in: `namespaces.registry_host`,
/// else the registry the builder pushes to, else the embedded one (the layouts).
fn own_registry_host(config: &Config) -> String {
    config
        .namespaces
        .registry_host
        .clone()
        .or_else(|| config.builder.registry.clone())
        .unwrap_or_else(|| nuage_namespaces::EMBEDDED_REGISTRY_HOST.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

fn builder_registry(config: &Config) -> PathBuf {
    config
        .builder
        .registry_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("registry"))
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
