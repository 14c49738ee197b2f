//! What the functions and containers services do alike, once: create, read, list, change and
//! delete an application, tell routers about it, and roll a new version out.

use crate::config::ApplicationsConfig;
use crate::domains::Domains;
use crate::history::{Deployment, History, SUCCEEDED};
use crate::model::{
    self, Application, ApplicationStatus, DEFAULT_MAX_SCALE, DEFAULT_MEMORY_LIMIT, DEFAULT_MIN_SCALE,
    DEFAULT_TIMEOUT_MS, Kind, Privacy, Sandbox,
};
use crate::peers::Peers;
use crate::reconciler::{Leftovers, Reconciler};
use crate::rollouts::{RolloutSettings, Rollouts};
use crate::store::{ApplicationStore, ListFilter};
use nuage_core::clock::now_micros;
use nuage_core::ids::{optional_id, parse_id, required_id};
use nuage_core::secrets::{SealedChanges, SecretChange, SecretVariables};
use nuage_core::validate::Tags;
use nuage_core::{ApiError, Caller, Database, Page, validate};
use nuage_proto::common::v1 as pb;
use nuage_proto::namespaces::v1::Namespace;
use std::collections::BTreeMap;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Route changes as the functions and containers services stream them to routers.
pub type RouteStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::RouteChange, tonic::Status>> + Send>>;

/// Functions or containers: their store, their reconciler, the services they call, and the
/// routers listening for their changes.
#[derive(Debug)]
pub struct Applications<K, L> {
    store: ApplicationStore<K>,
    reconciler: Reconciler<K, L>,
    rollouts: Rollouts<K>,
    history: History<K>,
    domains: Domains<K>,
    peers: Peers,
    config: ApplicationsConfig,
    /// How many requests one instance takes at once.
    concurrency: u32,
    route_changes: broadcast::Sender<pb::Route>,
    /// Seals secret environment variables (see [`nuage_core::secrets`]).
    sealing: [u8; 32],
}

impl<K, L: Clone> Clone for Applications<K, L> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            reconciler: self.reconciler.clone(),
            rollouts: self.rollouts.clone(),
            history: self.history.clone(),
            domains: self.domains.clone(),
            peers: self.peers.clone(),
            config: self.config.clone(),
            concurrency: self.concurrency,
            route_changes: self.route_changes.clone(),
            sealing: self.sealing,
        }
    }
}

/// The settings a create request gives, checked, in the order a create checks them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Its namespace.
    pub namespace_id: Uuid,
    /// Its name (checked against the namespace once it is read).
    pub name: String,
    /// Its own variables.
    pub environment_variables: BTreeMap<String, String>,
    /// MB.
    pub memory_limit: u32,
    /// Instances kept when idle.
    pub min_scale: u32,
    /// Most instances.
    pub max_scale: u32,
    /// Request timeout.
    pub timeout_ms: u64,
    /// Its tags.
    pub tags: Tags,
    /// Its secret variables, to seal once it has an id.
    pub secrets: Vec<SecretChange>,
    /// The sandbox it asks for; `None`: the installation's default.
    pub sandbox: Option<Sandbox>,
}

/// What a create request of either kind carries in common, as it arrives (but for the
/// namespace id and name, which [`required`] checked first).
#[derive(Debug, Clone, Default)]
pub struct Requested {
    /// `namespace_id`.
    pub namespace_id: Uuid,
    /// `name`.
    pub name: String,
    /// `environment_variables`.
    pub environment_variables: Option<pb::Environment>,
    /// `memory_limit`.
    pub memory_limit: Option<u32>,
    /// `min_scale`.
    pub min_scale: Option<u32>,
    /// `max_scale`.
    pub max_scale: Option<u32>,
    /// `timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// `tags`.
    pub tags: Option<Vec<String>>,
    /// `secret_environment_variables`.
    pub secrets: Vec<SecretChange>,
    /// `sandbox`; `None`: the installation's default.
    pub sandbox: Option<Sandbox>,
}

/// What an update request of either kind may change, as it arrives.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// `environment_variables`: all of them, replaced.
    pub environment_variables: Option<pb::Environment>,
    /// `min_scale`.
    pub min_scale: Option<u32>,
    /// `max_scale`.
    pub max_scale: Option<u32>,
    /// `memory_limit`.
    pub memory_limit: Option<u32>,
    /// `timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// `privacy`, as its wire value (unspecified leaves it).
    pub privacy: i32,
    /// `description`.
    pub description: Option<String>,
    /// `redeploy`: `Some(false)` changes without redeploying.
    pub redeploy: Option<bool>,
    /// `tags`: all of them, replaced.
    pub tags: Option<Vec<String>>,
    /// `secret_environment_variables`: merged (a key without a value is removed).
    pub secrets: Vec<SecretChange>,
    /// `sandbox`; `None` leaves it.
    pub sandbox: Option<Sandbox>,
}

/// Returns `namespace_id` and `name` of a create request, both required.
pub fn required(namespace_id: &str, name: &str) -> Result<Uuid, ApiError> {
    let id = required_id("namespace_id", namespace_id)?;
    validate::required("name", name)?;
    Ok(id)
}

/// Returns the environment variables a request sets, checked; `None` when it leaves them.
fn environment(variables: Option<pb::Environment>) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    variables
        .map(|variables| {
            validate::environment_variables("environment_variables", &variables.values)?;
            Ok(variables.values.into_iter().collect())
        })
        .transpose()
}

impl<K: Kind, L: Leftovers> Applications<K, L> {
    /// Returns the applications of kind `K` stored in `database`, whose deleted ones leave
    /// `leftovers`; one instance takes `concurrency` requests at once; secrets are sealed
    /// under `sealing`. Run [`Applications::reconciler`] in the background.
    pub fn new(
        database: Database,
        peers: Peers,
        config: ApplicationsConfig,
        leftovers: L,
        (reconcile_interval_seconds, concurrency): (u64, u32),
        sealing: [u8; 32],
    ) -> Self {
        let store = ApplicationStore::new(database.clone());
        let domains = Domains::new(database.clone(), store.clone(), config.clone());
        let history = History::new(database.clone(), config.deployment_history);
        let rollouts = Rollouts::new(
            database,
            (store.clone(), history.clone()),
            peers.clone(),
            RolloutSettings::of(&config),
        );
        let reconciler = Reconciler::new(
            store.clone(),
            rollouts.clone(),
            peers.clone(),
            (leftovers, domains.store().clone(), history.clone()),
            reconcile_interval_seconds,
        );
        Self {
            store,
            reconciler,
            rollouts,
            history,
            domains,
            peers,
            config,
            concurrency: concurrency.max(1),
            route_changes: broadcast::channel(1024).0,
            sealing,
        }
    }

    /// Returns the store.
    pub fn store(&self) -> &ApplicationStore<K> {
        &self.store
    }

    /// Returns their deployment history.
    pub fn history(&self) -> &History<K> {
        &self.history
    }

    /// Returns the custom domains of these applications; run [`Domains::run`] in the
    /// background to check them.
    pub fn domains(&self) -> &Domains<K> {
        &self.domains
    }

    /// Returns the reconciler, to run in the background.
    pub fn reconciler(&self) -> Reconciler<K, L> {
        self.reconciler.clone()
    }

    /// Checks the common settings of a create request, in the order clients see errors:
    /// variables, memory, scale, timeout.
    pub fn check_new(&self, requested: Requested) -> Result<Settings, ApiError> {
        let environment_variables = environment(requested.environment_variables)?.unwrap_or_default();
        let memory_limit = requested.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT);
        model::cpu_limit(memory_limit)?;
        let min_scale = requested.min_scale.unwrap_or(DEFAULT_MIN_SCALE);
        let max_scale = requested.max_scale.unwrap_or(DEFAULT_MAX_SCALE.max(min_scale));
        self.config.check_scale(min_scale, max_scale)?;
        let timeout_ms = requested.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        model::check_timeout(timeout_ms)?;
        let tags = Tags::parse("tags", requested.tags.unwrap_or_default())?;
        Ok(Settings {
            namespace_id: requested.namespace_id,
            name: requested.name,
            environment_variables,
            memory_limit,
            min_scale,
            max_scale,
            timeout_ms,
            tags,
            secrets: requested.secrets,
            sandbox: requested.sandbox,
        })
    }

    /// Stores a new application of the caller with `settings`, `description` and `privacy`
    /// (its wire value) once its namespace is ready; `kind` makes what only its kind has from
    /// that namespace, or refuses.
    pub async fn create(
        &self,
        caller: &Caller,
        region: &str,
        settings: Settings,
        description: Option<String>,
        privacy: i32,
        kind: impl FnOnce(&Namespace) -> Result<K, ApiError>,
    ) -> Result<Application<K>, ApiError> {
        let description = description.unwrap_or_default();
        validate::description(&description)?;
        let privacy = Privacy::from_proto(privacy).unwrap_or_default();
        let namespace = self
            .ready_namespace(caller, region, &settings.namespace_id.to_string())
            .await?;
        model::check_name(&settings.name, &namespace.name)?;
        let now = now_micros();
        let id = Uuid::new_v4();
        let changes = SealedChanges::prepare(self.sealing, id.to_string(), settings.secrets).await?;
        let mut secrets = SecretVariables::default();
        secrets.merge(&changes)?;
        let application = Application {
            id,
            secrets,
            organization_id: caller.organization_id,
            project_id: caller.project_id,
            endpoint: self.config.endpoint(&namespace, &settings.name)?,
            region: region.to_owned(),
            namespace_id: settings.namespace_id,
            name: settings.name,
            description,
            environment_variables: settings.environment_variables,
            min_scale: settings.min_scale,
            max_scale: settings.max_scale,
            memory_limit: settings.memory_limit,
            timeout_ms: settings.timeout_ms,
            privacy,
            sandbox: settings.sandbox,
            status: ApplicationStatus::Created,
            error_message: String::new(),
            redeploy_due: false,
            tags: settings.tags,
            created_at: now,
            updated_at: now,
            ready_at: 0,
            kind: kind(&namespace)?,
        };
        self.store.insert(&application).await?;
        Ok(application)
    }

    /// Returns the caller's namespace `namespace_id` once it is ready.
    pub async fn ready_namespace(
        &self,
        caller: &Caller,
        region: &str,
        namespace_id: &str,
    ) -> Result<Namespace, ApiError> {
        self.peers
            .ready_namespace::<K>(&self.config, caller, region, namespace_id)
            .await
    }

    /// Returns whether `owner` has a namespace in `region` whose registry repository is
    /// `repository`.
    pub async fn owns_repository(&self, owner: &Caller, region: &str, repository: &str) -> Result<bool, ApiError> {
        self.peers.owns_repository(owner, region, repository).await
    }

    /// Returns the caller's application `id` (its wire form) in `region`, refusing one being
    /// deleted when `live`.
    pub async fn get(&self, caller: &Caller, region: &str, id: &str, live: bool) -> Result<Application<K>, ApiError> {
        let id = parse_id(&format!("{}_id", K::NOUN), id)?;
        let application = self.store.get(caller, region, id).await?;
        if live && application.status == ApplicationStatus::Deleting {
            return Err(ApiError::transient_state(K::NOUN, id.to_string(), "deleting"));
        }
        Ok(application)
    }

    /// Returns one page of the caller's applications in `region` (of namespace `namespace_id`
    /// and named `name`, when given) and the count of all matches.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        (namespace_id, name): (Option<String>, Option<String>),
        order: i32,
        page: Page,
    ) -> Result<(Vec<Application<K>>, u64), ApiError> {
        let filter = ListFilter {
            namespace_id: optional_id("namespace_id", namespace_id.as_deref())?,
            name: name.filter(|name| !name.is_empty()),
        };
        self.store.list(caller, region, &filter, order, page).await
    }

    /// Applies `changes` (and what `kind` changes of the kind's own) to the caller's
    /// application `id`, re-reading and re-applying if someone else wrote in between. A change
    /// to a deployed application makes a redeploy due, unless the client said not to.
    pub async fn update(
        &self,
        caller: &Caller,
        region: &str,
        id: &str,
        changes: Changes,
        kind: impl Fn(&mut K) -> Result<(), ApiError>,
    ) -> Result<Application<K>, ApiError> {
        let id = parse_id(&format!("{}_id", K::NOUN), id)?;
        let environment_variables = environment(changes.environment_variables.clone())?;
        if let Some(memory_limit) = changes.memory_limit {
            model::cpu_limit(memory_limit)?;
        }
        if let Some(timeout_ms) = changes.timeout_ms {
            model::check_timeout(timeout_ms)?;
        }
        if let Some(description) = &changes.description {
            validate::description(description)?;
        }
        let tags = changes.tags.clone().map(|tags| Tags::parse("tags", tags)).transpose()?;
        let secrets = SealedChanges::prepare(self.sealing, id.to_string(), changes.secrets.clone()).await?;
        for _ in 0..3 {
            let current = self.store.get(caller, region, id).await?;
            if current.status == ApplicationStatus::Deleting {
                return Err(ApiError::transient_state(K::NOUN, id.to_string(), "deleting"));
            }
            let mut next = current.clone();
            if let Some(variables) = &environment_variables {
                next.environment_variables = variables.clone();
            }
            next.min_scale = changes.min_scale.unwrap_or(next.min_scale);
            next.max_scale = changes.max_scale.unwrap_or(next.max_scale);
            self.config.check_scale(next.min_scale, next.max_scale)?;
            next.memory_limit = changes.memory_limit.unwrap_or(next.memory_limit);
            next.timeout_ms = changes.timeout_ms.unwrap_or(next.timeout_ms);
            kind(&mut next.kind)?;
            next.privacy = Privacy::from_proto(changes.privacy).unwrap_or(next.privacy);
            // Another sandbox is a change like any other: a deployed application is due for a
            // redeploy, which rolls it out in the new one.
            next.sandbox = changes.sandbox.or(next.sandbox);
            if let Some(description) = &changes.description {
                next.description = description.clone();
            }
            if let Some(tags) = &tags {
                next.tags = tags.clone();
            }
            next.secrets.merge(&secrets)?;
            let changed = next != current;
            let deployed = current.status != ApplicationStatus::Created;
            next.redeploy_due = current.redeploy_due || (changed && deployed && changes.redeploy != Some(false));
            next.updated_at = now_micros();
            if let Some(stored) = self.store.update(&next, current.updated_at).await? {
                self.changed(&stored);
                return Ok(stored);
            }
        }
        Err(ApiError::transient_state(K::NOUN, id.to_string(), "updating"))
    }

    /// Marks the caller's application `id` `deleting`; it is gone once its children are.
    pub async fn delete(&self, caller: &Caller, region: &str, id: &str) -> Result<Application<K>, ApiError> {
        let id = parse_id(&format!("{}_id", K::NOUN), id)?;
        let application = self.store.mark_deleting(caller, region, id).await?;
        self.changed(&application);
        self.reconciler.wake();
        Ok(application)
    }

    /// Marks every application of a deleted namespace `deleting`; returns how many remain.
    pub async fn delete_namespace(&self, organization_id: &str, namespace_id: &str) -> Result<u64, ApiError> {
        let remaining = self
            .store
            .mark_namespace_deleting(organization_id, namespace_id)
            .await?;
        if remaining > 0 {
            self.reconciler.wake();
        }
        Ok(remaining)
    }

    /// Makes `application` `pending`, or says it is being deleted. A roll-out still running
    /// for an earlier deploy is superseded: it records nothing.
    pub async fn mark_pending(&self, application: &Application<K>) -> Result<Application<K>, ApiError> {
        self.rollouts.cancel(application.id).await?;
        self.store
            .set_status(application.id, ApplicationStatus::Pending, "")
            .await?
            .ok_or_else(|| ApiError::transient_state(K::NOUN, application.id.to_string(), "deleting"))
    }

    /// Rolls version `version` of application `id`, image `image`, out: records it, then hands
    /// it to the runner, which answers once an instance of it answered, and records how it went
    /// as the application's status. `namespace` is the one the deploy read, if it did. Should
    /// this process die meanwhile, a reconciler resumes it.
    pub async fn roll_out(&self, id: Uuid, namespace: Option<Namespace>, version: &str, image: &str) {
        match self.rollouts.begin(id, version, image).await {
            Ok(rollout) => self.rollouts.run(rollout, namespace).await,
            Err(error) => {
                tracing::warn!(application_id = %id, %error, "cannot record a roll-out");
                if let Err(error) = self
                    .store
                    .set_status(
                        id,
                        ApplicationStatus::Error,
                        &format!("{}: {}", K::START_FAILED, error.message),
                    )
                    .await
                {
                    tracing::warn!(application_id = %id, %error, "cannot record the end of a deployment");
                }
            }
        }
    }

    /// Returns one page of the deployments of the caller's application `id` (its wire form),
    /// newest first, the count of all, and the id of the one serving.
    pub async fn list_deployments(
        &self,
        caller: &Caller,
        region: &str,
        id: &str,
        page: Page,
    ) -> Result<(Vec<Deployment>, u64, Option<Uuid>), ApiError> {
        let application = self.get(caller, region, id, false).await?;
        self.history.list(application.id, page).await
    }

    /// Rolls deployment `deployment_id` (its wire form) of the caller's application `id` out
    /// again, with no rebuild: the application is `pending` until an instance of that
    /// deployment's image answered, the one serving now serving until then. Refused while
    /// another deploy is under way, and for a deployment without an image (its build failed)
    /// or whose image is gone (pruned).
    pub async fn rollback(
        &self,
        caller: &Caller,
        region: &str,
        id: &str,
        deployment_id: &str,
    ) -> Result<Application<K>, ApiError> {
        let application = self.get(caller, region, id, true).await?;
        let deployment_id = required_id("deployment_id", deployment_id)?;
        let deployment = self
            .history
            .get(application.id, deployment_id)
            .await?
            .ok_or_else(|| ApiError::not_found("deployment", deployment_id.to_string()))?;
        if application.status == ApplicationStatus::Pending {
            return Err(ApiError::transient_state(
                K::NOUN,
                application.id.to_string(),
                "pending",
            ));
        }
        let image = self.rollback_image(&deployment).await?;
        let pending = self.mark_pending(&application).await?;
        let applications = self.clone();
        tokio::spawn(async move {
            applications
                .roll_out(application.id, None, &deployment_id.to_string(), &image)
                .await;
        });
        Ok(pending)
    }

    /// Returns the image a rollback to `deployment` rolls out, once the runner found it.
    async fn rollback_image(&self, deployment: &Deployment) -> Result<String, ApiError> {
        let id = deployment.id.to_string();
        if deployment.status != SUCCEEDED {
            return Err(ApiError::precondition(
                "deployment",
                &id,
                format!(
                    "deployment `{id}` has no image to roll back to: its build is `{}`",
                    deployment.status
                ),
            ));
        }
        let image = deployment.image();
        let request = nuage_proto::runner::v1::PinImageRequest { image: image.clone() };
        match self.peers.runner.clone().pin_image(request).await {
            Ok(_) => Ok(image),
            Err(status) => match ApiError::from_status(&status).code {
                nuage_core::ErrorCode::Unavailable | nuage_core::ErrorCode::Internal => {
                    Err(ApiError::from_peer("runner", &status))
                }
                _ => Err(ApiError::precondition(
                    "deployment",
                    &id,
                    format!(
                        "the image of deployment `{id}` is gone (only the newest {} deployments keep theirs); \
                         deploy again instead",
                        self.config.deployment_history
                    ),
                )),
            },
        }
    }

    /// Tells routers that `application` changed.
    pub fn changed(&self, application: &Application<K>) {
        let _ = self.route_changes.send(application.route(self.concurrency));
    }

    /// Returns the route of every application and of every ready domain, for a router's
    /// table. Domains are read first: one made ready meanwhile is in the next reload, and the
    /// application of each listed one is in this one.
    pub async fn routes(&self) -> Result<pb::ListRoutesResponse, ApiError> {
        let domains = self.domains.routes().await?;
        let routes = self
            .store
            .all()
            .await?
            .iter()
            .map(|application| application.route(self.concurrency))
            .collect();
        Ok(pb::ListRoutesResponse { routes, domains })
    }

    /// Streams route changes from now on (a router that lags reloads its table anyway).
    pub fn watch_routes(&self) -> RouteStream {
        use tokio_stream::StreamExt;
        let stream = tokio_stream::wrappers::BroadcastStream::new(self.route_changes.subscribe())
            .filter_map(|route| route.ok().map(|route| Ok(pb::RouteChange { route: Some(route) })));
        Box::pin(stream)
    }

    /// Moves applications made before endpoint suffixes existed to their namespace's endpoint,
    /// and tells routers. Runs at start-up, trying again (less and less often) until every
    /// namespace has its suffix and the namespaces service answers.
    pub async fn move_old_endpoints(self) {
        let mut wait = std::time::Duration::from_secs(1);
        while let Err(error) = self.move_endpoints_once().await {
            tracing::warn!(%error, "cannot move old endpoints yet; trying again");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(30));
        }
    }

    async fn move_endpoints_once(&self) -> Result<(), ApiError> {
        let mut namespaces: std::collections::HashMap<Uuid, Option<Namespace>> = Default::default();
        for application in self.store.all().await? {
            if application.status == ApplicationStatus::Deleting {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(entry) = namespaces.entry(application.namespace_id) {
                let owner = Caller {
                    organization_id: application.organization_id,
                    project_id: application.project_id,
                };
                let namespace = self
                    .peers
                    .namespace_of(&owner, &application.region, application.namespace_id)
                    .await?;
                entry.insert(namespace);
            }
            // A namespace gone takes its applications' routes with it.
            let Some(Some(namespace)) = namespaces.get(&application.namespace_id) else {
                continue;
            };
            // Fails for a namespace without its suffix yet, whose label could pass for the old one.
            let endpoint = self.config.endpoint(namespace, &application.name)?;
            // Only the label counts: an endpoint under another base URL or domain still answers.
            if model::label_of(&application.endpoint) == model::label_of(&endpoint) {
                continue;
            }
            if let Some(moved) = self
                .store
                .set_endpoint(application.id, &application.endpoint, &endpoint)
                .await?
            {
                tracing::info!(application_id = %moved.id, endpoint = %endpoint, "endpoint moved to its namespace's form");
                self.changed(&moved);
            }
        }
        Ok(())
    }
}
