//! Which functions may have a source archive (table `function_archives`): those an upload URL
//! was issued for. A function's deployments are the shared history's
//! (`nuage_applications::History`).

use nuage_core::clock::now_micros;
use nuage_core::{ApiError, Database};
use uuid::Uuid;

/// The records of functions that may have an archive.
#[derive(Debug, Clone)]
pub struct ArchiveRecords {
    database: Database,
}

impl ArchiveRecords {
    /// Returns the records in `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Records that an upload URL was issued for `function_id`: it may have an archive.
    pub async fn archive_requested(&self, function_id: Uuid) -> Result<(), ApiError> {
        sqlx::query(
            "insert into function_archives (function_id, requested_at) values ($1, $2) \
             on conflict (function_id) do nothing",
        )
        .bind(function_id.to_string())
        .bind(now_micros())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns whether `function_id` may have an archive (an upload URL was issued for it).
    pub async fn may_have_archive(&self, function_id: Uuid) -> Result<bool, ApiError> {
        let found: Option<String> =
            sqlx::query_scalar("select function_id from function_archives where function_id = $1")
                .bind(function_id.to_string())
                .fetch_optional(self.database.pool())
                .await?;
        Ok(found.is_some())
    }

    /// Removes the record of a function being deleted.
    pub async fn remove_for(&self, function_id: Uuid) -> Result<(), ApiError> {
        self.database
            .delete_where("function_archives", "function_id", &function_id.to_string())
            .await?;
        Ok(())
    }
}
