//! The durable build queue. A job is claimed with a lease, which its worker renews while it
//! builds: a worker that dies mid-build (kill -9) or is cut off loses its lease and the job
//! goes to the next claim, up to a bounded number of attempts, while a slow build is never
//! taken over from a live worker. A claim is its attempt number: renewing and ending a job
//! are conditional on it, so a worker whose lease ran out cannot end a job another claim
//! holds. Claims are one conditional `update`, so replicas never build the same job twice
//! at once (PostgreSQL re-checks the condition on the locked row; SQLite serialises writes).

use nuage_core::clock::now_micros;
use nuage_core::{ApiError, Database};
use sqlx::Row;

const COLUMNS: &str = "id, function_id, organization_id, namespace_id, runtime, handler, archive_key, repository, \
                       status, attempts, lease_until, log, created_at, updated_at";

/// A build job, as its row reads.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
        Ok(sqlx::query_as(&format!(
            "update build_jobs set status = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2 \
             where id = ({next}) and {claimable} returning {COLUMNS}"
        ))
        .bind(now + lease_micros)
        .bind(now)
        .fetch_optional(self.database.pool())
        .await?)
    }

    /// Extends, to `lease_micros` from now, the lease of `job` while its claim (its attempt)
    /// still holds it; returns false when it does not: the lease ran out and another claim
    /// took the job, or it ended.
    pub async fn renew(&self, job: &Job, lease_micros: i64) -> Result<bool, ApiError> {
        let now = now_micros();
        let result = sqlx::query(
            "update build_jobs set lease_until = $1 where id = $2 and attempts = $3 and status = 'running'",
        )
        .bind(now + lease_micros)
        .bind(&job.id)
        .bind(job.attempts)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Ends `job` as `done` or `failed`, keeping its log, if its claim still holds it; returns
    /// whether it did (a claim whose lease ran out while its worker was cut off must not end
    /// a job another claim is building).
    pub async fn finish(&self, job: &Job, succeeded: bool, log: &str) -> Result<bool, ApiError> {
        let result = sqlx::query(
            "update build_jobs set status = $1, log = $2, lease_until = 0, updated_at = $3 \
             where id = $4 and attempts = $5 and status = 'running'",
        )
        .bind(if succeeded { "done" } else { "failed" })
        .bind(log)
        .bind(now_micros())
        .bind(&job.id)
        .bind(job.attempts)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Puts `job` back in the queue after a failure that may pass (the store was down...),
    /// claimable again after `delay_micros`, if its claim still holds it.
    pub async fn retry_later(&self, job: &Job, delay_micros: i64, log: &str) -> Result<bool, ApiError> {
        let now = now_micros();
        let result = sqlx::query(
            "update build_jobs set status = 'queued', log = $1, lease_until = $2, updated_at = $3 \
             where id = $4 and attempts = $5 and status = 'running'",
        )
        .bind(log)
        .bind(now + delay_micros)
        .bind(now)
        .bind(&job.id)
        .bind(job.attempts)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
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

#[cfg(test)]
mod tests {
    use super::{Job, JobStore};
    use nuage_core::Database;

    fn job(id: &str) -> Job {
        Job {
            id: id.to_owned(),
            function_id: "f".to_owned(),
            organization_id: "o".to_owned(),
            namespace_id: "n".to_owned(),
            runtime: "python311".to_owned(),
            handler: "handler.handle".to_owned(),
            archive_key: "k".to_owned(),
            repository: "r".to_owned(),
            attempts: 0,
        }
    }

    #[tokio::test]
    async fn a_renewed_claim_keeps_its_job_and_a_lapsed_one_cannot_end_it() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::migrated_in(dir.path()).await.unwrap();
        let jobs = JobStore::new(database);
        jobs.submit(&job("j1"), 10).await.unwrap();
        // A claim for 50 ms, renewed for a minute: no other claim takes the job meanwhile.
        let first = jobs.claim(50_000).await.unwrap().unwrap();
        assert!(jobs.renew(&first, 60_000_000).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        assert_eq!(jobs.claim(60_000_000).await.unwrap(), None);
        // Its lease lapses (its worker was cut off): the next claim takes the job over.
        assert!(jobs.renew(&first, -1).await.unwrap());
        let second = jobs.claim(60_000_000).await.unwrap().unwrap();
        assert_eq!((second.id.as_str(), second.attempts), ("j1", 2));
        // The first worker, back, can neither renew nor end nor requeue it.
        assert!(!jobs.renew(&first, 60_000_000).await.unwrap());
        assert!(!jobs.finish(&first, false, "stale").await.unwrap());
        assert!(!jobs.retry_later(&first, 0, "stale").await.unwrap());
        // The claim that holds it ends it, once.
        assert!(jobs.finish(&second, true, "built").await.unwrap());
        assert!(!jobs.finish(&second, true, "built").await.unwrap());
        assert_eq!(jobs.claim(60_000_000).await.unwrap(), None);
    }
}
