//! The embedded S3 endpoint of the all-in-one shape: s3s over a directory of the data dir.
//!
//! It checks SigV4 for real (header and presigned query signatures, expiry, signed headers),
//! so the presigned URLs nuage hands out behave exactly as against an external S3 service.

use anyhow::Context;
use axum::Router;
use axum::error_handling::HandleError;
use axum::http::StatusCode;
use nuage_core::storage::{StorageAccess, StorageConfig};
use nuage_core::{MasterKey, Secret};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
/// `config.bucket` created.
pub async fn start(
    config: &StorageConfig,
    data_dir: &Path,
    master_key: &MasterKey,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<EmbeddedS3> {
    let root = data_dir.join("objects");
    std::fs::create_dir_all(root.join(&config.bucket))
        .with_context(|| format!("creating the object store `{}`", root.display()))?;
    let secret_key = Secret::new(hex::encode(master_key.derive("embedded-s3")));
    let filesystem = s3s_fs::FileSystem::new(&root)
        .map_err(|error| anyhow::anyhow!("opening the object store `{}`: {error:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(filesystem);
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
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    });
    Ok(EmbeddedS3 {
        address,
        access: StorageAccess {
            endpoint: format!("http://{address}"),
            access_key: ACCESS_KEY.to_owned(),
            secret_key,
        },
        task: tokio::spawn(server.into_future()),
    })
}
