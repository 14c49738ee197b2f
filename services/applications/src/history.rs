//! Deployment history (table `deployments`): each deploy of a function or container, what it
//! built or pulled, and which one serves. The newest few are kept per application (as many as
//! the builder keeps images of a function, `applications.deployment_history`), and always the
//! one serving, so that a rollback can choose among them.

use crate::model::Kind;
use nuage_core::clock::now_micros;
use nuage_core::{ApiError, Database, Page};
use nuage_proto::applications::v1 as wire;
use sqlx::Row;
use std::marker::PhantomData;
use uuid::Uuid;

/// A deployment's status once its image exists.
pub const SUCCEEDED: &str = "succeeded";

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

/// One deployment of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Its id, the version the runner knows it by.
    pub id: Uuid,
    /// Its application.
    pub application_id: Uuid,
    /// `queued`, `succeeded` or `failed`.
    pub status: String,
    /// Why its build failed.
    pub error_message: String,
    /// The source archive built (functions).
    pub archive_digest: String,
    /// The image it runs.
    pub image_reference: String,
    /// The image's manifest digest, once known.
    pub image_digest: String,
    /// Unix microseconds.
    pub created_at: i64,
    /// When it last became the one serving (Unix microseconds); 0: never.
    pub activated_at: i64,
}

/// Returns `reference` (`[host/]repository[:tag]`) pinned to `digest`, the manifest digest it
/// was built or pinned as: `[host/]repository@digest`, so that whoever can push to the
/// repository (a tenant, into its namespace's) cannot change what runs by retagging. Without
/// a digest, `reference` as it is.
pub fn at_digest(reference: &str, digest: &str) -> String {
    if digest.is_empty() {
        return reference.to_owned();
    }
    let repository = reference.split('@').next().unwrap_or_default();
    // A tag follows the last `/`'s segment; a registry port comes before it.
    let repository = match repository.rsplit_once('/') {
        Some((host_and_path, last)) => match last.split_once(':') {
            Some((name, _)) => format!("{host_and_path}/{name}"),
            None => repository.to_owned(),
        },
        None => repository.split(':').next().unwrap_or_default().to_owned(),
    };
    format!("{repository}@{digest}")
}

impl Deployment {
    /// Returns the image a rollback to it rolls out: pinned to its digest when known, so that
    /// a tag pushed again since (a container's `:latest`) still names this deployment's image.
    pub fn image(&self) -> String {
        at_digest(&self.image_reference, &self.image_digest)
    }

    /// Returns its wire form; `active` says whether it serves.
    pub fn into_proto(self, active: bool) -> wire::Deployment {
        wire::Deployment {
            id: self.id.to_string(),
            application_id: self.application_id.to_string(),
            created_at: self.created_at,
            status: self.status,
            error_message: self.error_message,
            archive_digest: self.archive_digest,
            image_reference: self.image_reference,
            image_digest: self.image_digest,
            active,
        }
    }
}

const COLUMNS: &str = "id, application_id, status, error_message, archive_digest, image_reference, image_digest, \
                       created_at, activated_at";

fn deployment(row: &sqlx::any::AnyRow) -> Result<Deployment, ApiError> {
    Ok(Deployment {
        id: nuage_core::ids::parse_id("deployment_id", &row.try_get::<String, _>("id")?)?,
        application_id: nuage_core::ids::parse_id("application_id", &row.try_get::<String, _>("application_id")?)?,
        status: row.try_get("status")?,
        error_message: row.try_get("error_message")?,
        archive_digest: row.try_get("archive_digest")?,
        image_reference: row.try_get("image_reference")?,
        image_digest: row.try_get("image_digest")?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
    })
}

/// The deployments of applications of kind `K`.
#[derive(Debug)]
pub struct History<K> {
    database: Database,
    /// Deployments kept per application, besides the one serving.
    keep: i64,
    kind: PhantomData<K>,
}

impl<K> Clone for History<K> {
    fn clone(&self) -> Self {
        Self {
            database: self.database.clone(),
            keep: self.keep,
            kind: PhantomData,
        }
    }
}

impl<K: Kind> History<K> {
    /// Returns the history in `database`, keeping the newest `keep` deployments of each
    /// application.
    pub fn new(database: Database, keep: u32) -> Self {
        Self {
            database,
            keep: i64::from(keep.max(1)),
            kind: PhantomData,
        }
    }

    /// Records a new deployment of `application_id` with `status` (`queued` while it builds,
    /// `succeeded` when its image is `image_reference` already), forgets those beyond the
    /// newest kept, and returns its id.
    pub async fn insert(
        &self,
        (application_id, organization_id): (Uuid, Uuid),
        status: &str,
        image_reference: &str,
    ) -> Result<Uuid, ApiError> {
        let id = Uuid::new_v4();
        sqlx::query(
            "insert into deployments (id, application_id, organization_id, kind, status, error_message, \
             archive_digest, image_reference, image_digest, created_at, finished_at, activated_at) \
             values ($1, $2, $3, $4, $5, '', '', $6, '', $7, 0, 0)",
        )
        .bind(id.to_string())
        .bind(application_id.to_string())
        .bind(organization_id.to_string())
        .bind(K::NOUN)
        .bind(status)
        .bind(image_reference)
        .bind(now_micros())
        .execute(self.database.pool())
        .await?;
        self.trim(application_id).await?;
        Ok(id)
    }

    /// Forgets the deployments of `application_id` beyond the newest kept, but for the one
    /// serving.
    async fn trim(&self, application_id: Uuid) -> Result<(), ApiError> {
        let id = application_id.to_string();
        let active = self.active(application_id).await?.map(|id| id.to_string());
        sqlx::query(
            "delete from deployments where application_id = $1 and id <> $2 and id not in \
             (select id from deployments where application_id = $1 order by created_at desc, id desc limit $3)",
        )
        .bind(&id)
        .bind(active.unwrap_or_default())
        .bind(self.keep)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns the id of the deployment of `application_id` that serves, if one ever did.
    async fn active(&self, application_id: Uuid) -> Result<Option<Uuid>, ApiError> {
        let id: Option<String> = sqlx::query_scalar(
            "select id from deployments where application_id = $1 and activated_at > 0 \
             order by activated_at desc, id desc limit 1",
        )
        .bind(application_id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        id.map(|id| nuage_core::ids::parse_id("deployment_id", &id)).transpose()
    }

    /// Records a build's result; returns whether `id` is the application's newest deployment
    /// (an older one's result must not change the application).
    pub async fn finish(&self, id: Uuid, application_id: Uuid, result: &BuildResult) -> Result<bool, ApiError> {
        sqlx::query(
            "update deployments set status = $1, error_message = $2, archive_digest = $3, image_reference = $4, \
             image_digest = $5, finished_at = $6 where id = $7 and application_id = $8",
        )
        .bind(if result.succeeded { SUCCEEDED } else { "failed" })
        .bind(&result.error_message)
        .bind(&result.archive_digest)
        .bind(&result.image_reference)
        .bind(&result.image_digest)
        .bind(now_micros())
        .bind(id.to_string())
        .bind(application_id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(self.newest(application_id).await?.is_some_and(|newest| newest.0 == id))
    }

    /// Returns the newest deployment of `application_id`: its id, status and creation time.
    async fn newest(&self, application_id: Uuid) -> Result<Option<(Uuid, String, i64)>, ApiError> {
        let newest: Option<(String, String, i64)> = sqlx::query_as(
            "select id, status, created_at from deployments where application_id = $1 \
             order by created_at desc, id desc limit 1",
        )
        .bind(application_id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        newest
            .map(|(id, status, created_at)| Ok((nuage_core::ids::parse_id("deployment_id", &id)?, status, created_at)))
            .transpose()
    }

    /// Returns the newest deployment of `application_id` if it is still `queued` (no build
    /// result) and older than `age`.
    pub async fn queued_since(&self, application_id: Uuid, age: std::time::Duration) -> Result<Option<Uuid>, ApiError> {
        let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
        Ok(self
            .newest(application_id)
            .await?
            .filter(|(_, status, created_at)| status == "queued" && now_micros() - created_at > age)
            .map(|(id, _, _)| id))
    }

    /// Records that deployment `version` of `application_id` serves from now on, running
    /// `pinned` (`repository@digest`, whose digest it keeps if it had none). A version that is
    /// no deployment of the history (forgotten meanwhile) changes nothing.
    pub async fn activate(&self, application_id: Uuid, version: &str, pinned: &str) -> Result<(), ApiError> {
        let digest = pinned.rsplit_once('@').map(|(_, digest)| digest).unwrap_or_default();
        sqlx::query(
            "update deployments set activated_at = $1, \
             image_digest = case when image_digest = '' then $2 else image_digest end \
             where id = $3 and application_id = $4",
        )
        .bind(now_micros())
        .bind(digest)
        .bind(version)
        .bind(application_id.to_string())
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns one page of the deployments of `application_id`, newest first, the count of
    /// all, and the id of the one serving.
    pub async fn list(
        &self,
        application_id: Uuid,
        page: Page,
    ) -> Result<(Vec<Deployment>, u64, Option<Uuid>), ApiError> {
        let rows = sqlx::query(&format!(
            "select {COLUMNS} from deployments where application_id = $1 \
             order by created_at desc, id desc limit $2 offset $3"
        ))
        .bind(application_id.to_string())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(self.database.pool())
        .await?;
        let total: i64 = sqlx::query_scalar("select count(*) from deployments where application_id = $1")
            .bind(application_id.to_string())
            .fetch_one(self.database.pool())
            .await?;
        let deployments = rows.iter().map(deployment).collect::<Result<Vec<_>, _>>()?;
        let active = self.active(application_id).await?;
        Ok((deployments, u64::try_from(total).unwrap_or_default(), active))
    }

    /// Returns deployment `id` of `application_id`, if the history has it.
    pub async fn get(&self, application_id: Uuid, id: Uuid) -> Result<Option<Deployment>, ApiError> {
        let row = sqlx::query(&format!(
            "select {COLUMNS} from deployments where application_id = $1 and id = $2"
        ))
        .bind(application_id.to_string())
        .bind(id.to_string())
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(deployment).transpose()
    }

    /// Forgets the deployments of an application being deleted.
    pub async fn remove_for(&self, application_id: Uuid) -> Result<(), ApiError> {
        self.database
            .delete_where("deployments", "application_id", &application_id.to_string())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Deployment;
    use uuid::Uuid;

    fn of(reference: &str, digest: &str) -> Deployment {
        Deployment {
            id: Uuid::nil(),
            application_id: Uuid::nil(),
            status: super::SUCCEEDED.into(),
            error_message: String::new(),
            archive_digest: String::new(),
            image_reference: reference.into(),
            image_digest: digest.into(),
            created_at: 0,
            activated_at: 0,
        }
    }

    #[test]
    fn a_rollback_runs_the_image_pinned_to_its_digest_whatever_its_tag_names_now() {
        assert_eq!(of("ns/app:latest", "sha256:ab").image(), "ns/app@sha256:ab");
        assert_eq!(
            of("registry:5000/ns/app:1.0", "sha256:ab").image(),
            "registry:5000/ns/app@sha256:ab"
        );
        assert_eq!(
            of("registry:5000/ns/app", "sha256:ab").image(),
            "registry:5000/ns/app@sha256:ab"
        );
        assert_eq!(of("ns/app@sha256:cd", "sha256:cd").image(), "ns/app@sha256:cd");
        assert_eq!(of("app:1", "sha256:ab").image(), "app@sha256:ab");
        assert_eq!(of("ns/app:latest", "").image(), "ns/app:latest");
    }
}
