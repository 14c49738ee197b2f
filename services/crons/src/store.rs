//! All SQL of the crons service. Every tenant-facing query filters by organization and region.

use crate::model::{Cron, CronStatus, Delivery};
use nuage_core::clock::now_micros;
use nuage_core::db::{Columns, OwnedTable, PageQuery};
use nuage_core::{ApiError, Caller, Database, Page};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

const COLUMNS: &str =
    "id, organization_id, region, application_id, schedule, args, status, name, created_at, updated_at, delivery";

/// The crons table, as a read of one cron of a tenant sees it.
const CRONS: OwnedTable<'static, Cron, ApiError> = OwnedTable {
    table: "crons",
    columns: COLUMNS,
    decode,
    not_found: |id| ApiError::not_found("cron", id.to_string()),
};

/// What marks a cron `deleting`.
const DELETING: &str = "status = 'deleting'";

/// Crons in the database.
#[derive(Debug, Clone)]
pub struct CronStore {
    database: Database,
}

impl CronStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Stores a new cron.
    pub async fn insert(&self, cron: &Cron) -> Result<(), ApiError> {
        sqlx::query(&format!(
            "insert into crons ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(cron.id.to_string())
        .bind(cron.organization_id.to_string())
        .bind(&cron.region)
        .bind(cron.application_id.to_string())
        .bind(&cron.schedule)
        .bind(&cron.args)
        .bind(cron.status.as_str())
        .bind(&cron.name)
        .bind(cron.created_at)
        .bind(cron.updated_at)
        .bind(delivery_json(cron.delivery.as_ref()))
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns one cron of the caller in `region`.
    pub async fn get(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Cron, ApiError> {
        self.database.owned(&CRONS, caller, region, id).await
    }

    /// Returns one page of the caller's crons in `region` and the count of all matches.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        application_id: Option<Uuid>,
        newest_first: bool,
        page: Page,
    ) -> Result<(Vec<Cron>, u64), ApiError> {
        let application_id = application_id.map(|id| id.to_string()).unwrap_or_default();
        let query = PageQuery {
            table: "crons",
            columns: COLUMNS,
            caller,
            region,
            condition: "$3 = '' or application_id = $3",
            parameters: &[&application_id],
            order: PageQuery::creation_order(newest_first),
        };
        self.database.page_of(query, page, decode).await
    }

    /// Writes the changeable fields of `cron` unless it is being deleted; `None` if it is
    /// (or is gone).
    pub async fn update(&self, cron: &Cron) -> Result<Option<Cron>, ApiError> {
        let row = sqlx::query(&format!(
            "update crons set application_id = $1, schedule = $2, args = $3, name = $4, updated_at = $5, delivery = $8 \
             where id = $6 and organization_id = $7 and status <> 'deleting' returning {COLUMNS}"
        ))
        .bind(cron.application_id.to_string())
        .bind(&cron.schedule)
        .bind(&cron.args)
        .bind(&cron.name)
        .bind(now_micros())
        .bind(cron.id.to_string())
        .bind(cron.organization_id.to_string())
        .bind(delivery_json(cron.delivery.as_ref()))
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Marks a cron `deleting` and returns it; deleting twice is not an error.
    pub async fn mark_deleting(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Cron, ApiError> {
        self.database.mark_deleting(&CRONS, DELETING, caller, region, id).await
    }

    /// Marks every cron of an application `deleting` (the ids as the request gives them);
    /// returns how many still exist.
    pub async fn mark_application_deleting(
        &self,
        organization_id: &str,
        application_id: &str,
    ) -> Result<u64, ApiError> {
        self.database
            .mark_children_deleting("crons", DELETING, "application_id", organization_id, application_id)
            .await
    }

    /// Returns up to `limit` crons in `status`, least recently changed first.
    pub async fn in_status(&self, status: CronStatus, limit: i64) -> Result<Vec<Cron>, ApiError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from crons where status = $1 order by updated_at asc limit $2"
        ))
        .bind(status.as_str())
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Makes a `pending` cron `ready`.
    pub async fn mark_ready(&self, id: Uuid) -> Result<bool, ApiError> {
        let result =
            sqlx::query("update crons set status = 'ready', updated_at = $1 where id = $2 and status = 'pending'")
                .bind(now_micros())
                .bind(id.to_string())
                .execute(self.database.pool())
                .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Removes a cron that is `deleting`, and its firings.
    pub async fn remove_deleted(&self, id: Uuid) -> Result<bool, ApiError> {
        let mut transaction = self.database.pool().begin().await?;
        let result = sqlx::query("delete from crons where id = $1 and status = 'deleting'")
            .bind(id.to_string())
            .execute(&mut *transaction)
            .await?;
        sqlx::query("delete from cron_firings where cron_id = $1")
            .bind(id.to_string())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// Returns every cron, in any state, changed at or after `since` (Unix microseconds);
    /// `since` 0 returns every `ready` cron. The scheduler follows the table with it.
    pub async fn changed_since(&self, since: i64) -> Result<Vec<Cron>, ApiError> {
        let rows = self
            .database
            .changed_since("crons", COLUMNS, "status = 'ready'", since)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Returns a `ready` cron by id, whoever owns it (for the scheduler).
    pub async fn ready(&self, id: Uuid) -> Result<Option<Cron>, ApiError> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from crons where id = $1 and status = 'ready'"
        ))
        .bind(id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }
}

/// Returns the stored form of a delivery: JSON, or empty for none.
fn delivery_json(delivery: Option<&Delivery>) -> String {
    delivery
        .and_then(|delivery| serde_json::to_string(delivery).ok())
        .unwrap_or_default()
}

fn decode(row: &AnyRow) -> Result<Cron, ApiError> {
    let columns = Columns::new(row, "cron");
    let text = |column: &str| columns.text(column);
    let uuid = |column: &str| columns.uuid(column);
    let corrupt = |column: &str, value: &str| columns.corrupt(column, value);
    let delivery = text("delivery")?;
    Ok(Cron {
        delivery: if delivery.is_empty() {
            None
        } else {
            Some(serde_json::from_str(&delivery).map_err(|_| corrupt("delivery", &delivery))?)
        },
        id: uuid("id")?,
        organization_id: uuid("organization_id")?,
        region: text("region")?,
        application_id: uuid("application_id")?,
        schedule: text("schedule")?,
        args: text("args")?,
        status: columns.parsed("status", CronStatus::parse)?,
        name: text("name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
