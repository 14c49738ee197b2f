//! The embedded S3 endpoint of the all-in-one shape: s3s over a directory of the data dir.
//!
//! It checks SigV4 for real (header and presigned query signatures, expiry, signed headers),
//! so the presigned URLs nuage hands out behave exactly as against an external S3 service.
//! Objects are s3s-fs files; [`ObjectFiles`] adds what s3s-fs leaves out: a deleted object
//! takes its side files (attributes and checksums) and its emptied directories with it.
//! Tenants reach it through presigned URLs, so it holds its connections as the REST API does
//! (`nuage_core::listener`, within `storage.connections`).

use anyhow::Context;
use axum::Router;
use axum::error_handling::HandleError;
use axum::http::StatusCode;
use base64::Engine as _;
use nuage_core::storage::{StorageAccess, StorageConfig};
use nuage_core::{MasterKey, Secret};
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// The access key of the embedded endpoint (its secret derives from the master key).
const ACCESS_KEY: &str = "nuage-embedded";

/// A running embedded endpoint.
pub struct EmbeddedS3 {
    /// Where it listens.
    pub address: SocketAddr,
    /// What the functions service signs with.
    pub access: StorageAccess,
    /// The serving task; it ends when the stop signal fires.
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Starts the endpoint on `config.listen`, storing objects under `<data_dir>/objects`, with
/// `config.bucket` created; it serves connections within `config.connections`.
pub async fn start(
    config: &StorageConfig,
    data_dir: &Path,
    master_key: &MasterKey,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<EmbeddedS3> {
    let root = data_dir.join("objects");
    std::fs::create_dir_all(root.join(&config.bucket))
        .with_context(|| format!("creating the object store `{}`", root.display()))?;
    let secret_key = Secret::new(hex::encode(master_key.derive("embedded-s3")));
    let files = s3s_fs::FileSystem::new(&root)
        .map_err(|error| anyhow::anyhow!("opening the object store `{}`: {error:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(ObjectFiles { files, root });
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, secret_key.expose()));
    let service = builder.build();
    let app = Router::new().fallback_service(HandleError::new(service, |error: s3s::HttpError| async move {
        tracing::error!(?error, "embedded S3 endpoint failed");
        StatusCode::INTERNAL_SERVER_ERROR
    }));
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the embedded S3 listener {}", config.listen))?;
    let address = listener.local_addr()?;
    let server = nuage_core::listener::serve(listener, config.connections.clone(), stopped, move |_| {
        let app = app.clone();
        hyper::service::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| {
            app.clone().oneshot(request.map(axum::body::Body::new))
        })
    });
    Ok(EmbeddedS3 {
        address,
        access: StorageAccess {
            endpoint: format!("http://{address}"),
            access_key: ACCESS_KEY.to_owned(),
            secret_key,
        },
        task: tokio::spawn(server),
    })
}

/// The objects of the embedded store: s3s-fs files under `root`, whose deletes also remove
/// what s3s-fs keeps beside an object (it leaves those behind) and the directories the object
/// was the last one in.
struct ObjectFiles {
    files: s3s_fs::FileSystem,
    root: PathBuf,
}

impl std::fmt::Debug for ObjectFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectFiles")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ObjectFiles {
    /// Removes what s3s-fs keeps beside object `key` of `bucket`, which was just deleted: its
    /// attributes and checksums (`.bucket-<bucket>.object-<key>.{metadata,internal}.json` at
    /// the root, names in unpadded URL-safe base64) and the directories it leaves empty.
    /// Should the object be there again (written meanwhile), they are its own: kept.
    async fn remove_side_files(&self, bucket: &str, key: &str) {
        let bucket_dir = self.root.join(bucket);
        let object = bucket_dir.join(key);
        if !object.starts_with(&bucket_dir) || tokio::fs::try_exists(&object).await.unwrap_or(true) {
            return;
        }
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        for kind in ["metadata", "internal"] {
            let side = self
                .root
                .join(format!(".bucket-{}.object-{}.{kind}.json", encode(bucket), encode(key)));
            match tokio::fs::remove_file(&side).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => tracing::warn!(path = %side.display(), %error, "cannot remove an object's side file"),
            }
        }
        // `a/b/c` leaves `a/b` and `a` empty when it was the last object under them.
        let mut directory = object.parent();
        while let Some(path) = directory.filter(|path| path.starts_with(&bucket_dir) && *path != bucket_dir) {
            if tokio::fs::remove_dir(path).await.is_err() {
                break;
            }
            directory = path.parent();
        }
    }
}

/// Implements [`S3`] for [`ObjectFiles`]: the listed operations go to s3s-fs as they are, the
/// items given after them are [`ObjectFiles`]' own. Those are all nuage uses; any other is
/// answered 501 (s3s's default). Tenants hold presigned URLs, which sign the method, the key
/// and a few headers but not the ones that turn a request into another operation: a PUT with
/// `x-amz-copy-source` is a copy, which would read any object into the tenant's key.
macro_rules! object_files_s3 {
    ({ $($operation:ident($input:ident) -> $output:ident,)* } $($own:item)*) => {
        #[async_trait::async_trait]
        impl S3 for ObjectFiles {
            $(
                async fn $operation(&self, request: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.files.$operation(request).await
                }
            )*
            $($own)*
        }
    };
}

object_files_s3! {
    {
        create_bucket(CreateBucketInput) -> CreateBucketOutput,
        get_object(GetObjectInput) -> GetObjectOutput,
        head_bucket(HeadBucketInput) -> HeadBucketOutput,
        head_object(HeadObjectInput) -> HeadObjectOutput,
        put_object(PutObjectInput) -> PutObjectOutput,
    }

    async fn delete_object(&self, request: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (request.input.bucket.clone(), request.input.key.clone());
        let output = self.files.delete_object(request).await?;
        self.remove_side_files(&bucket, &key).await;
        Ok(output)
    }
}
