//! All SQL of the triggers service. Every tenant-facing query filters by organization and
//! region.

use crate::model::{NATS, NatsSource, SCW_NATS, Trigger, TriggerStatus};
use nuage_core::clock::now_micros;
use nuage_core::db::{Columns, OwnedTable, PageQuery};
use nuage_core::validate::Tags;
use nuage_core::{ApiError, Caller, Database, Page};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

const COLUMNS: &str = "id, organization_id, region, project_id, namespace_id, application_id, name, description, \
     input_type, subject, account_id, mnq_project_id, mnq_region, status, error_message, created_at, updated_at, \
     server_urls, credentials, http_path, http_method, tags";

/// The triggers table, as a read of one trigger of a tenant sees it.
const TRIGGERS: OwnedTable<'static, Trigger, ApiError> = OwnedTable {
    table: "triggers",
    columns: COLUMNS,
    decode,
    not_found,
};

/// What marks a trigger `deleting`: its error goes with the state it was about.
const DELETING: &str = "status = 'deleting', error_message = null";

/// Which triggers of the caller a list is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every one in the region.
    All,
    /// Those of one function or container.
    Application(Uuid),
    /// Those of the applications of one namespace.
    Namespace(Uuid),
    /// Those of one project.
    Project(Uuid),
}

/// Returns the error for a trigger the caller has not: Scaleway's message.
pub fn not_found(id: Uuid) -> ApiError {
    ApiError {
        message: "trigger does not exist".to_owned(),
        ..ApiError::not_found("trigger", id.to_string())
    }
}

/// Triggers in the database.
#[derive(Debug, Clone)]
pub struct TriggerStore {
    database: Database,
}

impl TriggerStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Stores a new trigger.
    pub async fn insert(&self, trigger: &Trigger) -> Result<(), ApiError> {
        sqlx::query(&format!(
            "insert into triggers ({COLUMNS}) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22)"
        ))
        .bind(trigger.id.to_string())
        .bind(trigger.organization_id.to_string())
        .bind(&trigger.region)
        .bind(trigger.project_id.to_string())
        .bind(trigger.namespace_id.to_string())
        .bind(trigger.application_id.to_string())
        .bind(&trigger.name)
        .bind(&trigger.description)
        .bind(trigger.source.input_type())
        .bind(&trigger.source.subject)
        .bind(&trigger.source.account_id)
        .bind(&trigger.source.mnq_project_id)
        .bind(&trigger.source.mnq_region)
        .bind(trigger.status.as_str())
        .bind(trigger.error_message.clone())
        .bind(trigger.created_at)
        .bind(trigger.updated_at)
        .bind(urls_json(&trigger.source.server_urls))
        .bind(&trigger.source.credentials)
        .bind(&trigger.http_path)
        .bind(&trigger.http_method)
        .bind(trigger.tags.to_json())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns one trigger of the caller in `region`.
    pub async fn get(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Trigger, ApiError> {
        self.database.owned(&TRIGGERS, caller, region, id).await
    }

    /// Returns one page of the caller's triggers in `region` within `scope`, and the count of
    /// all matches.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        scope: Scope,
        newest_first: bool,
        page: Page,
    ) -> Result<(Vec<Trigger>, u64), ApiError> {
        let (column, value) = match scope {
            Scope::All => ("''", String::new()),
            Scope::Application(id) => ("application_id", id.to_string()),
            Scope::Namespace(id) => ("namespace_id", id.to_string()),
            Scope::Project(id) => ("project_id", id.to_string()),
        };
        let condition = format!("{column} = $3");
        let query = PageQuery {
            table: "triggers",
            columns: COLUMNS,
            caller,
            region,
            condition: &condition,
            parameters: &[&value],
            order: PageQuery::creation_order(newest_first),
        };
        self.database.page_of(query, page, decode).await
    }

    /// Writes the changeable fields of `trigger` (name, description, destination, tags, and
    /// the subject, servers and credentials of one on the tenant's own servers) unless it is
    /// being deleted; `None` if it is (or is gone).
    pub async fn update(&self, trigger: &Trigger) -> Result<Option<Trigger>, ApiError> {
        let row = sqlx::query(&format!(
            "update triggers set name = $1, description = $2, updated_at = $3, http_path = $4, http_method = $5, \
             tags = $6, subject = $7, server_urls = $8, credentials = $9 \
             where id = $10 and organization_id = $11 and status <> 'deleting' returning {COLUMNS}"
        ))
        .bind(&trigger.name)
        .bind(&trigger.description)
        .bind(now_micros())
        .bind(&trigger.http_path)
        .bind(&trigger.http_method)
        .bind(trigger.tags.to_json())
        .bind(&trigger.source.subject)
        .bind(urls_json(&trigger.source.server_urls))
        .bind(&trigger.source.credentials)
        .bind(trigger.id.to_string())
        .bind(trigger.organization_id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Marks a trigger `deleting` and returns it; deleting twice is not an error.
    pub async fn mark_deleting(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Trigger, ApiError> {
        self.database
            .mark_deleting(&TRIGGERS, DELETING, caller, region, id)
            .await
    }

    /// Marks every trigger of an application `deleting` (the ids as the request gives them);
    /// returns how many still exist.
    pub async fn mark_application_deleting(
        &self,
        organization_id: &str,
        application_id: &str,
    ) -> Result<u64, ApiError> {
        self.database
            .mark_children_deleting("triggers", DELETING, "application_id", organization_id, application_id)
            .await
    }

    /// Sets the status of a trigger that is not being deleted to `ready` (clearing its error)
    /// or `error` with `message`; returns whether it changed (a trigger already so is left
    /// alone, so that replicas that agree do not write).
    pub async fn set_status(&self, id: Uuid, error: Option<&str>) -> Result<bool, ApiError> {
        let status = if error.is_some() {
            TriggerStatus::Error
        } else {
            TriggerStatus::Ready
        };
        let result = sqlx::query(
            "update triggers set status = $1, error_message = $2, updated_at = $3 \
             where id = $4 and status <> 'deleting' \
             and (status <> $1 or coalesce(error_message, '') <> coalesce($2, ''))",
        )
        .bind(status.as_str())
        .bind(error.map(str::to_owned))
        .bind(now_micros())
        .bind(id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Returns up to `limit` triggers `deleting` since before `before` (Unix microseconds).
    pub async fn deleting_before(&self, before: i64, limit: i64) -> Result<Vec<Uuid>, ApiError> {
        let rows = sqlx::query(
            "select id from triggers where status = 'deleting' and updated_at < $1 order by updated_at asc limit $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(|row| Columns::new(row, "trigger").uuid("id")).collect()
    }

    /// Removes a trigger that is `deleting`.
    pub async fn remove_deleted(&self, id: Uuid) -> Result<bool, ApiError> {
        Ok(self.database.remove_deleted("triggers", id).await?)
    }

    /// Returns every trigger, in any state, changed at or after `since` (Unix microseconds);
    /// `since` 0 returns every one not being deleted. The subscriber follows the table with it.
    pub async fn changed_since(&self, since: i64) -> Result<Vec<Trigger>, ApiError> {
        let rows = self
            .database
            .changed_since("triggers", COLUMNS, "status <> 'deleting'", since)
            .await?;
        rows.iter().map(decode).collect()
    }
}

/// Returns the stored form of server URLs: a JSON array.
fn urls_json(urls: &[String]) -> String {
    serde_json::to_string(urls).unwrap_or_else(|_| "[]".to_owned())
}

fn decode(row: &AnyRow) -> Result<Trigger, ApiError> {
    let columns = Columns::new(row, "trigger");
    let text = |column: &str| columns.text(column);
    let uuid = |column: &str| columns.uuid(column);
    let corrupt = |column: &str, value: &str| columns.corrupt(column, value);
    let input_type = text("input_type")?;
    if input_type != SCW_NATS && input_type != NATS {
        return Err(corrupt("input_type", &input_type));
    }
    let server_urls = text("server_urls")?;
    Ok(Trigger {
        id: uuid("id")?,
        organization_id: uuid("organization_id")?,
        region: text("region")?,
        project_id: uuid("project_id")?,
        namespace_id: uuid("namespace_id")?,
        application_id: uuid("application_id")?,
        name: text("name")?,
        description: text("description")?,
        source: NatsSource {
            subject: text("subject")?,
            account_id: text("account_id")?,
            mnq_project_id: text("mnq_project_id")?,
            mnq_region: text("mnq_region")?,
            server_urls: serde_json::from_str(&server_urls).map_err(|_| corrupt("server_urls", &server_urls))?,
            credentials: text("credentials")?,
        },
        http_path: text("http_path")?,
        http_method: text("http_method")?,
        tags: Tags::from_json(&text("tags")?).map_err(|error| ApiError::internal(&error))?,
        status: columns.parsed("status", TriggerStatus::parse)?,
        error_message: row.try_get::<Option<String>, _>("error_message")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
