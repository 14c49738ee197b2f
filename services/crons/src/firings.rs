//! The SQL of cron firings. The unique `(cron_id, scheduled_at)` key is what makes each
//! scheduled time fire once when several replicas share the database: whoever inserts the row
//! holds the firing; a held firing whose lease ran out is taken over with a conditional update.

use crate::model::Cron;
use nuage_clients::invoker::Outcome;
use nuage_core::clock::now_micros;
use nuage_core::{ApiError, Database};
use sqlx::Row;
use uuid::Uuid;

/// A firing held by this replica, to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The firing's id.
    pub id: Uuid,
    /// Its cron.
    pub cron_id: Uuid,
    /// The scheduled time, Unix microseconds.
    pub scheduled_at: i64,
}

/// Cron firings in the database.
#[derive(Debug, Clone)]
pub struct FiringStore {
    database: Database,
}

impl FiringStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Claims the firing of `cron` at `scheduled_at` for `replica` until `lease_until`; `None`
    /// if another replica (or this one) already has it.
    pub async fn claim(
        &self,
        cron: &Cron,
        scheduled_at: i64,
        replica: &str,
        lease_until: i64,
    ) -> Result<Option<Held>, ApiError> {
        let id = Uuid::new_v4();
        let result = sqlx::query(
            "insert into cron_firings (id, cron_id, organization_id, application_id, scheduled_at, status, \
             replica, lease_until, attempts, error, created_at) \
             values ($1, $2, $3, $4, $5, 'claimed', $6, $7, 1, '', $8) \
             on conflict (cron_id, scheduled_at) do nothing",
        )
        .bind(id.to_string())
        .bind(cron.id.to_string())
        .bind(cron.organization_id.to_string())
        .bind(cron.application_id.to_string())
        .bind(scheduled_at)
        .bind(replica)
        .bind(lease_until)
        .bind(now_micros())
        .execute(self.database.pool())
        .await?;
        Ok((result.rows_affected() == 1).then_some(Held {
            id,
            cron_id: cron.id,
            scheduled_at,
        }))
    }

    /// Moves a firing `replica` holds to `sending`; false if it lost the firing (its lease ran
    /// out and another replica took it over). After this the firing is never sent again.
    pub async fn mark_sending(
        &self,
        id: Uuid,
        replica: &str,
        application_id: Uuid,
        until: i64,
    ) -> Result<bool, ApiError> {
        let result = sqlx::query(
            "update cron_firings set status = 'sending', started_at = $1, lease_until = $2, application_id = $3 \
             where id = $4 and replica = $5 and status = 'claimed'",
        )
        .bind(now_micros())
        .bind(until)
        .bind(application_id.to_string())
        .bind(id.to_string())
        .bind(replica)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records how a firing went.
    pub async fn finish(&self, id: Uuid, outcome: &Outcome) -> Result<(), ApiError> {
        sqlx::query(
            "update cron_firings set status = $1, http_status = $2, duration_ms = $3, error = $4 \
             where id = $5 and status in ('claimed', 'sending')",
        )
        .bind(if outcome.succeeded { "succeeded" } else { "failed" })
        .bind(outcome.http_status.map(i64::from))
        .bind(outcome.duration_ms)
        .bind(&outcome.error)
        .bind(id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Takes over, for `replica`, firings another replica held whose lease ran out at or after
    /// `oldest` (an older lease means no replica was up to take it over in time); returns those
    /// it won.
    pub async fn take_over(&self, replica: &str, oldest: i64, lease_until: i64) -> Result<Vec<Held>, ApiError> {
        let now = now_micros();
        let rows = sqlx::query(
            "select id, cron_id, scheduled_at from cron_firings \
             where status = 'claimed' and lease_until < $1 and lease_until >= $2 and replica <> $3 limit 100",
        )
        .bind(now)
        .bind(oldest)
        .bind(replica)
        .fetch_all(self.database.pool())
        .await?;
        let mut won = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let result = sqlx::query(
                "update cron_firings set replica = $1, lease_until = $2, attempts = attempts + 1 \
                 where id = $3 and status = 'claimed' and lease_until < $4",
            )
            .bind(replica)
            .bind(lease_until)
            .bind(&id)
            .bind(now)
            .execute(self.database.pool())
            .await?;
            if result.rows_affected() == 1 {
                let cron_id: String = row.try_get("cron_id")?;
                won.push(Held {
                    id: parse(&id)?,
                    cron_id: parse(&cron_id)?,
                    scheduled_at: row.try_get("scheduled_at")?,
                });
            }
        }
        Ok(won)
    }

    /// Records as failed the firings nobody will send: held ones whose lease ran out before
    /// `oldest` (every replica was down), and sent ones whose replica never came back with the
    /// answer. Returns how many.
    pub async fn give_up(&self, oldest: i64) -> Result<u64, ApiError> {
        let now = now_micros();
        let held = sqlx::query(
            "update cron_firings set status = 'failed', error = $1 \
             where status = 'claimed' and lease_until < $2 and lease_until < $3",
        )
        .bind("the replica that held this firing stopped before sending it, and no other replica was up to take it over in time; missed firings are not replayed")
        .bind(now)
        .bind(oldest)
        .execute(self.database.pool())
        .await?;
        let sent = sqlx::query(
            "update cron_firings set status = 'failed', error = $1 where status = 'sending' and lease_until < $2",
        )
        .bind("the replica that sent this firing stopped before the answer came back; it is not sent again")
        .bind(now)
        .execute(self.database.pool())
        .await?;
        Ok(held.rows_affected() + sent.rows_affected())
    }

    /// Drops a firing (its cron was deleted before it was sent).
    pub async fn forget(&self, id: Uuid) -> Result<(), ApiError> {
        self.database
            .delete_where("cron_firings", "id", &id.to_string())
            .await?;
        Ok(())
    }

    /// Keeps the newest `keep` firings of `cron_id`.
    pub async fn prune(&self, cron_id: Uuid, keep: u32) -> Result<(), ApiError> {
        sqlx::query(
            "delete from cron_firings where cron_id = $1 and scheduled_at < \
             (select scheduled_at from cron_firings where cron_id = $1 order by scheduled_at desc limit 1 offset $2)",
        )
        .bind(cron_id.to_string())
        .bind(i64::from(keep.max(1)) - 1)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }
}

fn parse(value: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(value).map_err(|_| ApiError::internal(&format_args!("corrupt cron firing row: bad id `{value}`")))
}
