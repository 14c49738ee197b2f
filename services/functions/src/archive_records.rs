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

    /// Records that an upload URL valid until `valid_until` (Unix microseconds) was issued for
    /// `function_id`: it may have an archive.
    pub async fn archive_requested(&self, function_id: Uuid, valid_until: i64) -> Result<(), ApiError> {
        sqlx::query(
            "insert into function_archives (function_id, requested_at, urls_valid_until) values ($1, $2, $3) \
             on conflict (function_id) do update set urls_valid_until = case \
             when excluded.urls_valid_until > function_archives.urls_valid_until then excluded.urls_valid_until \
             else function_archives.urls_valid_until end",
        )
        .bind(function_id.to_string())
        .bind(now_micros())
        .bind(valid_until)
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

    /// Ends the record of a function being deleted, whose archive is gone: at once when every
    /// upload URL issued for it has expired; else it is kept, marked deleted, for
    /// [`Self::deleted`] until they have.
    pub async fn remove_for(&self, function_id: Uuid) -> Result<(), ApiError> {
        let now = now_micros();
        sqlx::query("update function_archives set deleted_at = $1 where function_id = $2 and urls_valid_until > $1")
            .bind(now)
            .bind(function_id.to_string())
            .execute(self.database.pool())
            .await?;
        sqlx::query("delete from function_archives where function_id = $1 and urls_valid_until <= $2")
            .bind(function_id.to_string())
            .bind(now)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Returns up to `limit` deleted functions an upload URL may still write an archive for,
    /// those swept longest ago first, and whether that URL has expired by now (so that the
    /// archive, once removed again, stays removed and the record can go).
    pub async fn deleted(&self, limit: i64) -> Result<Vec<(Uuid, bool)>, ApiError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select function_id, urls_valid_until from function_archives where deleted_at is not null \
             order by swept_at, deleted_at limit $1",
        )
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        let now = now_micros();
        Ok(rows
            .into_iter()
            .filter_map(|(id, valid_until)| Some((Uuid::parse_str(&id).ok()?, valid_until <= now)))
            .collect())
    }

    /// Records that deleted function `function_id`'s archive was removed again now.
    pub async fn swept(&self, function_id: Uuid) -> Result<(), ApiError> {
        sqlx::query("update function_archives set swept_at = $1 where function_id = $2")
            .bind(now_micros())
            .bind(function_id.to_string())
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Forgets deleted function `function_id`, whose last upload URL has expired.
    pub async fn forget(&self, function_id: Uuid) -> Result<(), ApiError> {
        self.database
            .delete_where("function_archives", "function_id", &function_id.to_string())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deleted_functions_are_swept_in_turn_until_their_urls_expire() {
        let dir = tempfile::tempdir().unwrap();
        let records = ArchiveRecords::new(Database::migrated_in(dir.path()).await.unwrap());
        let (first, second, expired) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let later = now_micros() + 3_600_000_000;
        for id in [first, second] {
            records.archive_requested(id, later).await.unwrap();
            records.remove_for(id).await.unwrap();
        }
        // A function whose URLs have all expired is forgotten with its delete.
        records.archive_requested(expired, now_micros() - 1).await.unwrap();
        records.remove_for(expired).await.unwrap();
        assert!(!records.may_have_archive(expired).await.unwrap());

        // One at a time: the one swept longest ago comes next, so none waits behind the others.
        let mut seen = Vec::new();
        for _ in 0..2 {
            let [(id, expired)] = records.deleted(1).await.unwrap()[..] else {
                panic!("one deleted function at a time")
            };
            assert!(!expired);
            records.swept(id).await.unwrap();
            seen.push(id);
        }
        seen.sort();
        let mut expected = vec![first, second];
        expected.sort();
        assert_eq!(seen, expected);
    }
}
