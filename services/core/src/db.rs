//! The database pool, one code path for SQLite (the embedded default) and PostgreSQL.
//!
//! Queries use `$1`-style placeholders and portable SQL (`text`, `bigint`), which both engines
//! accept, through sqlx's `Any` driver. Migrations live in the workspace's `migrations/`.

use crate::pagination::Page;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::str::FromStr;
use std::time::Duration;

/// The forward-only migrations of every service, applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// One page of a list of a tenant's rows: which table, whose rows (the caller's in a region:
/// `organization_id` and `region` are `$1` and `$2`), which of them and in what order. The
/// condition's placeholders `$3..$n` take `parameters`, all text.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery<'a> {
    /// The table.
    pub table: &'a str,
    /// The columns to select, comma-separated.
    pub columns: &'a str,
    /// Whose rows.
    pub caller: &'a crate::Caller,
    /// In which region.
    pub region: &'a str,
    /// What the caller's rows in the region must also hold: a `where` condition.
    pub condition: &'a str,
    /// Its parameters.
    pub parameters: &'a [&'a str],
    /// The `order by` clause; it must break ties, so that pages never overlap.
    pub order: &'a str,
}

impl PageQuery<'_> {
    /// Returns the `order by` of a list in creation order, newest or oldest first, ties broken
    /// by id.
    pub const fn creation_order(newest_first: bool) -> &'static str {
        if newest_first {
            "created_at desc, id desc"
        } else {
            "created_at asc, id asc"
        }
    }
}

/// A table of rows that tenants own, as its store reads one of them: which table, the columns
/// a read selects, how a row decodes, and what a caller is told of a row it has not (another
/// tenant's is as missing as one that does not exist).
pub struct OwnedTable<'a, T, E> {
    /// The table.
    pub table: &'a str,
    /// The columns to select, comma-separated.
    pub columns: &'a str,
    /// Reads a row.
    pub decode: fn(&AnyRow) -> Result<T, E>,
    /// Returns the error for a row `id` the caller has not.
    pub not_found: fn(uuid::Uuid) -> E,
}

/// The condition that keeps a statement to one row of one tenant in one region (its first
/// three parameters, which [`owned`] binds).
const OWNED: &str = "organization_id = $1 and region = $2 and id = $3";

/// Returns `statement` (whose condition is [`OWNED`]) bound to `caller`'s row `id` in
/// `region`; what it binds next is `$4`.
fn owned<'q>(
    statement: &'q str,
    caller: &crate::Caller,
    region: &'q str,
    id: uuid::Uuid,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(statement)
        .bind(caller.organization_id.to_string())
        .bind(region)
        .bind(id.to_string())
}

/// Which engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite, in a file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection pool and the engine behind it.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    engine: Engine,
}

/// How long a call waits for a connection or a statement when the caller names no deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Connections per pool: two per core of this host, at least four. More only queue inside the
/// database and add context switches: on a 2-core host, 16 PostgreSQL connections served
/// 3,800 GETs per second where 4 served 5,600 (bench/api.sh).
fn pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
    u32::try_from(cores * 2).unwrap_or(u32::MAX).max(4)
}

impl Database {
    /// Returns the rows of one page of `query` and the count of all matches. One round trip:
    /// the window count rides along with the page; only a page past the end (no rows to carry
    /// it) needs a separate count.
    pub async fn page(&self, query: PageQuery<'_>, page: Page) -> Result<(Vec<AnyRow>, u64), sqlx::Error> {
        let organization_id = query.caller.organization_id.to_string();
        let mut parameters = vec![organization_id.as_str(), query.region];
        parameters.extend_from_slice(query.parameters);
        let condition = format!("organization_id = $1 and region = $2 and ({})", query.condition);
        let next = parameters.len() + 1;
        let sql = format!(
            "select {}, count(*) over () as total from {} where {condition} order by {} limit ${next} offset ${}",
            query.columns,
            query.table,
            query.order,
            next + 1
        );
        let mut select = sqlx::query(&sql);
        for parameter in &parameters {
            select = select.bind(*parameter);
        }
        let rows = select
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = match rows.first() {
            Some(row) => row.try_get("total")?,
            None if page.offset() == 0 => 0,
            None => {
                let sql = format!("select count(*) as n from {} where {condition}", query.table);
                let mut count = sqlx::query(&sql);
                for parameter in &parameters {
                    count = count.bind(*parameter);
                }
                count.fetch_one(&self.pool).await?.try_get("n")?
            }
        };
        Ok((rows, u64::try_from(total).unwrap_or_default()))
    }

    /// Returns one page of `query`, each row read by `decode`, and the count of all matches.
    pub async fn page_of<T, E: From<sqlx::Error>>(
        &self,
        query: PageQuery<'_>,
        page: Page,
        decode: impl Fn(&AnyRow) -> Result<T, E>,
    ) -> Result<(Vec<T>, u64), E> {
        let (rows, total) = self.page(query, page).await?;
        let items = rows.iter().map(decode).collect::<Result<_, _>>()?;
        Ok((items, total))
    }

    /// Sets `assignments` (which mark it `deleting`) on the row `id` of `table` that belongs to
    /// `caller` in `region`, and returns it decoded; the table's not-found error if there is no
    /// such row. Marking twice is not an error. The answer comes from the write itself: once
    /// `deleting`, a reconciler may remove the row at any moment, so a re-read could miss it.
    pub async fn mark_deleting<T, E: From<sqlx::Error>>(
        &self,
        table: &OwnedTable<'_, T, E>,
        assignments: &str,
        caller: &crate::Caller,
        region: &str,
        id: uuid::Uuid,
    ) -> Result<T, E> {
        let statement = format!(
            "update {} set {assignments}, updated_at = $4 where {OWNED} returning {}",
            table.table, table.columns
        );
        let row = owned(&statement, caller, region, id)
            .bind(crate::clock::now_micros())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| (table.not_found)(id))?;
        (table.decode)(&row)
    }

    /// The cascade from a deleted parent, with the ids as its request gives them: sets
    /// `assignments` (which mark them `deleting`) on every row of `table` of organization
    /// `organization_id` whose `parent_column` is `parent_id` and that is not `deleting` yet;
    /// returns how many of those rows still exist. What hangs off a deleted parent goes with it
    /// so: the crons and triggers of an application (`application_id`), the functions and
    /// containers of a namespace (`namespace_id`). An id that is not a UUID is refused, naming
    /// `organization_id` or `parent_column`, before anything is written.
    pub async fn mark_children_deleting(
        &self,
        table: &str,
        assignments: &str,
        parent_column: &str,
        organization_id: &str,
        parent_id: &str,
    ) -> Result<u64, crate::ApiError> {
        let organization_id = crate::ids::parse_id("organization_id", organization_id)?;
        let parent_id = crate::ids::parse_id(parent_column, parent_id)?;
        sqlx::query(&format!(
            "update {table} set {assignments}, updated_at = $1 \
             where organization_id = $2 and {parent_column} = $3 and status <> 'deleting'"
        ))
        .bind(crate::clock::now_micros())
        .bind(organization_id.to_string())
        .bind(parent_id.to_string())
        .execute(&self.pool)
        .await?;
        let remaining: i64 = sqlx::query_scalar(&format!(
            "select count(*) from {table} where organization_id = $1 and {parent_column} = $2"
        ))
        .bind(organization_id.to_string())
        .bind(parent_id.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(remaining).unwrap_or_default())
    }

    /// Removes the row `id` of `table` if it is `deleting` (what a reconciler does once nothing
    /// hangs off it any more); returns whether it did.
    pub async fn remove_deleted(&self, table: &str, id: uuid::Uuid) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(&format!("delete from {table} where id = $1 and status = 'deleting'"))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes the rows of `table` whose `column` is `value` (what belongs to something gone,
    /// or one row by its id); returns how many it deleted.
    pub async fn delete_where(&self, table: &str, column: &str, value: &str) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query(&format!("delete from {table} where {column} = $1"))
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    /// Returns the row `id` of `table` that belongs to `caller` in `region`, decoded; the
    /// table's not-found error if there is none (another tenant's is as missing as one that
    /// does not exist).
    pub async fn owned<T, E: From<sqlx::Error>>(
        &self,
        table: &OwnedTable<'_, T, E>,
        caller: &crate::Caller,
        region: &str,
        id: uuid::Uuid,
    ) -> Result<T, E> {
        let statement = format!("select {} from {} where {OWNED}", table.columns, table.table);
        let row = owned(&statement, caller, region, id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| (table.not_found)(id))?;
        (table.decode)(&row)
    }

    /// Returns the rows of `table` (its `columns`) changed at or after `since` (Unix
    /// microseconds, `updated_at`), in any state; with `since` 0, every row `live` (a SQL
    /// condition) holds for. What follows a table ([`crate::follow`]) reads with it.
    pub async fn changed_since(
        &self,
        table: &str,
        columns: &str,
        live: &str,
        since: i64,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        if since == 0 {
            sqlx::query(&format!("select {columns} from {table} where {live}"))
                .fetch_all(&self.pool)
                .await
        } else {
            sqlx::query(&format!("select {columns} from {table} where updated_at >= $1"))
                .bind(since)
                .fetch_all(&self.pool)
                .await
        }
    }

    /// Returns a pool connected to `url` (`sqlite://path` or `postgres://...`) whose calls
    /// wait at most [`DEFAULT_DEADLINE`].
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Self::connect_with_deadline(url, DEFAULT_DEADLINE).await
    }

    /// Returns a pool connected to `url` whose calls wait at most `deadline` for a connection,
    /// and, on PostgreSQL, at most `deadline` for a statement (`statement_timeout`): a database
    /// that stops answering fails the request rather than holding it.
    pub async fn connect_with_deadline(url: &str, deadline: Duration) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            return Err(sqlx::Error::Configuration(
                format!(
                    "unsupported database url `{}`: use sqlite:// or postgres://",
                    redact_url(url)
                )
                .into(),
            ));
        };
        let url = match engine {
            // Create the file on first start.
            Engine::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(pool_size())
            .min_connections(1)
            .acquire_timeout(deadline)
            .after_connect(move |connection, _meta| {
                Box::pin(async move {
                    if engine == Engine::Postgres {
                        let statement = format!("set statement_timeout = {}", deadline.as_millis().max(1));
                        connection.execute(statement.as_str()).await?;
                    }
                    if engine == Engine::Sqlite {
                        // WAL lets readers run beside a writer (the admin CLI writes while a
                        // server runs); busy_timeout makes writers queue instead of failing.
                        connection
                            .execute(
                                "pragma journal_mode = wal; pragma synchronous = normal; \
                                 pragma busy_timeout = 10000; pragma foreign_keys = on;",
                            )
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, engine })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// Returns the SQLite database of the file `nuage.db` in `dir`, created and migrated if
    /// need be: what a store's tests open, in a fresh directory each.
    pub async fn migrated_in(dir: &std::path::Path) -> Result<Self, sqlx::migrate::MigrateError> {
        let database = Self::connect(&format!("sqlite://{}/nuage.db", dir.display())).await?;
        database.migrate().await?;
        Ok(database)
    }

    /// Returns whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("select 1").execute(&self.pool).await.is_ok()
    }

    /// Returns the pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Returns the engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Returns whether a sqlx error is a unique-constraint violation (on either engine).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Returns `url` with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &credentials[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Reads the columns of a row of a table whose rows are `noun`s (`cron`, `trigger`): a stored
/// value that does not parse makes the row corrupt, an internal error naming the column.
#[derive(Clone, Copy)]
pub struct Columns<'a> {
    row: &'a AnyRow,
    noun: &'a str,
}

impl<'a> Columns<'a> {
    /// Returns a reader of `row`, a `noun`'s.
    pub fn new(row: &'a AnyRow, noun: &'a str) -> Self {
        Self { row, noun }
    }

    /// Returns the text of `column`.
    pub fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.row.try_get(column)
    }

    /// Returns the id stored as text in `column`.
    pub fn uuid(&self, column: &str) -> Result<uuid::Uuid, crate::ApiError> {
        let value = self.text(column)?;
        uuid::Uuid::try_parse(&value).map_err(|_| self.corrupt(column, &value))
    }

    /// Returns the value of `column` that `parse` reads from its text (a status, a setting by
    /// its stored name); text that `parse` refuses makes the row corrupt.
    pub fn parsed<T>(&self, column: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, crate::ApiError> {
        let value = self.text(column)?;
        parse(&value).ok_or_else(|| self.corrupt(column, &value))
    }

    /// Returns the error for `value`, stored in `column`, that does not parse.
    pub fn corrupt(&self, column: &str, value: &str) -> crate::ApiError {
        crate::ApiError::internal(&format_args!("corrupt {} row: bad {column} `{value}`", self.noun))
    }
}

impl From<sqlx::Error> for crate::ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(&format_args!("database: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[tokio::test]
    async fn a_list_filter_never_reaches_past_its_callers_rows() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::migrated_in(dir.path()).await.unwrap();
        sqlx::query("create table things (id text, organization_id text, region text, name text)")
            .execute(database.pool())
            .await
            .unwrap();
        let mine = crate::Caller {
            organization_id: uuid::Uuid::new_v4(),
            project_id: uuid::Uuid::new_v4(),
        };
        let theirs = uuid::Uuid::new_v4().to_string();
        let own = mine.organization_id.to_string();
        for (id, organization_id, region) in [("a", &own, "fr-par"), ("b", &theirs, "fr-par"), ("c", &own, "nl-ams")] {
            sqlx::query("insert into things values ($1, $2, $3, 'thing')")
                .bind(id)
                .bind(organization_id)
                .bind(region)
                .execute(database.pool())
                .await
                .unwrap();
        }
        // A filter with an `or` that holds for every row: still only the caller's, in its region.
        let query = PageQuery {
            table: "things",
            columns: "id",
            caller: &mine,
            region: "fr-par",
            condition: "name = $3 or 1 = 1",
            parameters: &["thing"],
            order: "id asc",
        };
        let (rows, total) = database.page(query, Page::new(1, 10).unwrap()).await.unwrap();
        let ids: Vec<String> = rows.iter().map(|row| row.try_get("id").unwrap()).collect();
        assert_eq!((ids, total), (vec!["a".to_owned()], 1));
        // Past the end, the count is asked for on its own, scoped the same.
        let (rows, total) = database.page(query, Page::new(2, 1).unwrap()).await.unwrap();
        assert_eq!((rows.len(), total), (0, 1));
    }

    #[tokio::test]
    async fn sqlite_database_is_created_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::migrated_in(dir.path()).await.unwrap();
        database.migrate().await.unwrap();
        assert!(database.ping().await);
        assert_eq!(database.engine(), Engine::Sqlite);
    }
}
