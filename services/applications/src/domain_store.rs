//! All SQL of custom domains: the `domains` table, one for both kinds (its `kind` column says
//! whose), so that its unique index keeps a host name on one ready application across every
//! tenant (a pending or failed domain holds its name from no other tenant).
//! Every tenant-facing query filters by organization, region and kind.

use crate::domain_model::{Domain, DomainFilter, DomainStatus, Hostname, domain_order_sql};
use nuage_core::clock::now_micros;
use nuage_core::db::{Columns, PageQuery, is_unique_violation};
use nuage_core::validate::Tags;
use nuage_core::{ApiError, Caller, Database, Page};
use sqlx::Any;
use sqlx::Row;
use sqlx::any::{AnyArguments, AnyRow};
use uuid::Uuid;

/// A statement whose parameters are being bound.
type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

const COLUMNS: &str =
    "id, organization_id, region, application_id, hostname, status, url, error_message, created_at, updated_at, tags";

/// The condition that keeps a statement to one domain of one tenant in one region and of one
/// kind (its first four parameters).
const OWNED: &str = "organization_id = $1 and region = $2 and kind = $3 and id = $4";

/// The domains of one kind of application (`kind` is its noun: `function`, `container`).
#[derive(Debug, Clone)]
pub struct DomainStore {
    database: Database,
    kind: &'static str,
    /// The kind's table (`functions`, `containers`).
    table: &'static str,
}

/// Returns the error for a domain that is missing, or another tenant's: Scaleway's message.
pub fn domain_not_found(id: impl Into<String>) -> ApiError {
    ApiError {
        message: "Domain was not found".to_owned(),
        ..ApiError::not_found("domain", id)
    }
}

impl DomainStore {
    /// Returns the store of `kind`'s domains in `database`, whose applications are in `table`.
    pub fn new(database: Database, kind: &'static str, table: &'static str) -> Self {
        Self { database, kind, table }
    }

    /// Stores a new domain, if its application has fewer than `limit` (else returns how many
    /// it has); its host name must be no ready domain's and none of the caller's. Concurrent
    /// creations for one application are serialized, so that the limit holds.
    pub async fn insert(&self, domain: &Domain, limit: u64) -> Result<Result<(), u64>, ApiError> {
        let application_id = domain.application_id.to_string();
        let mut transaction = self.database.pool().begin().await?;
        // A write to the application's row: PostgreSQL locks the row, SQLite the database,
        // until the commit, so the count below sees every domain made before this one.
        sqlx::query(&format!(
            "update {} set updated_at = updated_at where id = $1",
            self.table
        ))
        .bind(&application_id)
        .execute(&mut *transaction)
        .await?;
        let count: i64 = sqlx::query_scalar("select count(*) from domains where application_id = $1")
            .bind(&application_id)
            .fetch_one(&mut *transaction)
            .await?;
        let count = u64::try_from(count).unwrap_or_default();
        if count >= limit {
            return Ok(Err(count));
        }
        let served: i64 = sqlx::query_scalar("select count(*) from domains where hostname = $1 and status = 'ready'")
            .bind(domain.hostname.as_str())
            .fetch_one(&mut *transaction)
            .await?;
        if served > 0 {
            return Err(taken(domain.hostname.as_str()));
        }
        let inserted = sqlx::query(&format!(
            "insert into domains ({COLUMNS}, kind) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(domain.id.to_string())
        .bind(domain.organization_id.to_string())
        .bind(&domain.region)
        .bind(domain.application_id.to_string())
        .bind(domain.hostname.as_str())
        .bind(domain.status.as_str())
        .bind(&domain.url)
        .bind(&domain.error_message)
        .bind(domain.created_at)
        .bind(domain.updated_at)
        .bind(domain.tags.to_json())
        .bind(self.kind)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {
                transaction.commit().await?;
                Ok(Ok(()))
            }
            // The caller's own, for this application or another.
            Err(error) if is_unique_violation(&error) => Err(taken(domain.hostname.as_str())),
            Err(error) => Err(error.into()),
        }
    }

    /// Returns one domain of the caller in `region`.
    pub async fn get(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Domain, ApiError> {
        let statement = format!("select {COLUMNS} from domains where {OWNED}");
        self.owned(&statement, caller, region, id, |query| query).await
    }

    /// Returns one page of the caller's domains in `region` that `filter` keeps, and the
    /// count of all of them.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        filter: &DomainFilter,
        order: i32,
        page: Page,
    ) -> Result<(Vec<Domain>, u64), ApiError> {
        let mut condition = "kind = $3".to_owned();
        let mut values = Vec::new();
        if let Some(id) = filter.application_id {
            values.push(id.to_string());
            condition.push_str(&format!(" and application_id = ${}", values.len() + 3));
        }
        for (column, id) in [("namespace_id", filter.namespace_id), ("project_id", filter.project_id)] {
            if let Some(id) = id {
                values.push(id.to_string());
                condition.push_str(&format!(
                    " and application_id in (select id from {} where {column} = ${})",
                    self.table,
                    values.len() + 3
                ));
            }
        }
        let mut parameters: Vec<&str> = vec![self.kind];
        parameters.extend(values.iter().map(String::as_str));
        let query = PageQuery {
            table: "domains",
            columns: COLUMNS,
            caller,
            region,
            condition: &condition,
            parameters: &parameters,
            order: domain_order_sql(order),
        };
        self.database.page_of(query, page, decode).await
    }

    /// Replaces the tags of one domain of the caller; returns it as it is now.
    pub async fn set_tags(&self, caller: &Caller, region: &str, id: Uuid, tags: &Tags) -> Result<Domain, ApiError> {
        let statement = format!("update domains set tags = $5, updated_at = $6 where {OWNED} returning {COLUMNS}");
        let tags = tags.to_json();
        self.owned(&statement, caller, region, id, |query| {
            query.bind(tags).bind(now_micros())
        })
        .await
    }

    /// Removes one domain of the caller and returns it as it was.
    pub async fn remove(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Domain, ApiError> {
        let statement = format!("delete from domains where {OWNED} returning {COLUMNS}");
        self.owned(&statement, caller, region, id, |query| query).await
    }

    /// Returns the one domain `statement` returns for the caller's domain `id` in `region`, of
    /// this kind: its condition is [`OWNED`] (`$1` to `$4`), and `more` binds what follows (from
    /// `$5`). Another tenant's domain is a missing one.
    async fn owned<'q>(
        &self,
        statement: &'q str,
        caller: &Caller,
        region: &'q str,
        id: Uuid,
        more: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> Result<Domain, ApiError> {
        let query = sqlx::query(statement)
            .bind(caller.organization_id.to_string())
            .bind(region)
            .bind(self.kind)
            .bind(id.to_string());
        let row = more(query)
            .fetch_optional(self.database.pool())
            .await?
            .ok_or_else(|| domain_not_found(id.to_string()))?;
        decode(&row)
    }

    /// Removes every domain of application `application_id` (deleted, or being deleted).
    pub async fn remove_for(&self, application_id: Uuid) -> Result<(), ApiError> {
        self.database
            .delete_where("domains", "application_id", &application_id.to_string())
            .await?;
        Ok(())
    }

    /// Returns up to `limit` domains of this kind waiting for their check, least recently
    /// checked first.
    pub async fn pending(&self, limit: i64) -> Result<Vec<Domain>, ApiError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from domains where kind = $1 and status = 'pending' order by updated_at asc limit $2"
        ))
        .bind(self.kind)
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Returns up to `limit` ready domains of this kind last checked before `checked_before`
    /// (Unix microseconds), least recently checked first.
    pub async fn stale(&self, checked_before: i64, limit: i64) -> Result<Vec<Domain>, ApiError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from domains where kind = $1 and status = 'ready' and checked_at < $2 \
             order by checked_at asc limit $3"
        ))
        .bind(self.kind)
        .bind(checked_before)
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Records that ready domain `id` passed its check again now, or puts it in `error` with
    /// `reason` (routers stop routing it). Returns false when it is no longer ready.
    pub async fn rechecked(&self, id: Uuid, failure: Option<&str>) -> Result<bool, ApiError> {
        let now = now_micros();
        let result = match failure {
            None => {
                sqlx::query("update domains set checked_at = $1 where id = $2 and status = 'ready'")
                    .bind(now)
                    .bind(id.to_string())
                    .execute(self.database.pool())
                    .await?
            }
            Some(reason) => {
                sqlx::query(
                    "update domains set status = 'error', url = '', error_message = $1, checked_at = $2, \
                     updated_at = $2 where id = $3 and status = 'ready'",
                )
                .bind(reason)
                .bind(now)
                .bind(id.to_string())
                .execute(self.database.pool())
                .await?
            }
        };
        Ok(result.rows_affected() == 1)
    }

    /// Ends the check of a `pending` domain: `ready` at `url`, or `error` with a message; a
    /// domain still `pending` (`None`) is only marked as checked now. Returns false when it is
    /// no longer pending (removed, or settled by another replica).
    /// A domain that passed its check while another application's domain of the same host
    /// name became ready first goes to `error` saying so.
    pub async fn settle(&self, id: Uuid, outcome: Option<(DomainStatus, &str, &str)>) -> Result<bool, ApiError> {
        match self.settle_as(id, outcome).await {
            Err(error) if is_unique_violation(&error) => {
                let message = "the host name became the domain of another function or container first; a host name \
                               leads to one at a time";
                Ok(self.settle_as(id, Some((DomainStatus::Error, "", message))).await?)
            }
            settled => Ok(settled?),
        }
    }

    async fn settle_as(&self, id: Uuid, outcome: Option<(DomainStatus, &str, &str)>) -> Result<bool, sqlx::Error> {
        let (status, url, error_message) = outcome.unwrap_or((DomainStatus::Pending, "", ""));
        let result = sqlx::query(
            "update domains set status = $1, url = $2, error_message = $3, updated_at = $4, checked_at = $4 \
             where id = $5 and status = 'pending'",
        )
        .bind(status.as_str())
        .bind(url)
        .bind(error_message)
        .bind(now_micros())
        .bind(id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Returns the host name and application of every ready domain of this kind, for routers.
    pub async fn ready(&self) -> Result<Vec<(String, String)>, ApiError> {
        let rows = sqlx::query("select hostname, application_id from domains where kind = $1 and status = 'ready'")
            .bind(self.kind)
            .fetch_all(self.database.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("hostname")?, row.try_get("application_id")?)))
            .collect()
    }
}

/// The error for a host name that is taken: by a ready domain, or by another of the caller's.
/// Whose it is stays unsaid: it may be another tenant's.
fn taken(hostname: &str) -> ApiError {
    ApiError::already_exists(
        "domain",
        "",
        format!("`{hostname}` is already the domain of a function or container; a host name leads to one at a time"),
    )
}

fn decode(row: &AnyRow) -> Result<Domain, ApiError> {
    let columns = Columns::new(row, "domain");
    let text = |column: &str| columns.text(column);
    let uuid = |column: &str| columns.uuid(column);
    Ok(Domain {
        id: uuid("id")?,
        organization_id: uuid("organization_id")?,
        region: text("region")?,
        application_id: uuid("application_id")?,
        hostname: Hostname::stored(text("hostname")?),
        status: columns.parsed("status", DomainStatus::parse)?,
        url: text("url")?,
        error_message: text("error_message")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        tags: Tags::from_json(&text("tags")?).map_err(|error| ApiError::internal(&error))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuage_core::validate::Tags;

    fn pending(organization_id: Uuid, hostname: &str) -> Domain {
        Domain {
            id: Uuid::new_v4(),
            organization_id,
            region: "fr-par".to_owned(),
            application_id: Uuid::new_v4(),
            hostname: Hostname::stored(hostname.to_owned()),
            status: DomainStatus::Pending,
            url: String::new(),
            error_message: String::new(),
            created_at: 1,
            updated_at: 1,
            tags: Tags::default(),
        }
    }

    #[tokio::test]
    async fn a_host_name_is_held_by_its_ready_domain_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = DomainStore::new(
            Database::migrated_in(dir.path()).await.unwrap(),
            "function",
            "functions",
        );
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let caller = |organization_id| Caller {
            organization_id,
            project_id: Uuid::new_v4(),
        };
        // Two tenants name one host name: both wait for their check.
        let (first, second) = (pending(alice, "shop.example"), pending(bob, "shop.example"));
        store.insert(&first, 10).await.unwrap().unwrap();
        store.insert(&second, 10).await.unwrap().unwrap();
        // A tenant names it once.
        let again = store.insert(&pending(alice, "shop.example"), 10).await.unwrap_err();
        assert_eq!(again.code, nuage_core::ErrorCode::AlreadyExists);

        // The first to pass holds it; the other, passing after, ends in error saying why.
        let ready = Some((DomainStatus::Ready, "https://shop.example", ""));
        assert!(store.settle(first.id, ready).await.unwrap());
        assert!(store.settle(second.id, ready).await.unwrap());
        let lost = store.get(&caller(bob), "fr-par", second.id).await.unwrap();
        assert_eq!(lost.status, DomainStatus::Error);
        assert!(
            lost.error_message.contains("another function or container first"),
            "{lost:?}"
        );
        let held = store.get(&caller(alice), "fr-par", first.id).await.unwrap();
        assert_eq!(held.status, DomainStatus::Ready);
        // Ready, it is no other's to name.
        let taken = store
            .insert(&pending(Uuid::new_v4(), "shop.example"), 10)
            .await
            .unwrap_err();
        assert_eq!(taken.code, nuage_core::ErrorCode::AlreadyExists);
    }
}
