//! The durable build queue. A job is claimed with a lease: a worker that dies mid-build
//! (kill -9) loses its lease and the job goes to the next claim, up to a bounded number of
//! attempts. Claims are one conditional `update`, so replicas never build the same job twice
//! at once (PostgreSQL re-checks the condition on the locked row; SQLite serialises writes).

use nuage_core::clock::now_micros;
use nuage_core::{ApiError, Database};
use sqlx::Row;
use sqlx::any::AnyRow;

const COLUMNS: &str = "id, function_id, organization_id, namespace_id, runtime, handler, archive_key, repository, \
                       status, attempts, lease_until, log, created_at, updated_at";

/// A build job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Also the deployment's id.
    pub id: String,
    /// The function being built.
    pub function_id: String,
    /// Its tenant.
    pub organization_id: String,
    /// Its namespace.
    pub namespace_id: String,
    /// Its runtime.
    pub runtime: String,
    /// Its handler.
    pub handler: String,
    /// Where its archive is.
    pub archive_key: String,
    /// Where its image goes.
    pub repository: String,
    /// Claims so far.
    pub attempts: i64,
}

/// Build jobs in the database.
#[derive(Debug, Clone)]
pub struct JobStore {
    database: Database,
}

impl JobStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Queues `job` (again is harmless) and supersedes queued jobs of the same function;
    /// refuses it when its organization already has `backlog` jobs queued (in one statement,
    /// so concurrent submits cannot pass the bound together).
    pub async fn submit(&self, job: &Job, backlog: u32) -> Result<(), ApiError> {
        let now = now_micros();
        sqlx::query(
            "update build_jobs set status = 'superseded', updated_at = $1 \
             where function_id = $2 and status = 'queued' and id <> $3",
        )
        .bind(now)
        .bind(&job.function_id)
        .bind(&job.id)
        .execute(self.database.pool())
        .await?;
        let exists: Option<String> = sqlx::query_scalar("select id from build_jobs where id = $1")
            .bind(&job.id)
            .fetch_optional(self.database.pool())
            .await?;
        if exists.is_some() {
            return Ok(());
        }
        let inserted = sqlx::query(&format!(
            "insert into build_jobs ({COLUMNS}) select $1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, 0, '', $9, $9 \
             where (select count(*) from build_jobs where organization_id = $3 and status = 'queued') < $10"
        ))
        .bind(&job.id)
        .bind(&job.function_id)
        .bind(&job.organization_id)
        .bind(&job.namespace_id)
        .bind(&job.runtime)
        .bind(&job.handler)
        .bind(&job.archive_key)
        .bind(&job.repository)
        .bind(now)
        .bind(i64::from(backlog))
        .execute(self.database.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(ApiError {
                help_message: Some(format!(
                    "{backlog} builds of this organization are already queued; deploy again once some have finished"
                )),
                ..ApiError::new(
                    nuage_core::ErrorCode::ResourceExhausted,
                    format!("{backlog} builds are already queued"),
                )
            });
        }
        Ok(())
    }

    /// Claims, for `lease_micros`, a job that is queued, or running with an expired lease,
    /// taking organizations in turn: the next job is the oldest of the organization served
    /// least recently (whose last claim or end is oldest; never served comes first). One
    /// tenant's burst delays another's build by at most the builds in progress.
    pub async fn claim(&self, lease_micros: i64) -> Result<Option<Job>, ApiError> {
        let now = now_micros();
        let claimable = "status in ('queued', 'running') and lease_until < $2";
        let next = format!(
            "select id from build_jobs as waiting where {claimable} \
             order by coalesce((select max(served.updated_at) from build_jobs as served \
             where served.organization_id = waiting.organization_id \
             and served.status in ('running', 'done', 'failed')), 0), created_at limit 1"
        );
        let row = sqlx::query(&format!(
            "update build_jobs set status = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2 \
             where id = ({next}) and {claimable} returning {COLUMNS}"
        ))
        .bind(now + lease_micros)
        .bind(now)
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Ends a job as `done` or `failed`, keeping its log.
    pub async fn finish(&self, id: &str, succeeded: bool, log: &str) -> Result<(), ApiError> {
        sqlx::query("update build_jobs set status = $1, log = $2, lease_until = 0, updated_at = $3 where id = $4")
            .bind(if succeeded { "done" } else { "failed" })
            .bind(log)
            .bind(now_micros())
            .bind(id)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Puts a job back in the queue after a failure that may pass (the store was down...),
    /// claimable again after `delay_micros`.
    pub async fn retry_later(&self, id: &str, delay_micros: i64, log: &str) -> Result<(), ApiError> {
        let now = now_micros();
        sqlx::query(
            "update build_jobs set status = 'queued', log = $1, lease_until = $2, updated_at = $3 where id = $4",
        )
        .bind(log)
        .bind(now + delay_micros)
        .bind(now)
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }
}

/// A job of a deleted function, as its deletion sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The job's id, also its image's tag.
    pub id: String,
    /// Where its image went.
    pub repository: String,
    /// Whether a live worker is building it.
    pub running: bool,
}

impl JobStore {
    /// Returns every job of `function_id`.
    pub async fn of_function(&self, function_id: &str) -> Result<Vec<Held>, ApiError> {
        let now = now_micros();
        let rows = sqlx::query("select id, repository, status, lease_until from build_jobs where function_id = $1")
            .bind(function_id)
            .fetch_all(self.database.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let lease_until: i64 = row.try_get("lease_until")?;
                Ok(Held {
                    id: row.try_get("id")?,
                    repository: row.try_get("repository")?,
                    running: status == "running" && lease_until >= now,
                })
            })
            .collect()
    }

    /// Removes job `id` unless a live worker holds it; returns whether it did. A queued job
    /// claimed meanwhile is not removed: the claim and this are one conditional write each.
    pub async fn remove_unless_running(&self, id: &str) -> Result<bool, ApiError> {
        let result =
            sqlx::query("delete from build_jobs where id = $1 and not (status = 'running' and lease_until >= $2)")
                .bind(id)
                .bind(now_micros())
                .execute(self.database.pool())
                .await?;
        Ok(result.rows_affected() == 1)
    }
}

fn decode(row: &AnyRow) -> Result<Job, ApiError> {
    Ok(Job {
        id: row.try_get("id")?,
        function_id: row.try_get("function_id")?,
        organization_id: row.try_get("organization_id")?,
        namespace_id: row.try_get("namespace_id")?,
        runtime: row.try_get("runtime")?,
        handler: row.try_get("handler")?,
        archive_key: row.try_get("archive_key")?,
        repository: row.try_get("repository")?,
        attempts: row.try_get("attempts")?,
    })
}
