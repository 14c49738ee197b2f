//! All SQL of the functions service. Every tenant-facing query filters by organization and
//! region.

use crate::model::Function;
use nuage_core::application::{ApplicationStatus, Privacy, order_sql};
use nuage_core::db::is_unique_violation;
use nuage_core::{ApiError, Caller, Database, Page};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

const COLUMNS: &str = "id, organization_id, project_id, region, namespace_id, name, description, \
                       environment_variables, min_scale, max_scale, runtime, memory_limit, timeout_ms, handler, \
                       privacy, endpoint, status, error_message, redeploy_due, created_at, updated_at";

/// Functions in the database.
#[derive(Debug, Clone)]
pub struct FunctionStore {
    database: Database,
}

/// Filters of a function list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only functions of this namespace.
    pub namespace_id: Option<Uuid>,
    /// Only functions with this exact name.
    pub name: Option<String>,
}

impl FunctionStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Stores a new function; its name must be free in its namespace.
    pub async fn insert(&self, function: &Function) -> Result<(), ApiError> {
        let inserted = sqlx::query(&format!(
            "insert into functions ({COLUMNS}) values \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        ))
        .bind(function.id.to_string())
        .bind(function.organization_id.to_string())
        .bind(function.project_id.to_string())
        .bind(&function.region)
        .bind(function.namespace_id.to_string())
        .bind(&function.name)
        .bind(&function.description)
        .bind(serde_json::to_string(&function.environment_variables).expect("a string map serialises"))
        .bind(i64::from(function.min_scale))
        .bind(i64::from(function.max_scale))
        .bind(&function.runtime)
        .bind(i64::from(function.memory_limit))
        .bind(i64::try_from(function.timeout_ms).unwrap_or(i64::MAX))
        .bind(&function.handler)
        .bind(function.privacy.as_str())
        .bind(&function.endpoint)
        .bind(function.status.as_str())
        .bind(&function.error_message)
        .bind(i64::from(function.redeploy_due))
        .bind(function.created_at)
        .bind(function.updated_at)
        .execute(self.database.pool())
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => {
                let existing: Option<String> =
                    sqlx::query_scalar("select id from functions where namespace_id = $1 and name = $2")
                        .bind(function.namespace_id.to_string())
                        .bind(&function.name)
                        .fetch_optional(self.database.pool())
                        .await?;
                Err(ApiError::already_exists(
                    "function",
                    existing.unwrap_or_default(),
                    format!("a function named `{}` already exists in this namespace", function.name),
                ))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Returns one function of the caller in `region`.
    pub async fn get(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Function, ApiError> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from functions where organization_id = $1 and region = $2 and id = $3"
        ))
        .bind(caller.organization_id.to_string())
        .bind(region)
        .bind(id.to_string())
        .fetch_optional(self.database.pool())
        .await?
        .ok_or_else(|| ApiError::not_found("function", id.to_string()))?;
        decode(&row)
    }

    /// Returns one page of the caller's functions in `region` and the count of all matches.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        filter: &ListFilter,
        order: i32,
        page: Page,
    ) -> Result<(Vec<Function>, u64), ApiError> {
        let condition =
            "organization_id = $1 and region = $2 and ($3 = '' or namespace_id = $3) and ($4 = '' or name = $4)";
        let organization_id = caller.organization_id.to_string();
        let namespace_id = filter.namespace_id.map(|id| id.to_string()).unwrap_or_default();
        let name = filter.name.clone().unwrap_or_default();
        let rows = sqlx::query(&format!(
            "select {COLUMNS}, count(*) over () as total from functions where {condition} \
             order by {} limit $5 offset $6",
            order_sql(order)
        ))
        .bind(&organization_id)
        .bind(region)
        .bind(&namespace_id)
        .bind(&name)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(self.database.pool())
        .await?;
        let total: i64 = match rows.first() {
            Some(row) => row.try_get("total")?,
            None if page.offset() == 0 => 0,
            None => {
                sqlx::query_scalar(&format!("select count(*) from functions where {condition}"))
                    .bind(&organization_id)
                    .bind(region)
                    .bind(&namespace_id)
                    .bind(&name)
                    .fetch_one(self.database.pool())
                    .await?
            }
        };
        let functions = rows.iter().map(decode).collect::<Result<_, _>>()?;
        Ok((functions, u64::try_from(total).unwrap_or_default()))
    }

    /// Writes the changeable fields of `function`, provided nobody changed it since it was
    /// read at `read_at` and it is not being deleted. Returns the stored function, or `None`
    /// when the condition failed.
    pub async fn update(&self, function: &Function, read_at: i64) -> Result<Option<Function>, ApiError> {
        let row = sqlx::query(&format!(
            "update functions set description = $1, environment_variables = $2, min_scale = $3, max_scale = $4, \
             memory_limit = $5, timeout_ms = $6, handler = $7, privacy = $8, redeploy_due = $9, updated_at = $10 \
             where id = $11 and updated_at = $12 and status <> 'deleting' returning {COLUMNS}"
        ))
        .bind(&function.description)
        .bind(serde_json::to_string(&function.environment_variables).expect("a string map serialises"))
        .bind(i64::from(function.min_scale))
        .bind(i64::from(function.max_scale))
        .bind(i64::from(function.memory_limit))
        .bind(i64::try_from(function.timeout_ms).unwrap_or(i64::MAX))
        .bind(&function.handler)
        .bind(function.privacy.as_str())
        .bind(i64::from(function.redeploy_due))
        .bind(function.updated_at)
        .bind(function.id.to_string())
        .bind(read_at)
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Sets the status (and error message) of a function that is not being deleted.
    pub async fn set_status(
        &self,
        id: Uuid,
        status: ApplicationStatus,
        error_message: &str,
    ) -> Result<Option<Function>, ApiError> {
        let row = sqlx::query(&format!(
            "update functions set status = $1, error_message = $2, redeploy_due = 0, updated_at = $3              where id = $4 and status <> 'deleting' returning {COLUMNS}"
        ))
        .bind(status.as_str())
        .bind(error_message)
        .bind(nuage_core::clock::now_micros())
        .bind(id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Returns a function by id alone (for the builder's reports, which carry no caller).
    pub async fn get_any(&self, id: Uuid) -> Result<Function, ApiError> {
        let row = sqlx::query(&format!("select {COLUMNS} from functions where id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or_else(|| ApiError::not_found("function", id.to_string()))?;
        decode(&row)
    }

    /// Marks a function `deleting` and returns it; deleting twice is not an error.
    pub async fn mark_deleting(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Function, ApiError> {
        // The answer comes from the write itself: once `deleting`, the reconciler may remove
        // the row at any moment, so a re-read could miss it.
        let row = sqlx::query(&format!(
            "update functions set status = 'deleting', updated_at = $1 \
             where organization_id = $2 and region = $3 and id = $4 returning {COLUMNS}"
        ))
        .bind(nuage_core::clock::now_micros())
        .bind(caller.organization_id.to_string())
        .bind(region)
        .bind(id.to_string())
        .fetch_optional(self.database.pool())
        .await?
        .ok_or_else(|| ApiError::not_found("function", id.to_string()))?;
        decode(&row)
    }

    /// Marks every function of a namespace `deleting`; returns how many still exist.
    pub async fn mark_namespace_deleting(&self, organization_id: Uuid, namespace_id: Uuid) -> Result<u64, ApiError> {
        sqlx::query(
            "update functions set status = 'deleting', updated_at = $1 \
             where organization_id = $2 and namespace_id = $3 and status <> 'deleting'",
        )
        .bind(nuage_core::clock::now_micros())
        .bind(organization_id.to_string())
        .bind(namespace_id.to_string())
        .execute(self.database.pool())
        .await?;
        let remaining: i64 =
            sqlx::query_scalar("select count(*) from functions where organization_id = $1 and namespace_id = $2")
                .bind(organization_id.to_string())
                .bind(namespace_id.to_string())
                .fetch_one(self.database.pool())
                .await?;
        Ok(u64::try_from(remaining).unwrap_or_default())
    }

    /// Returns up to `limit` functions in `status`, least recently changed first.
    pub async fn in_status(&self, status: ApplicationStatus, limit: i64) -> Result<Vec<Function>, ApiError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from functions where status = $1 order by updated_at asc limit $2"
        ))
        .bind(status.as_str())
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Moves a function's endpoint from `from` to `to`, unless it changed meanwhile or is being
    /// deleted. Returns the stored function, or `None` when the condition failed. `updated_at`
    /// stays: the move is the platform's, and must not fail a tenant's concurrent update.
    pub async fn set_endpoint(&self, id: Uuid, from: &str, to: &str) -> Result<Option<Function>, ApiError> {
        let row = sqlx::query(&format!(
            "update functions set endpoint = $1 where id = $2 and endpoint = $3 and status <> 'deleting' returning {COLUMNS}"
        ))
        .bind(to)
        .bind(id.to_string())
        .bind(from)
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Returns every function of every tenant (for the router's route table).
    pub async fn all(&self) -> Result<Vec<Function>, ApiError> {
        let rows = sqlx::query(&format!("select {COLUMNS} from functions"))
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Removes a function that is `deleting`.
    pub async fn remove_deleted(&self, id: Uuid) -> Result<bool, ApiError> {
        let result = sqlx::query("delete from functions where id = $1 and status = 'deleting'")
            .bind(id.to_string())
            .execute(self.database.pool())
            .await?;
        Ok(result.rows_affected() == 1)
    }
}

fn corrupt(what: &str, value: &str) -> ApiError {
    ApiError::internal(&format_args!("corrupt function row: bad {what} `{value}`"))
}

fn decode(row: &AnyRow) -> Result<Function, ApiError> {
    let text = |column: &str| row.try_get::<String, _>(column);
    let uuid = |column: &str| -> Result<Uuid, ApiError> {
        let value = text(column)?;
        Uuid::try_parse(&value).map_err(|_| corrupt(column, &value))
    };
    let small = |column: &str| -> Result<u32, ApiError> {
        let value: i64 = row.try_get(column)?;
        u32::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
    };
    let environment = text("environment_variables")?;
    let privacy = text("privacy")?;
    let status = text("status")?;
    let timeout_ms: i64 = row.try_get("timeout_ms")?;
    let redeploy_due: i64 = row.try_get("redeploy_due")?;
    Ok(Function {
        id: uuid("id")?,
        organization_id: uuid("organization_id")?,
        project_id: uuid("project_id")?,
        region: text("region")?,
        namespace_id: uuid("namespace_id")?,
        name: text("name")?,
        description: text("description")?,
        environment_variables: serde_json::from_str(&environment)
            .map_err(|_| corrupt("environment_variables", &environment))?,
        min_scale: small("min_scale")?,
        max_scale: small("max_scale")?,
        runtime: text("runtime")?,
        memory_limit: small("memory_limit")?,
        timeout_ms: u64::try_from(timeout_ms).map_err(|_| corrupt("timeout_ms", &timeout_ms.to_string()))?,
        handler: text("handler")?,
        privacy: Privacy::parse(&privacy).ok_or_else(|| corrupt("privacy", &privacy))?,
        endpoint: text("endpoint")?,
        status: ApplicationStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        error_message: text("error_message")?,
        redeploy_due: redeploy_due != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
