//! Source archives in object storage: presigned upload and download URLs, and deletion.
//!
//! URLs are signed locally (SigV4 with aws-sdk-s3): issuing one costs no round trip to the
//! store. The store checks the signature, the expiry and the signed headers (length, type).

use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use nuage_core::ApiError;
use nuage_core::error::{Reason, chain};
use nuage_core::storage::{StorageAccess, StorageConfig};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// The only content type an archive is uploaded with.
pub const ARCHIVE_CONTENT_TYPE: &str = "application/octet-stream";

/// A presigned request: its URL and the headers the client must send with it.
#[derive(Debug, Clone)]
pub struct Presigned {
    /// The URL.
    pub url: String,
    /// Lowercase header names and values.
    pub headers: HashMap<String, String>,
}

impl Presigned {
    /// Returns the URL and headers of `request`.
    fn of(request: &PresignedRequest) -> Self {
        Self {
            url: request.uri().to_owned(),
            headers: request
                .headers()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                .collect(),
        }
    }
}

/// Function archives in one bucket, at `functions/<function id>.zip`.
#[derive(Debug, Clone)]
pub struct Archives {
    client: aws_sdk_s3::Client,
    bucket: String,
    ttl: Duration,
    max_upload_bytes: u64,
}

impl Archives {
    /// Returns archives stored through `access` as `config` describes.
    pub fn new(config: &StorageConfig, access: &StorageAccess) -> Self {
        Self {
            client: nuage_clients::storage::client(config, access),
            bucket: config.bucket.clone(),
            ttl: Duration::from_secs(config.url_ttl_seconds.max(1)),
            max_upload_bytes: config.max_upload_bytes,
        }
    }

    /// Returns how long the URLs it hands out are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Returns the object key of the archive of `function_id`.
    pub fn key(function_id: Uuid) -> String {
        format!("functions/{function_id}.zip")
    }

    fn presigning(&self) -> Result<PresigningConfig, ApiError> {
        PresigningConfig::expires_in(self.ttl).map_err(|error| ApiError::internal(&error))
    }

    /// Returns a PUT URL for the archive of `function_id`, bound to `content_length` bytes of
    /// `application/octet-stream`.
    pub async fn upload_url(&self, function_id: Uuid, content_length: u64) -> Result<Presigned, ApiError> {
        if content_length == 0 {
            return Err(ApiError::invalid_argument(
                "content_length",
                Reason::Required,
                format!(
                    "is required: the archive's size in bytes, 1 to {}",
                    self.max_upload_bytes
                ),
            ));
        }
        if content_length > self.max_upload_bytes {
            return Err(ApiError::invalid_argument(
                "content_length",
                Reason::Constraint,
                format!(
                    "{content_length} bytes is over this installation's limit of {} bytes ({} MiB)",
                    self.max_upload_bytes,
                    self.max_upload_bytes / (1024 * 1024)
                ),
            ));
        }
        let length = i64::try_from(content_length).map_err(|error| ApiError::internal(&error))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(Self::key(function_id))
            .content_length(length)
            .content_type(ARCHIVE_CONTENT_TYPE)
            .presigned(self.presigning()?)
            .await
            .map_err(|error| ApiError::internal(&error))?;
        Ok(Presigned::of(&request))
    }

    /// Returns a GET URL for the current archive of `function_id`, or NOT_FOUND when none
    /// was uploaded.
    pub async fn download_url(&self, function_id: Uuid) -> Result<Presigned, ApiError> {
        let key = Self::key(function_id);
        let head = self.client.head_object().bucket(&self.bucket).key(&key).send().await;
        if let Err(error) = head {
            let not_found = error
                .as_service_error()
                .is_some_and(aws_sdk_s3::operation::head_object::HeadObjectError::is_not_found);
            return Err(if not_found {
                ApiError {
                    help_message: Some(
                        "no archive was uploaded for this function: GET its upload-url and PUT the zip there first"
                            .to_owned(),
                    ),
                    ..ApiError::not_found("archive", function_id.to_string())
                }
            } else {
                store_failed(&error)
            });
        }
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(self.presigning()?)
            .await
            .map_err(|error| ApiError::internal(&error))?;
        Ok(Presigned::of(&request))
    }

    /// Creates the bucket if the store does not have it yet (a start-up convenience for a
    /// fresh external store; the embedded one creates it itself).
    pub async fn ensure_bucket(&self) -> Result<(), ApiError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => {
                tracing::info!(bucket = %self.bucket, "created the archive bucket");
                Ok(())
            }
            Err(error) => {
                let exists = error
                    .as_service_error()
                    .is_some_and(|error| error.is_bucket_already_owned_by_you() || error.is_bucket_already_exists());
                if exists {
                    Ok(())
                } else {
                    Err(ApiError::dependency(
                        "the object store",
                        format!("cannot create bucket `{}`: {}", self.bucket, chain(&error)),
                    ))
                }
            }
        }
    }

    /// Returns whether an archive of `function_id` was uploaded.
    pub async fn exists(&self, function_id: Uuid) -> Result<bool, ApiError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(Self::key(function_id))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(aws_sdk_s3::operation::head_object::HeadObjectError::is_not_found) =>
            {
                Ok(false)
            }
            Err(error) => Err(store_failed(&error)),
        }
    }

    /// Deletes the archive of `function_id`; deleting a missing one is not an error.
    pub async fn delete(&self, function_id: Uuid) -> Result<(), ApiError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(Self::key(function_id))
            .send()
            .await
            .map(drop)
            .map_err(|error| store_failed(&error))
    }
}

/// The error of a call to the object store that failed or did not answer within its deadline.
fn store_failed<E: std::error::Error + 'static>(error: &E) -> ApiError {
    ApiError::dependency("the object store", chain(error))
}
