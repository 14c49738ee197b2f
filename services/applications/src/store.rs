//! All SQL of functions and containers: one store over the table of each [`Kind`]. Every
//! tenant-facing query filters by organization and region.

use crate::model::{Application, ApplicationStatus, Kind, Privacy, Sandbox, order_sql};
use nuage_core::clock::now_micros;
use nuage_core::db::{Columns, OwnedTable, PageQuery, is_unique_violation};
use nuage_core::secrets::SecretVariables;
use nuage_core::validate::Tags;
use nuage_core::{ApiError, Caller, Database, Page};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::marker::PhantomData;
use uuid::Uuid;

/// The columns every application has, in the order [`ApplicationStore::insert`] binds them.
const COMMON_COLUMNS: [&str; 23] = [
    "id",
    "organization_id",
    "project_id",
    "region",
    "namespace_id",
    "name",
    "description",
    "environment_variables",
    "min_scale",
    "max_scale",
    "memory_limit",
    "timeout_ms",
    "privacy",
    "sandbox",
    "tags",
    "secrets",
    "endpoint",
    "status",
    "error_message",
    "redeploy_due",
    "created_at",
    "updated_at",
    "ready_at",
];

/// Applications of kind `K` in the database.
#[derive(Debug)]
pub struct ApplicationStore<K> {
    database: Database,
    /// Every column of the kind's table, common ones first.
    columns: String,
    kind: PhantomData<K>,
}

impl<K> Clone for ApplicationStore<K> {
    fn clone(&self) -> Self {
        Self {
            database: self.database.clone(),
            columns: self.columns.clone(),
            kind: PhantomData,
        }
    }
}

/// Filters of a function or container list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only those of this namespace.
    pub namespace_id: Option<Uuid>,
    /// Only those with this exact name.
    pub name: Option<String>,
}

impl<K: Kind> ApplicationStore<K> {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        let columns: Vec<&str> = COMMON_COLUMNS.iter().chain(K::COLUMNS).copied().collect();
        Self {
            database,
            columns: columns.join(", "),
            kind: PhantomData,
        }
    }

    /// Stores a new application; its name must be free in its namespace.
    pub async fn insert(&self, application: &Application<K>) -> Result<(), ApiError> {
        let count = COMMON_COLUMNS.len() + K::COLUMNS.len();
        let placeholders: Vec<String> = (1..=count).map(|index| format!("${index}")).collect();
        let sql = format!(
            "insert into {} ({}) values ({})",
            K::TABLE,
            self.columns,
            placeholders.join(", ")
        );
        let query = sqlx::query(&sql)
            .bind(application.id.to_string())
            .bind(application.organization_id.to_string())
            .bind(application.project_id.to_string())
            .bind(&application.region)
            .bind(application.namespace_id.to_string())
            .bind(&application.name);
        let mut query = bind_settings(query, application)
            .bind(&application.endpoint)
            .bind(application.status.as_str())
            .bind(&application.error_message)
            .bind(i64::from(application.redeploy_due))
            .bind(application.created_at)
            .bind(application.updated_at)
            .bind(application.ready_at);
        for value in application.kind.values() {
            query = query.bind(value);
        }
        match query.execute(self.database.pool()).await {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(self.name_taken(application).await),
            Err(error) => Err(error.into()),
        }
    }

    /// Returns the error for a name already taken in its namespace, naming the holder.
    async fn name_taken(&self, application: &Application<K>) -> ApiError {
        let existing: Result<Option<String>, _> = sqlx::query_scalar(&format!(
            "select id from {} where namespace_id = $1 and name = $2",
            K::TABLE
        ))
        .bind(application.namespace_id.to_string())
        .bind(&application.name)
        .fetch_optional(self.database.pool())
        .await;
        match existing {
            Ok(existing) => ApiError::already_exists(
                K::NOUN,
                existing.unwrap_or_default(),
                format!(
                    "a {} named `{}` already exists in this namespace",
                    K::NOUN,
                    application.name
                ),
            ),
            Err(error) => error.into(),
        }
    }

    /// Returns the kind's table, as a read of one application of a tenant sees it.
    fn owned(&self) -> OwnedTable<'_, Application<K>, ApiError> {
        OwnedTable {
            table: K::TABLE,
            columns: &self.columns,
            decode,
            not_found: |id| ApiError::not_found(K::NOUN, id.to_string()),
        }
    }

    /// Returns one application of the caller in `region`.
    pub async fn get(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Application<K>, ApiError> {
        self.database.owned(&self.owned(), caller, region, id).await
    }

    /// Returns one page of the caller's applications in `region` and the count of all matches.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        filter: &ListFilter,
        order: i32,
        page: Page,
    ) -> Result<(Vec<Application<K>>, u64), ApiError> {
        let namespace_id = filter.namespace_id.map(|id| id.to_string()).unwrap_or_default();
        let name = filter.name.clone().unwrap_or_default();
        let query = PageQuery {
            table: K::TABLE,
            columns: &self.columns,
            caller,
            region,
            condition: "($3 = '' or namespace_id = $3) and ($4 = '' or name = $4)",
            parameters: &[&namespace_id, &name],
            order: order_sql(order),
        };
        self.database.page_of(query, page, decode).await
    }

    /// Writes the changeable fields of `application`, provided nobody changed it since it was
    /// read at `read_at` and it is not being deleted. Returns the stored application, or `None`
    /// when the condition failed.
    pub async fn update(&self, application: &Application<K>, read_at: i64) -> Result<Option<Application<K>>, ApiError> {
        let own: String = K::CHANGEABLE
            .iter()
            .enumerate()
            .map(|(index, column)| format!(", {column} = ${}", index + 13))
            .collect();
        let id_at = 13 + K::CHANGEABLE.len();
        let sql = format!(
            "update {} set description = $1, environment_variables = $2, min_scale = $3, max_scale = $4, \
             memory_limit = $5, timeout_ms = $6, privacy = $7, sandbox = $8, tags = $9, secrets = $10, \
             redeploy_due = $11, updated_at = $12{own} \
             where id = ${id_at} and updated_at = ${} and status <> 'deleting' returning {}",
            K::TABLE,
            id_at + 1,
            self.columns
        );
        let mut query = bind_settings(sqlx::query(&sql), application)
            .bind(i64::from(application.redeploy_due))
            .bind(application.updated_at);
        let values = application.kind.values();
        for column in K::CHANGEABLE {
            let index = K::COLUMNS
                .iter()
                .position(|own| own == column)
                .expect("a changeable column is a column");
            query = query.bind(values[index].clone());
        }
        let row = query
            .bind(application.id.to_string())
            .bind(read_at)
            .fetch_optional(self.database.pool())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Sets the status (and error message) of an application that is not being deleted, and
    /// clears `redeploy_due`; `ready` also sets `ready_at`.
    pub async fn set_status(
        &self,
        id: Uuid,
        status: ApplicationStatus,
        error_message: &str,
    ) -> Result<Option<Application<K>>, ApiError> {
        let row = sqlx::query(&set_status_sql::<K>(&format!(" returning {}", self.columns)))
            .bind(status.as_str())
            .bind(error_message)
            .bind(now_micros())
            .bind(id.to_string())
            .fetch_optional(self.database.pool())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Returns an application by id alone (for what carries no caller: build reports,
    /// roll-outs).
    pub async fn get_any(&self, id: Uuid) -> Result<Application<K>, ApiError> {
        let row = sqlx::query(&format!("select {} from {} where id = $1", self.columns, K::TABLE))
            .bind(id.to_string())
            .fetch_optional(self.database.pool())
            .await?
            .ok_or_else(|| ApiError::not_found(K::NOUN, id.to_string()))?;
        decode(&row)
    }

    /// Marks an application `deleting` and returns it; deleting twice is not an error.
    pub async fn mark_deleting(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Application<K>, ApiError> {
        self.database
            .mark_deleting(&self.owned(), "status = 'deleting'", caller, region, id)
            .await
    }

    /// Marks every application of a namespace `deleting` (the ids as the request gives them);
    /// returns how many still exist.
    pub async fn mark_namespace_deleting(&self, organization_id: &str, namespace_id: &str) -> Result<u64, ApiError> {
        self.database
            .mark_children_deleting(
                K::TABLE,
                "status = 'deleting'",
                "namespace_id",
                organization_id,
                namespace_id,
            )
            .await
    }

    /// Returns up to `limit` applications in `status`, least recently changed first.
    pub async fn in_status(&self, status: ApplicationStatus, limit: i64) -> Result<Vec<Application<K>>, ApiError> {
        let rows = sqlx::query(&format!(
            "select {} from {} where status = $1 order by updated_at asc limit $2",
            self.columns,
            K::TABLE
        ))
        .bind(status.as_str())
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Marks an application as just changed (without changing it), so that it comes last
    /// among those [`ApplicationStore::in_status`] returns.
    pub async fn touch(&self, id: Uuid) -> Result<(), ApiError> {
        sqlx::query(&format!("update {} set updated_at = $1 where id = $2", K::TABLE))
            .bind(now_micros())
            .bind(id.to_string())
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Moves an application's endpoint from `from` to `to`, unless it changed meanwhile or is
    /// being deleted. Returns the stored application, or `None` when the condition failed.
    /// `updated_at` stays: the move is the platform's, and must not fail a tenant's concurrent
    /// update.
    pub async fn set_endpoint(&self, id: Uuid, from: &str, to: &str) -> Result<Option<Application<K>>, ApiError> {
        let row = sqlx::query(&format!(
            "update {} set endpoint = $1 where id = $2 and endpoint = $3 and status <> 'deleting' returning {}",
            K::TABLE,
            self.columns
        ))
        .bind(to)
        .bind(id.to_string())
        .bind(from)
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Returns every application of every tenant (for the routers' route table).
    pub async fn all(&self) -> Result<Vec<Application<K>>, ApiError> {
        let rows = sqlx::query(&format!("select {} from {}", self.columns, K::TABLE))
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Removes an application that is `deleting`.
    pub async fn remove_deleted(&self, id: Uuid) -> Result<bool, ApiError> {
        Ok(self.database.remove_deleted(K::TABLE, id).await?)
    }
}

/// The statement that sets an application's status (`$1`), error message (`$2`) and
/// `updated_at` (`$3`) by id (`$4`), unless it is being deleted, and clears `redeploy_due`;
/// `ready` also sets `ready_at`. `tail` follows (a `returning` clause).
pub(crate) fn set_status_sql<K: Kind>(tail: &str) -> String {
    format!(
        "update {} set status = $1, error_message = $2, redeploy_due = 0, updated_at = $3, \
         ready_at = case when $1 = 'ready' then $3 else ready_at end \
         where id = $4 and status <> 'deleting'{tail}",
        K::TABLE
    )
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds the settings a tenant chooses, in the order insert and update both write them:
/// description, variables, scale, memory, timeout, privacy, sandbox, tags, secrets.
fn bind_settings<'q, K: Kind>(query: Query<'q>, application: &'q Application<K>) -> Query<'q> {
    query
        .bind(&application.description)
        .bind(serde_json::to_string(&application.environment_variables).expect("a string map serialises"))
        .bind(i64::from(application.min_scale))
        .bind(i64::from(application.max_scale))
        .bind(i64::from(application.memory_limit))
        .bind(i64::try_from(application.timeout_ms).unwrap_or(i64::MAX))
        .bind(application.privacy.as_str())
        .bind(application.sandbox.map_or("", Sandbox::as_str))
        .bind(application.tags.to_json())
        .bind(application.secrets.to_json())
}

fn decode<K: Kind>(row: &AnyRow) -> Result<Application<K>, ApiError> {
    let columns = Columns::new(row, K::NOUN);
    let text = |column: &str| columns.text(column);
    let uuid = |column: &str| columns.uuid(column);
    let corrupt = |column: &str, value: &str| columns.corrupt(column, value);
    let small = |column: &str| -> Result<u32, ApiError> {
        let value: i64 = row.try_get(column)?;
        u32::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
    };
    let environment = text("environment_variables")?;
    let timeout_ms: i64 = row.try_get("timeout_ms")?;
    let redeploy_due: i64 = row.try_get("redeploy_due")?;
    let own = K::COLUMNS
        .iter()
        .map(|column| text(column))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Application {
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
        memory_limit: small("memory_limit")?,
        timeout_ms: u64::try_from(timeout_ms).map_err(|_| corrupt("timeout_ms", &timeout_ms.to_string()))?,
        privacy: columns.parsed("privacy", Privacy::parse)?,
        sandbox: columns.parsed("sandbox", Sandbox::parse)?,
        endpoint: text("endpoint")?,
        status: columns.parsed("status", ApplicationStatus::parse)?,
        error_message: text("error_message")?,
        redeploy_due: redeploy_due != 0,
        tags: Tags::from_json(&text("tags")?).map_err(|error| corrupt("tags", &error))?,
        secrets: SecretVariables::from_json(&text("secrets")?).map_err(|error| corrupt("secrets", &error))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        ready_at: row.try_get("ready_at")?,
        kind: K::from_values(own),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuage_proto::applications::v1 as wire;
    use nuage_proto::runner::v1 as runner;

    /// A kind stored in the functions table, as a function would be.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Stored {
        runtime: String,
        handler: String,
    }

    impl Kind for Stored {
        const NOUN: &'static str = "function";
        const TABLE: &'static str = "functions";
        const COLUMNS: &'static [&'static str] = &["runtime", "handler"];
        const CHANGEABLE: &'static [&'static str] = &["handler"];
        const RUNNER_KIND: runner::Kind = runner::Kind::Function;
        const START_FAILED: &'static str = "did not start";

        fn values(&self) -> Vec<String> {
            vec![self.runtime.clone(), self.handler.clone()]
        }

        fn from_values(values: Vec<String>) -> Self {
            Self {
                runtime: values[0].clone(),
                handler: values[1].clone(),
            }
        }

        fn into_proto(self, message: &mut wire::Application) {
            message.runtime = self.runtime;
        }
    }

    async fn store() -> (ApplicationStore<Stored>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::migrated_in(dir.path()).await.unwrap();
        (ApplicationStore::new(database), dir)
    }

    fn caller() -> Caller {
        Caller {
            organization_id: Uuid::new_v4(),
            project_id: Uuid::new_v4(),
        }
    }

    fn application(owner: &Caller, namespace_id: Uuid, name: &str) -> Application<Stored> {
        Application {
            id: Uuid::new_v4(),
            organization_id: owner.organization_id,
            project_id: owner.project_id,
            region: "fr-par".to_owned(),
            namespace_id,
            name: name.to_owned(),
            description: String::new(),
            environment_variables: [("A".to_owned(), "1".to_owned())].into(),
            min_scale: 0,
            max_scale: 5,
            memory_limit: 256,
            timeout_ms: 1000,
            privacy: Privacy::Public,
            sandbox: Some(Sandbox::V2),
            endpoint: format!("http://x/{name}"),
            status: ApplicationStatus::Created,
            error_message: String::new(),
            redeploy_due: false,
            tags: Tags::parse("tags", vec!["blue".to_owned()]).unwrap(),
            secrets: SecretVariables::default(),
            created_at: 1,
            updated_at: 1,
            ready_at: 0,
            kind: Stored {
                runtime: "node22".to_owned(),
                handler: "handler.handle".to_owned(),
            },
        }
    }

    #[tokio::test]
    async fn the_kinds_own_columns_round_trip_and_only_changeable_ones_change() {
        let (store, _dir) = store().await;
        let alice = caller();
        let stored = application(&alice, Uuid::new_v4(), "hello");
        store.insert(&stored).await.unwrap();
        assert_eq!(store.get(&alice, "fr-par", stored.id).await.unwrap(), stored);
        let mut next = stored.clone();
        next.kind.handler = "other.handle".to_owned();
        next.kind.runtime = "python313".to_owned();
        next.updated_at = 2;
        let updated = store.update(&next, stored.updated_at).await.unwrap().unwrap();
        assert_eq!(updated.kind.handler, "other.handle");
        assert_eq!(updated.kind.runtime, "node22", "the runtime is not changeable");
        // Written since it was read: the update does nothing.
        assert!(store.update(&next, stored.updated_at).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn names_are_unique_per_namespace_and_tenants_see_only_their_own() {
        let (store, _dir) = store().await;
        let (alice, bob) = (caller(), caller());
        let namespace_id = Uuid::new_v4();
        let first = application(&alice, namespace_id, "hello");
        store.insert(&first).await.unwrap();
        let taken = store
            .insert(&application(&alice, namespace_id, "hello"))
            .await
            .unwrap_err();
        assert_eq!(taken.code, nuage_core::ErrorCode::AlreadyExists);
        assert_eq!(taken.resource_id.as_deref(), Some(first.id.to_string().as_str()));
        store
            .insert(&application(&alice, Uuid::new_v4(), "hello"))
            .await
            .unwrap();
        let bobs = application(&bob, Uuid::new_v4(), "hello");
        store.insert(&bobs).await.unwrap();
        let missing = store.get(&bob, "fr-par", first.id).await.unwrap_err();
        assert_eq!(missing.code, nuage_core::ErrorCode::NotFound);
        assert!(store.mark_deleting(&bob, "fr-par", first.id).await.is_err());
        let filter = ListFilter {
            namespace_id: Some(namespace_id),
            name: None,
        };
        let (page, total) = store
            .list(&alice, "fr-par", &filter, 0, Page::new(1, 10).unwrap())
            .await
            .unwrap();
        assert_eq!((page.len(), total), (1, 1));
        let (page, total) = store
            .list(&alice, "fr-par", &ListFilter::default(), 0, Page::new(1, 10).unwrap())
            .await
            .unwrap();
        assert_eq!((page.len(), total), (2, 2));
        assert!(
            page.iter()
                .all(|application| application.organization_id == alice.organization_id)
        );
    }
}
