//! Deployments: each deploy of a function, its build's result and its image; and which
//! functions may have an archive.

use nuage_core::clock::now_micros;
use nuage_core::{ApiError, Database};
use uuid::Uuid;

/// Deployments in the database.
#[derive(Debug, Clone)]
pub struct DeploymentStore {
    database: Database,
}

/// How a build ended, as the builder reports it.
#[derive(Debug, Clone, Default)]
pub struct BuildResult {
    /// Whether an image was built.
    pub succeeded: bool,
    /// Why not.
    pub error_message: String,
    /// The archive built.
    pub archive_digest: String,
    /// The image.
    pub image_reference: String,
    /// The image's manifest digest.
    pub image_digest: String,
}

impl DeploymentStore {
    /// Returns a store over `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Records a new, queued deployment of `function_id` and returns its id.
    pub async fn insert(&self, function_id: Uuid, organization_id: Uuid) -> Result<Uuid, ApiError> {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into deployments (id, function_id, organization_id, status, error_message, archive_digest, \
             image_reference, image_digest, created_at, finished_at) values ($1, $2, $3, 'queued', '', '', '', '', $4, 0)",
        )
        .bind(id.to_string())
        .bind(function_id.to_string())
        .bind(organization_id.to_string())
        .bind(now_micros())
        .execute(self.database.pool())
        .await?;
        Ok(id)
    }

    /// Records a build's result; returns whether `id` is the function's newest deployment
    /// (an older one's result must not change the function).
    pub async fn finish(&self, id: Uuid, function_id: Uuid, result: &BuildResult) -> Result<bool, ApiError> {
        sqlx::query(
            "update deployments set status = $1, error_message = $2, archive_digest = $3, image_reference = $4, \
             image_digest = $5, finished_at = $6 where id = $7 and function_id = $8",
        )
        .bind(if result.succeeded { "succeeded" } else { "failed" })
        .bind(&result.error_message)
        .bind(&result.archive_digest)
        .bind(&result.image_reference)
        .bind(&result.image_digest)
        .bind(now_micros())
        .bind(id.to_string())
        .bind(function_id.to_string())
        .execute(self.database.pool())
        .await?;
        self.is_newest(id, function_id).await
    }

    /// Returns whether `id` is the newest deployment of `function_id`.
    async fn is_newest(&self, id: Uuid, function_id: Uuid) -> Result<bool, ApiError> {
        let newest: Option<String> = sqlx::query_scalar(
            "select id from deployments where function_id = $1 order by created_at desc, id desc limit 1",
        )
        .bind(function_id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        Ok(newest.as_deref() == Some(id.to_string().as_str()))
    }

    /// Returns the newest deployment of `function_id` if it is still `queued` (no build result)
    /// and older than `age`.
    pub async fn queued_since(&self, function_id: Uuid, age: std::time::Duration) -> Result<Option<Uuid>, ApiError> {
        let newest: Option<(String, String, i64)> = sqlx::query_as(
            "select id, status, created_at from deployments where function_id = $1 \
             order by created_at desc, id desc limit 1",
        )
        .bind(function_id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
        match newest {
            Some((id, status, created_at)) if status == "queued" && now_micros() - created_at > age => {
                Ok(Some(nuage_core::ids::parse_id("deployment_id", &id)?))
            }
            _ => Ok(None),
        }
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

    /// Removes the deployments of a function being deleted, and the record of its archive.
    pub async fn remove_for(&self, function_id: Uuid) -> Result<(), ApiError> {
        for table in ["deployments", "function_archives"] {
            sqlx::query(&format!("delete from {table} where function_id = $1"))
                .bind(function_id.to_string())
                .execute(self.database.pool())
                .await?;
        }
        Ok(())
    }
}
