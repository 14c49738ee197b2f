//! All SQL of the logs service.

use nuage_core::{ApiError, Database, Page};

/// A stored line, as its row reads.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    /// Unique, and orders lines of the same microsecond by arrival.
    pub id: String,
    /// Its function or container.
    pub application_id: String,
    /// The instance, build or firing it comes from.
    pub source_id: String,
    /// `stdout`, `stderr`, `build`, `cron` or `router`.
    pub stream: String,
    /// Unix microseconds.
    pub timestamp: i64,
    /// The text (at most 64 KiB and a marker, valid UTF-8).
    pub message: String,
}

/// The columns an [`Entry`] reads.
const COLUMNS: &str = "id, application_id, source_id, stream, timestamp, message";

/// Rows per insert statement (6 parameters each).
const ROWS_PER_INSERT: usize = 500;
/// Rows per delete statement when pruning, so that writers are not held up long.
const PRUNE_BATCH: i64 = 5000;

/// Log lines in the database.
#[derive(Debug, Clone)]
pub struct LogStore {
    database: Database,
}

impl LogStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Stores `entries` in one transaction.
    pub async fn insert(&self, entries: &[Entry]) -> Result<(), ApiError> {
        let mut transaction = self.database.pool().begin().await?;
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "insert into log_lines (id, application_id, source_id, stream, timestamp, message) values ",
            );
            for index in 0..chunk.len() {
                let base = index * 6;
                if index > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    base + 1,
                    base + 2,
                    base + 3,
                    base + 4,
                    base + 5,
                    base + 6
                ));
            }
            let mut query = sqlx::query(&sql);
            for entry in chunk {
                query = query
                    .bind(&entry.id)
                    .bind(&entry.application_id)
                    .bind(&entry.source_id)
                    .bind(&entry.stream)
                    .bind(entry.timestamp)
                    .bind(&entry.message);
            }
            query.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Returns one page of an application's lines at or after `since`, and the count of all.
    pub async fn list(
        &self,
        application_id: &str,
        since: i64,
        ascending: bool,
        page: Page,
    ) -> Result<(Vec<Entry>, u64), ApiError> {
        let order = if ascending {
            "timestamp asc, id asc"
        } else {
            "timestamp desc, id desc"
        };
        let entries = sqlx::query_as(&format!(
            "select {COLUMNS} from log_lines \
             where application_id = $1 and timestamp >= $2 order by {order} limit $3 offset $4"
        ))
        .bind(application_id)
        .bind(since)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(self.database.pool())
        .await?;
        let total: i64 =
            sqlx::query_scalar("select count(*) from log_lines where application_id = $1 and timestamp >= $2")
                .bind(application_id)
                .bind(since)
                .fetch_one(self.database.pool())
                .await?;
        Ok((entries, u64::try_from(total).unwrap_or_default()))
    }

    /// Returns up to `limit` lines of an application stored after the line `id` (ids grow in
    /// the order lines are stored; "" for the first), stamped at or after `since`.
    pub async fn after(&self, application_id: &str, id: &str, since: i64, limit: i64) -> Result<Vec<Entry>, ApiError> {
        Ok(sqlx::query_as(&format!(
            "select {COLUMNS} from log_lines \
             where application_id = $1 and id > $2 and timestamp >= $3 order by id asc limit $4"
        ))
        .bind(application_id)
        .bind(id)
        .bind(since)
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?)
    }

    /// Deletes every line of an application; returns how many.
    pub async fn delete_application(&self, application_id: &str) -> Result<u64, ApiError> {
        Ok(self
            .database
            .delete_where("log_lines", "application_id", application_id)
            .await?)
    }

    /// Deletes lines older than `before` (Unix microseconds), a batch at a time; returns how
    /// many.
    pub async fn prune_older(&self, before: i64) -> Result<u64, ApiError> {
        let mut deleted = 0;
        loop {
            let result = sqlx::query(
                "delete from log_lines where id in (select id from log_lines where timestamp < $1 limit $2)",
            )
            .bind(before)
            .bind(PRUNE_BATCH)
            .execute(self.database.pool())
            .await?;
            deleted += result.rows_affected();
            if result.rows_affected() < u64::try_from(PRUNE_BATCH).unwrap_or(u64::MAX) {
                return Ok(deleted);
            }
        }
    }

    /// Keeps the newest `keep` lines of an application; returns how many went.
    pub async fn prune_application(&self, application_id: &str, keep: u64) -> Result<u64, ApiError> {
        let count: i64 = sqlx::query_scalar("select count(*) from log_lines where application_id = $1")
            .bind(application_id)
            .fetch_one(self.database.pool())
            .await?;
        let mut excess = u64::try_from(count).unwrap_or_default().saturating_sub(keep);
        let mut deleted = 0;
        // A batch at a time, so that the writer is not held up long.
        while excess > 0 {
            let batch = excess.min(u64::try_from(PRUNE_BATCH).unwrap_or(u64::MAX));
            let result = sqlx::query(
                "delete from log_lines where id in (select id from log_lines where application_id = $1 \
                 order by timestamp asc, id asc limit $2)",
            )
            .bind(application_id)
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .execute(self.database.pool())
            .await?;
            deleted += result.rows_affected();
            if result.rows_affected() == 0 {
                break;
            }
            excess -= batch.min(result.rows_affected());
        }
        Ok(deleted)
    }
}
