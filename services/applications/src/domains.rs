//! Custom domains of functions and containers: a tenant binds a host name of its own to one
//! of its applications; the domain is `pending` until the check the operator configured
//! (`applications.domains.check`) passes, then `ready` (routers send requests whose `Host` is
//! it to the application), or `error` once the check kept failing for
//! `check_timeout_ms`, saying why. A host name leads to one application at a time across every
//! tenant. Routers learn ready domains with the route table (`ListRoutes`); deleting a domain,
//! or its application, removes it.

use crate::config::{ApplicationsConfig, DomainCheck};
use crate::dns::CnameResolver;
use crate::domain_model::{Domain, DomainFilter, DomainStatus, Hostname};
use crate::domain_store::DomainStore;
use crate::model::{ApplicationStatus, Kind};
use crate::store::ApplicationStore;
use nuage_core::clock::now_micros;
use nuage_core::ids::{optional_id, parse_id, required_id};
use nuage_core::validate::Tags;
use nuage_core::{ApiError, Caller, Database, ErrorCode, Page};
use nuage_proto::common::v1::DomainRoute;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// How many pending domains one pass checks.
const BATCH: i64 = 100;

/// The domains of applications of kind `K`, and their check.
#[derive(Debug)]
pub struct Domains<K> {
    store: DomainStore,
    applications: ApplicationStore<K>,
    config: ApplicationsConfig,
    /// The CNAME check's resolver, or why there is none.
    resolver: Arc<Result<CnameResolver, String>>,
    wake: Arc<Notify>,
    kind: PhantomData<K>,
}

impl<K> Clone for Domains<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            applications: self.applications.clone(),
            config: self.config.clone(),
            resolver: self.resolver.clone(),
            wake: self.wake.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Kind> Domains<K> {
    /// Returns the domains of `K`'s applications in `database`, checked as `config` says. Run
    /// [`Domains::run`] in the background.
    pub fn new(database: Database, applications: ApplicationStore<K>, config: ApplicationsConfig) -> Self {
        let resolver = match config.domains.check {
            DomainCheck::Cname => config.domains.resolver_address().and_then(CnameResolver::new),
            DomainCheck::None => Err("no DNS check is configured".to_owned()),
        };
        if let (DomainCheck::Cname, Err(error)) = (config.domains.check, &resolver) {
            tracing::warn!(%error, "custom domains cannot be checked: they end in error");
        }
        Self {
            store: DomainStore::new(database, K::NOUN, K::TABLE),
            applications,
            config,
            resolver: Arc::new(resolver),
            wake: Arc::new(Notify::new()),
            kind: PhantomData,
        }
    }

    /// Returns the store (for the reconciler, which removes a deleted application's domains).
    pub fn store(&self) -> &DomainStore {
        &self.store
    }

    /// The argument naming the application: `function_id` or `container_id`.
    fn target_argument() -> String {
        format!("{}_id", K::NOUN)
    }

    /// Stores `hostname` as a `pending` domain of the caller's application `application_id`.
    pub async fn create(
        &self,
        caller: &Caller,
        region: &str,
        application_id: &str,
        hostname: &str,
        tags: Vec<String>,
    ) -> Result<Domain, ApiError> {
        let argument = Self::target_argument();
        let application_id = required_id(&argument, application_id)?;
        let hostname = Hostname::parse(hostname, &self.config.reserved_hosts())?;
        let tags = Tags::parse("tags", tags)?;
        let application = self.applications.get(caller, region, application_id).await?;
        if application.status == ApplicationStatus::Deleting {
            return Err(ApiError::transient_state(
                K::NOUN,
                application_id.to_string(),
                "deleting",
            ));
        }
        let now = now_micros();
        let domain = Domain {
            id: Uuid::new_v4(),
            organization_id: caller.organization_id,
            region: region.to_owned(),
            application_id,
            hostname,
            status: DomainStatus::Pending,
            url: String::new(),
            error_message: String::new(),
            created_at: now,
            updated_at: now,
            tags,
        };
        let limit = self.config.domains.max_per_application;
        if let Err(current) = self.store.insert(&domain, limit).await? {
            return Err(ApiError {
                help_message: Some(format!("a {} may have at most {limit} domains", K::NOUN)),
                ..ApiError::quota_exceeded("domain", limit, current)
            });
        }
        self.wake.notify_one();
        Ok(domain)
    }

    /// Returns one domain of the caller.
    pub async fn get(&self, caller: &Caller, region: &str, id: &str) -> Result<Domain, ApiError> {
        self.store.get(caller, region, parse_id("domain_id", id)?).await
    }

    /// Returns one page of the caller's domains in `region`: of its application
    /// `application_id` when given (another tenant's has none), else of every application of
    /// this kind, narrowed to namespace `namespace_id` and project `project_id` when given;
    /// and the count of all of them.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        (application_id, namespace_id, project_id): (&str, Option<&str>, Option<&str>),
        order: i32,
        page: Page,
    ) -> Result<(Vec<Domain>, u64), ApiError> {
        let filter = DomainFilter {
            application_id: optional_id(&Self::target_argument(), Some(application_id))?,
            namespace_id: optional_id("namespace_id", namespace_id)?,
            project_id: optional_id("project_id", project_id)?,
        };
        self.store.list(caller, region, &filter, order, page).await
    }

    /// Replaces the tags of one domain of the caller; returns it.
    pub async fn set_tags(
        &self,
        caller: &Caller,
        region: &str,
        id: &str,
        tags: Vec<String>,
    ) -> Result<Domain, ApiError> {
        let id = parse_id("domain_id", id)?;
        let tags = Tags::parse("tags", tags)?;
        self.store.set_tags(caller, region, id, &tags).await
    }

    /// Removes one domain of the caller; returns it `deleting`. Routers stop routing it at
    /// their next reload of the route table.
    pub async fn delete(&self, caller: &Caller, region: &str, id: &str) -> Result<Domain, ApiError> {
        let mut domain = self.store.remove(caller, region, parse_id("domain_id", id)?).await?;
        domain.status = DomainStatus::Deleting;
        domain.url.clear();
        Ok(domain)
    }

    /// Returns the routes of every ready domain, for routers.
    pub async fn routes(&self) -> Result<Vec<DomainRoute>, ApiError> {
        Ok(self
            .store
            .ready()
            .await?
            .into_iter()
            .map(|(hostname, application_id)| DomainRoute {
                hostname,
                application_id,
            })
            .collect())
    }

    /// Checks pending domains forever: at once, whenever one is created, and every
    /// `recheck_ms`.
    pub async fn run(self) {
        let every = Duration::from_millis(self.config.domains.recheck_ms.max(10));
        loop {
            if let Err(error) = self.check_pending().await {
                tracing::warn!(%error, "cannot check {} domains", K::NOUN);
            }
            if let Err(error) = self.check_ready().await {
                tracing::warn!(%error, "cannot check ready {} domains again", K::NOUN);
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Returns the application `domain` leads to, or `None` once it is gone (and then so are
    /// its domains).
    async fn application_of(&self, domain: &Domain) -> Result<Option<crate::model::Application<K>>, ApiError> {
        match self.applications.get_any(domain.application_id).await {
            Ok(application) => Ok(Some(application)),
            Err(error) if error.code == ErrorCode::NotFound => {
                self.store.remove_for(domain.application_id).await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Checks each pending domain once.
    async fn check_pending(&self) -> Result<(), ApiError> {
        for domain in self.store.pending(BATCH).await? {
            let Some(application) = self.application_of(&domain).await? else {
                continue;
            };
            if application.status == ApplicationStatus::Deleting {
                continue;
            }
            match self.check(&domain, &application.endpoint).await {
                Ok(()) => {
                    let scheme = application
                        .endpoint
                        .split_once("://")
                        .map_or("https", |(scheme, _)| scheme);
                    let url = format!("{scheme}://{}", domain.hostname.as_str());
                    tracing::info!(domain_id = %domain.id, hostname = domain.hostname.as_str(), "domain ready");
                    self.store
                        .settle(domain.id, Some((DomainStatus::Ready, &url, "")))
                        .await?;
                }
                Err(Failure { reason, lasting, .. }) => {
                    let waited = Duration::from_micros(u64::try_from(now_micros() - domain.created_at).unwrap_or(0));
                    let outcome = (lasting || waited >= Duration::from_millis(self.config.domains.check_timeout_ms))
                        .then_some((DomainStatus::Error, "", reason.as_str()));
                    if outcome.is_some() {
                        tracing::info!(domain_id = %domain.id, %reason, "domain check failed for good");
                    }
                    self.store.settle(domain.id, outcome).await?;
                }
            }
        }
        Ok(())
    }

    /// Checks again each ready domain whose check last passed `recheck_ready_ms` ago: one
    /// whose DNS now says otherwise ends in `error`; one whose check gets no answer stays.
    async fn check_ready(&self) -> Result<(), ApiError> {
        let every = i64::try_from(self.config.domains.recheck_ready_ms.saturating_mul(1_000)).unwrap_or(i64::MAX);
        for domain in self.store.stale(now_micros().saturating_sub(every), BATCH).await? {
            let Some(application) = self.application_of(&domain).await? else {
                continue;
            };
            let failure = match self.check(&domain, &application.endpoint).await {
                Ok(()) => None,
                Err(Failure {
                    reason, answered: true, ..
                }) => Some(reason),
                Err(Failure { reason, .. }) => {
                    tracing::info!(domain_id = %domain.id, %reason, "ready domain could not be checked again");
                    continue;
                }
            };
            if let Some(reason) = &failure {
                tracing::info!(domain_id = %domain.id, %reason, "ready domain no longer passes its check");
            }
            self.store.rechecked(domain.id, failure.as_deref()).await?;
        }
        Ok(())
    }

    /// Runs the configured check of `domain`, whose application answers at `endpoint`.
    async fn check(&self, domain: &Domain, endpoint: &str) -> Result<(), Failure> {
        if self.config.domains.check == DomainCheck::None {
            return Ok(());
        }
        let hostname = domain.hostname.as_str();
        let Some(target) = self.config.application_host(endpoint) else {
            return Err(Failure::lasting(format!(
                "the CNAME check needs host-based endpoints, and this installation serves {}s under paths; \
                 ask its operator to set applications.domain",
                K::NOUN
            )));
        };
        let resolver = self
            .resolver
            .as_ref()
            .as_ref()
            .map_err(|reason| Failure::lasting(format!("`{hostname}` could not be checked: {reason}")))?;
        match resolver.cname(hostname).await.map_err(Failure::passing)? {
            Some(found) if found == target => Ok(()),
            Some(found) => Err(Failure::answered(format!(
                "`{hostname}` is a CNAME to `{found}`, not to `{target}`: point it at `{target}`"
            ))),
            None => Err(Failure::answered(format!(
                "`{hostname}` has no CNAME record: add `{hostname}. CNAME {target}.` to its DNS zone"
            ))),
        }
    }
}

/// Why a check did not pass, for the domain's owner, and whether checking again could change
/// it (DNS records change; this installation's configuration does not).
#[derive(Debug)]
struct Failure {
    reason: String,
    lasting: bool,
    /// DNS answered, and not as the check wants (rather than not answering at all).
    answered: bool,
}

impl Failure {
    /// A failure that lasts: the domain ends in `error` at once.
    fn lasting(reason: String) -> Self {
        Self {
            reason,
            lasting: true,
            answered: true,
        }
    }

    /// A failure that may pass: the domain is checked again until `check_timeout_ms`.
    fn passing(reason: String) -> Self {
        Self {
            reason,
            lasting: false,
            answered: false,
        }
    }

    /// DNS's answer is not what the check wants; it may change.
    fn answered(reason: String) -> Self {
        Self {
            reason,
            lasting: false,
            answered: true,
        }
    }
}
