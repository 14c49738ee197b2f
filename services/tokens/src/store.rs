//! The SQL of tenants' tokens (`tokens`). Tenant-facing queries filter by organization and
//! region, and see live tokens only; a revoked one stays as a row for routers until it expires.

use crate::model::Token;
use nuage_core::clock::now_micros;
use nuage_core::db::{Columns, OwnedTable, PageQuery};
use nuage_core::{ApiError, Caller, Database, Page};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

const COLUMNS: &str = "id, organization_id, region, namespace_id, application_id, description, expires_at, \
                       revoked_at, created_at, updated_at";

/// The tokens table, as a read of one token of a tenant sees it (revoked ones included).
const TOKENS: OwnedTable<'static, Token, ApiError> = OwnedTable {
    table: "tokens",
    columns: COLUMNS,
    decode,
    not_found: |id| ApiError::not_found("token", id.to_string()),
};

/// Which of the caller's tokens a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenFilter {
    /// Only the namespace-scoped tokens of this namespace.
    pub namespace_id: Option<Uuid>,
    /// Only the tokens of this function or container.
    pub application_id: Option<Uuid>,
}

/// Tenants' tokens in the database.
#[derive(Debug, Clone)]
pub struct TokenStore {
    database: Database,
}

impl TokenStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Stores a new token.
    pub async fn insert(&self, token: &Token) -> Result<(), ApiError> {
        sqlx::query(&format!(
            "insert into tokens ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, null, $8, $9)"
        ))
        .bind(token.id.to_string())
        .bind(token.organization_id.to_string())
        .bind(&token.region)
        .bind(token.namespace_id.to_string())
        .bind(token.application_id.map(|id| id.to_string()).unwrap_or_default())
        .bind(&token.description)
        .bind(token.expires_at.unwrap_or(0))
        .bind(token.created_at)
        .bind(token.updated_at)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns one live token of the caller in `region`.
    pub async fn get(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Token, ApiError> {
        let token = self.database.owned(&TOKENS, caller, region, id).await?;
        match token.revoked_at {
            None => Ok(token),
            Some(_) => Err((TOKENS.not_found)(id)),
        }
    }

    /// Returns one page of the caller's live tokens in `region` and the count of all matches.
    pub async fn list(
        &self,
        caller: &Caller,
        region: &str,
        filter: TokenFilter,
        newest_first: bool,
        page: Page,
    ) -> Result<(Vec<Token>, u64), ApiError> {
        let namespace_id = filter.namespace_id.map(|id| id.to_string()).unwrap_or_default();
        let application_id = filter.application_id.map(|id| id.to_string()).unwrap_or_default();
        let query = PageQuery {
            table: "tokens",
            columns: COLUMNS,
            caller,
            region,
            condition: "revoked_at is null and ($3 = '' or (namespace_id = $3 and application_id = '')) \
                        and ($4 = '' or application_id = $4)",
            parameters: &[&namespace_id, &application_id],
            order: PageQuery::creation_order(newest_first),
        };
        self.database.page_of(query, page, decode).await
    }

    /// Revokes a live token of the caller and returns it; a revoked one is not found.
    pub async fn revoke(&self, caller: &Caller, region: &str, id: Uuid) -> Result<Token, ApiError> {
        let now = now_micros();
        let row = sqlx::query(&format!(
            "update tokens set revoked_at = $1, updated_at = $1 \
             where organization_id = $2 and region = $3 and id = $4 and revoked_at is null returning {COLUMNS}"
        ))
        .bind(now)
        .bind(caller.organization_id.to_string())
        .bind(region)
        .bind(id.to_string())
        .fetch_optional(self.database.pool())
        .await?
        .ok_or_else(|| (TOKENS.not_found)(id))?;
        // Revocations of tokens that expired are no longer needed: their `exp` refuses them.
        sqlx::query("delete from tokens where revoked_at is not null and expires_at > 0 and expires_at < $1")
            .bind(now / 1_000_000)
            .execute(self.database.pool())
            .await?;
        decode(&row)
    }

    /// Returns the revoked tokens, revoked at or after `since` (Unix microseconds), that have
    /// not expired: `(jti, expires_at, revoked_at)`.
    pub async fn revoked(&self, since: i64) -> Result<Vec<(String, i64, i64)>, ApiError> {
        let rows = sqlx::query(
            "select id, expires_at, revoked_at from tokens \
             where revoked_at is not null and revoked_at >= $1 and (expires_at = 0 or expires_at >= $2)",
        )
        .bind(since)
        .bind(now_micros() / 1_000_000)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    row.try_get("expires_at")?,
                    row.try_get("revoked_at")?,
                ))
            })
            .collect()
    }

    /// Revokes every live token of application `application_id` (deleted); returns how many.
    /// Their rows stay for routers until they expire, as a deleted token's do.
    pub async fn revoke_application(&self, application_id: &str) -> Result<u64, ApiError> {
        let now = now_micros();
        let done = sqlx::query(
            "update tokens set revoked_at = $1, updated_at = $1 where application_id = $2 and revoked_at is null",
        )
        .bind(now)
        .bind(application_id)
        .execute(self.database.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Forgets every token of a namespace whose key pair is destroyed: none of them can open
    /// anything any more.
    pub async fn delete_namespace(&self, namespace_id: &str) -> Result<(), ApiError> {
        self.database
            .delete_where("tokens", "namespace_id", namespace_id)
            .await?;
        Ok(())
    }
}

fn decode(row: &AnyRow) -> Result<Token, ApiError> {
    let columns = Columns::new(row, "token");
    let text = |column: &str| columns.text(column);
    let uuid = |column: &str| columns.uuid(column);
    let expires_at: i64 = row.try_get("expires_at")?;
    Ok(Token {
        id: uuid("id")?,
        organization_id: uuid("organization_id")?,
        region: text("region")?,
        namespace_id: uuid("namespace_id")?,
        application_id: if text("application_id")?.is_empty() {
            None
        } else {
            Some(uuid("application_id")?)
        },
        description: text("description")?,
        expires_at: (expires_at != 0).then_some(expires_at),
        revoked_at: row.try_get("revoked_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
