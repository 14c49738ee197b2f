//! Pushing built images to a configured registry over the OCI distribution API.

use crate::config::BuilderConfig;
use crate::error::BuilderError;
use crate::image::layout_dir;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use std::path::Path;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry images are pushed to, besides the local layout.
#[derive(Clone)]
pub struct Registry {
    client: Client,
    host: String,
    auth: RegistryAuth,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Returns the registry `config` names, if any.
    pub fn from_config(config: &BuilderConfig) -> Option<Self> {
        let host = config.registry.clone().filter(|host| !host.is_empty())?;
        let auth = match (&config.registry_username, &config.registry_password) {
            (Some(username), Some(password)) => RegistryAuth::Basic(username.clone(), password.expose().to_owned()),
            _ => RegistryAuth::Anonymous,
        };
        Some(Self {
            client: nuage_clients::registry::client(
                config.registry_insecure,
                std::time::Duration::from_millis(config.registry_timeout_ms),
            ),
            host,
            auth,
        })
    }

    /// Pushes the image `tag` of `repository` from the layout under `registry_dir`: its
    /// blobs, then its manifest (`manifest_digest`). Returns `<host>/<repository>:<tag>`.
    pub async fn push(
        &self,
        registry_dir: &Path,
        repository: &str,
        tag: &str,
        manifest_digest: &str,
    ) -> Result<String, BuilderError> {
        let layout = layout_dir(registry_dir, repository);
        let blob = |digest: &str| {
            std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).map_err(|source| {
                BuilderError::ReadBlob {
                    digest: digest.to_owned(),
                    source,
                }
            })
        };
        let manifest = blob(manifest_digest)?;
        let parsed: serde_json::Value = serde_json::from_slice(&manifest).map_err(BuilderError::ManifestJson)?;
        let mut digests = vec![parsed["config"]["digest"].as_str().unwrap_or_default().to_owned()];
        digests.extend(
            parsed["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|layer| layer["digest"].as_str().map(str::to_owned)),
        );
        let reference = Reference::with_tag(self.host.clone(), repository.to_owned(), tag.to_owned());
        let failed = |source| BuilderError::Push {
            host: self.host.clone(),
            source: Box::new(source),
        };
        self.client
            .auth(&reference, &self.auth, RegistryOperation::Push)
            .await
            .map_err(failed)?;
        for digest in digests {
            self.client
                .push_blob(&reference, &blob(&digest)?, &digest)
                .await
                .map_err(failed)?;
        }
        self.client
            .push_manifest_raw(
                &reference,
                manifest,
                MANIFEST_TYPE.parse().expect("a valid header value"),
            )
            .await
            .map_err(failed)?;
        Ok(format!("{}/{repository}:{tag}", self.host))
    }
}
