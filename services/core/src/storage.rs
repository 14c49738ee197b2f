//! Where source archives live: the embedded S3 endpoint by default, or any S3 service. The
//! client that reaches them is `nuage_clients::storage`.

use crate::listener::ConnectionLimits;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The `[storage]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// An external S3 endpoint (`https://s3.fr-par.scw.cloud`, `http://127.0.0.1:8333`...).
    /// Unset: `nuage serve` runs its own S3 endpoint on `listen`, storing objects in the data dir.
    pub endpoint: Option<String>,
    /// The embedded endpoint's listener (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The region requests are signed for.
    pub region: String,
    /// The bucket that holds archives; the embedded endpoint creates it.
    pub bucket: String,
    /// The access key of an external endpoint (the embedded one derives its own).
    pub access_key: Option<String>,
    /// The secret key of an external endpoint.
    pub secret_key: Option<Secret>,
    /// Address buckets in the path (`endpoint/bucket/key`) rather than the host name.
    pub path_style: bool,
    /// The largest archive a tenant may upload.
    pub max_upload_bytes: u64,
    /// How long a presigned URL stays valid.
    pub url_ttl_seconds: u64,
    /// How long a call to the store (a check that an archive exists, a delete, the start of a
    /// download) may take, retries included (ms): past it, the call fails naming the store, and
    /// an API request answers 503. Connecting gets a fifth of it.
    pub timeout_ms: u64,
    /// Limits on the embedded endpoint's client connections (`[storage.connections]`): tenants
    /// reach it with presigned URLs. Its idle timeout runs only between requests, so it does
    /// not cut an upload in progress.
    pub connections: ConnectionLimits,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            listen: "127.0.0.1:0".parse().expect("valid address"),
            region: "us-east-1".to_owned(),
            bucket: "nuage-archives".to_owned(),
            access_key: None,
            secret_key: None,
            path_style: true,
            max_upload_bytes: 100 * 1024 * 1024,
            url_ttl_seconds: 3600,
            timeout_ms: 10_000,
            connections: ConnectionLimits::default(),
        }
    }
}

impl StorageConfig {
    /// Returns the endpoint and credentials of the external store, when `endpoint` is set.
    pub fn external_access(&self) -> Option<StorageAccess> {
        Some(StorageAccess {
            endpoint: self.endpoint.clone()?,
            access_key: self.access_key.clone().unwrap_or_default(),
            secret_key: self.secret_key.clone().unwrap_or_else(|| Secret::new("")),
        })
    }
}

/// The endpoint and credentials the functions service and the builder sign and call with.
#[derive(Debug, Clone)]
pub struct StorageAccess {
    /// The S3 endpoint URL.
    pub endpoint: String,
    /// The access key.
    pub access_key: String,
    /// The secret key.
    pub secret_key: Secret,
}
