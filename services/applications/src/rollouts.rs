//! Roll-outs: starting a new version of a function or container, kept in the database (table
//! `rollouts`) from the moment it is handed to the runner until the application's status says
//! how it started. The process running one holds a lease it renews; a roll-out whose process
//! died (kill -9, a lost host) is claimed, once its lease has run out, by a reconciler of any
//! replica and run again, so a `pending` deploy always ends `ready` or `error`. Claims and
//! renewals are conditional updates naming the holder, so two replicas never run the same
//! roll-out at once, and one that lost its lease stops without recording anything.

use crate::config::ApplicationsConfig;
use crate::history::History;
use crate::model::{ApplicationStatus, Kind, Sandbox};
use crate::peers::Peers;
use crate::store::ApplicationStore;
use nuage_core::clock::now_micros;
use nuage_core::{ApiError, Database};
use nuage_proto::namespaces::v1::Namespace;
use nuage_proto::runner::v1::{DeployRequest, Spec};
use sqlx::Row;
use std::marker::PhantomData;
use std::time::Duration;
use uuid::Uuid;

/// A version of an application to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The application.
    pub application_id: Uuid,
    /// The version (a function's deployment id).
    pub version: String,
    /// Its image.
    pub image: String,
    /// Times it was taken, this one included.
    pub attempts: i64,
}

/// How roll-outs are run: leases, and the test-only hold.
#[derive(Debug, Clone, Copy)]
pub struct RolloutSettings {
    /// How long a holder keeps a roll-out without renewing it.
    pub lease: Duration,
    /// Times a roll-out is taken before it fails for being interrupted each time.
    pub attempts: i64,
    /// How long the runner may take to start a version (pulling its image, starting an
    /// instance and waiting for it to answer).
    pub deadline: Duration,
    /// Test-only: how long a roll-out waits, holding its lease, before it starts its version.
    pub hold: Duration,
}

impl RolloutSettings {
    /// Returns how roll-outs are run, as `config` sets it.
    pub fn of(config: &ApplicationsConfig) -> Self {
        Self {
            lease: Duration::from_secs(config.rollout_lease_seconds.max(1)),
            attempts: i64::from(config.rollout_attempts.max(1)),
            deadline: Duration::from_secs(config.rollout_timeout_seconds.max(1)),
            hold: Duration::from_millis(config.hold_before_rollout_ms),
        }
    }
}

/// The roll-outs of kind `K`, run by this process as holder `holder`.
#[derive(Debug)]
pub struct Rollouts<K> {
    database: Database,
    store: ApplicationStore<K>,
    history: History<K>,
    peers: Peers,
    settings: RolloutSettings,
    /// This process (random per start), as the holder of the leases it takes.
    holder: String,
    kind: PhantomData<K>,
}

impl<K> Clone for Rollouts<K> {
    fn clone(&self) -> Self {
        Self {
            database: self.database.clone(),
            store: self.store.clone(),
            history: self.history.clone(),
            peers: self.peers.clone(),
            settings: self.settings,
            holder: self.holder.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Kind> Rollouts<K> {
    /// Returns the roll-outs of kind `K` in `database`; each that ends ready is recorded as
    /// its application's active deployment in `history`.
    pub fn new(
        database: Database,
        (store, history): (ApplicationStore<K>, History<K>),
        peers: Peers,
        settings: RolloutSettings,
    ) -> Self {
        Self {
            database,
            store,
            history,
            peers,
            settings,
            holder: Uuid::new_v4().to_string(),
            kind: PhantomData,
        }
    }

    fn lease_micros(&self) -> i64 {
        i64::try_from(self.settings.lease.as_micros()).unwrap_or(i64::MAX / 2)
    }

    /// Records `version` (image `image`) as the one application `id` rolls out, replacing any
    /// older one, held by this process; run it with [`Rollouts::run`].
    pub async fn begin(&self, id: Uuid, version: &str, image: &str) -> Result<Rollout, ApiError> {
        let now = now_micros();
        sqlx::query(
            "insert into rollouts (application_id, kind, version, image, holder, lease_until, attempts, created_at) \
             values ($1, $2, $3, $4, $5, $6, 1, $7) on conflict (application_id) do update set \
             version = excluded.version, image = excluded.image, holder = excluded.holder, \
             lease_until = excluded.lease_until, attempts = 1, created_at = excluded.created_at",
        )
        .bind(id.to_string())
        .bind(K::NOUN)
        .bind(version)
        .bind(image)
        .bind(&self.holder)
        .bind(now + self.lease_micros())
        .bind(now)
        .execute(self.database.pool())
        .await?;
        Ok(Rollout {
            application_id: id,
            version: version.to_owned(),
            image: image.to_owned(),
            attempts: 1,
        })
    }

    /// Forgets the roll-out of application `id`, if any: a newer deploy supersedes it, and its
    /// holder stops at its next renewal.
    pub async fn cancel(&self, id: Uuid) -> Result<(), ApiError> {
        self.database
            .delete_where("rollouts", "application_id", &id.to_string())
            .await?;
        Ok(())
    }

    /// Takes up to `limit` roll-outs of this kind whose holder's lease ran out (it died), each
    /// with one conditional update, and returns those this process now holds.
    pub async fn claim_abandoned(&self, limit: i64) -> Result<Vec<Rollout>, ApiError> {
        let now = now_micros();
        let rows = sqlx::query(
            "select application_id, version, image, attempts from rollouts \
             where kind = $1 and lease_until < $2 order by created_at limit $3",
        )
        .bind(K::NOUN)
        .bind(now)
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let (id, version): (String, String) = (row.try_get("application_id")?, row.try_get("version")?);
            let taken = sqlx::query(
                "update rollouts set holder = $1, lease_until = $2, attempts = attempts + 1 \
                 where application_id = $3 and version = $4 and lease_until < $5",
            )
            .bind(&self.holder)
            .bind(now + self.lease_micros())
            .bind(&id)
            .bind(&version)
            .bind(now)
            .execute(self.database.pool())
            .await?
            .rows_affected();
            if taken == 1 {
                claimed.push(Rollout {
                    application_id: nuage_core::ids::parse_id("application_id", &id)?,
                    version,
                    image: row.try_get("image")?,
                    attempts: row.try_get::<i64, _>("attempts")? + 1,
                });
            }
        }
        Ok(claimed)
    }

    /// Extends this process's lease on `rollout`; false once it is no longer this process's
    /// (superseded by a newer deploy, or taken over after a stall).
    async fn renew(&self, rollout: &Rollout) -> Result<bool, ApiError> {
        let renewed = sqlx::query(
            "update rollouts set lease_until = $1 where application_id = $2 and version = $3 and holder = $4",
        )
        .bind(now_micros() + self.lease_micros())
        .bind(rollout.application_id.to_string())
        .bind(&rollout.version)
        .bind(&self.holder)
        .execute(self.database.pool())
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// Ends `rollout` if this process still holds it, recording how it started as the
    /// application's status, in one transaction: `ready`, or `error` with why. Returns whether
    /// it held it.
    async fn end(&self, rollout: &Rollout, started: Result<String, ApiError>) -> Result<bool, ApiError> {
        let pinned = started.as_ref().ok().cloned();
        let (status, message) = match started {
            Ok(_) => (ApplicationStatus::Ready, String::new()),
            Err(error) => (
                ApplicationStatus::Error,
                format!("{}: {}", K::START_FAILED, error.message),
            ),
        };
        let id = rollout.application_id.to_string();
        let mut transaction = self.database.pool().begin().await?;
        let ended = sqlx::query("delete from rollouts where application_id = $1 and version = $2 and holder = $3")
            .bind(&id)
            .bind(&rollout.version)
            .bind(&self.holder)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        if ended == 1 {
            sqlx::query(&crate::store::set_status_sql::<K>(""))
                .bind(status.as_str())
                .bind(&message)
                .bind(now_micros())
                .bind(&id)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        if let (1, Some(pinned)) = (ended, pinned)
            && let Err(error) = self
                .history
                .activate(rollout.application_id, &rollout.version, &pinned)
                .await
        {
            // It serves all the same; only the history's `active` lags.
            tracing::warn!(application_id = %id, %error, "cannot record the active deployment");
        }
        if ended == 1 {
            tracing::info!(application_id = %id, version = rollout.version, status = status.as_str(), "{} deployment finished", K::NOUN);
        }
        Ok(ended == 1)
    }

    /// Starts `rollout`'s version (with `namespace`, the one its deploy read, if known),
    /// renewing the lease while the runner works, and records how it went as the application's
    /// status: `ready`, or `error` with why. Records nothing if the roll-out was superseded or
    /// taken over meanwhile.
    pub async fn run(&self, rollout: Rollout, namespace: Option<Namespace>) {
        let id = rollout.application_id;
        let started = if rollout.attempts > self.settings.attempts {
            Err(ApiError::unavailable(format!(
                "its start was interrupted {} times",
                rollout.attempts - 1
            )))
        } else {
            let start = async {
                if !self.settings.hold.is_zero() {
                    tokio::time::sleep(self.settings.hold).await;
                }
                self.start(&rollout, namespace).await
            };
            match self.while_held(&rollout, start).await {
                Some(started) => started,
                None => {
                    tracing::info!(application_id = %id, version = rollout.version, "{} roll-out superseded", K::NOUN);
                    return;
                }
            }
        };
        // Not ended: the lease runs out and a reconciler runs it again.
        if let Err(error) = self.end(&rollout, started).await {
            tracing::warn!(application_id = %id, %error, "cannot end a roll-out; it will be resumed");
        }
    }

    /// Runs `work` while renewing the lease on `rollout`; `None` if the lease was lost first.
    async fn while_held<T>(&self, rollout: &Rollout, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        let mut renewals = tokio::time::interval(self.settings.lease / 3);
        renewals.tick().await;
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                _ = renewals.tick() => match self.renew(rollout).await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(error) => tracing::warn!(application_id = %rollout.application_id, %error, "cannot renew a roll-out's lease"),
                },
            }
        }
    }

    /// Hands `rollout`'s version to the runner, which answers once an instance of it answered;
    /// returns the image it runs, pinned to its digest.
    async fn start(&self, rollout: &Rollout, namespace: Option<Namespace>) -> Result<String, ApiError> {
        let application = self.store.get_any(rollout.application_id).await?;
        if application.status == ApplicationStatus::Deleting {
            return Err(ApiError::transient_state(
                K::NOUN,
                application.id.to_string(),
                "deleting",
            ));
        }
        let (environment, secrets) = self
            .peers
            .runtime_environment(&application, namespace, &rollout.version)
            .await?;
        let mut spec = Spec {
            application_id: application.id.to_string(),
            version: rollout.version.clone(),
            kind: K::RUNNER_KIND.into(),
            image: rollout.image.clone(),
            environment,
            memory_limit_mb: application.memory_limit,
            cpu_limit_mcpu: application.cpu_limit(),
            secrets,
            sandbox: Sandbox::to_proto(application.sandbox).into(),
            organization_id: application.organization_id.to_string(),
            namespace_id: application.namespace_id.to_string(),
            ..Spec::default()
        };
        application.kind.fill_spec(&mut spec);
        let mut request = tonic::Request::new(DeployRequest { spec: Some(spec) });
        request.set_timeout(self.settings.deadline);
        self.peers
            .runner
            .clone()
            .deploy(request)
            .await
            .map(|response| response.into_inner().image)
            .map_err(|status| ApiError::unavailable(status.message()))
    }
}
