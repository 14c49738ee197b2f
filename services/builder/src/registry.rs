//! Pushing built images to a configured registry over the OCI distribution API, and fetching
//! the runtime base images they are built on from it.

use crate::base::Base;
use crate::config::BuilderConfig;
use crate::error::BuilderError;
use crate::image::layout_dir;
use oci_client::manifest::{IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::{Descriptor, ImageConfiguration, MediaType};
use std::path::Path;
use std::str::FromStr;

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

    /// Fetches the base image `reference` (on this registry): its manifest and config, and
    /// the blobs of its layers into `cache` unless they are there already. A base of another
    /// platform, or whose layers are neither plain nor gzip tars, is refused.
    pub async fn pull_base(&self, reference: &str, cache: &Path) -> Result<Base, BuilderError> {
        let parsed = Reference::from_str(reference).map_err(|source| BuilderError::BaseReference {
            reference: reference.to_owned(),
            source,
        })?;
        let failed = |source| BuilderError::PullBase {
            reference: reference.to_owned(),
            source: Box::new(source),
        };
        let (manifest, digest, config) = self
            .client
            .pull_manifest_and_config(&parsed, &self.auth)
            .await
            .map_err(failed)?;
        let config = ImageConfiguration::from_reader(config.as_bytes()).map_err(BuilderError::Metadata)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers.len() {
            return Err(BuilderError::BaseUnusable {
                reference: reference.to_owned(),
                why: "its config does not list one plain digest per layer".to_owned(),
            });
        }
        tokio::fs::create_dir_all(cache)
            .await
            .map_err(BuilderError::io("creating the base images' cache"))?;
        let mut layers = Vec::new();
        for (layer, diff_id) in manifest.layers.iter().zip(diff_ids) {
            let media_type = match layer.media_type.as_str() {
                IMAGE_LAYER_GZIP_MEDIA_TYPE | IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE => MediaType::ImageLayerGzip,
                IMAGE_LAYER_MEDIA_TYPE => MediaType::ImageLayer,
                other => {
                    return Err(BuilderError::BaseUnusable {
                        reference: reference.to_owned(),
                        why: format!("a layer is `{other}`, neither a plain nor a gzip tar"),
                    });
                }
            };
            let hex_digest = layer.digest.strip_prefix("sha256:").unwrap_or_default();
            let path = cache.join(hex_digest);
            if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                // Written aside, then renamed: the client checks the digest as it reads.
                let partial = path.with_extension("partial");
                let file = tokio::fs::File::create(&partial)
                    .await
                    .map_err(BuilderError::io("caching a base layer"))?;
                self.client.pull_blob(&parsed, layer, file).await.map_err(failed)?;
                tokio::fs::rename(&partial, &path)
                    .await
                    .map_err(BuilderError::io("caching a base layer"))?;
            }
            let descriptor_digest: oci_spec::image::Digest = layer.digest.parse().map_err(BuilderError::Metadata)?;
            let size = u64::try_from(layer.size).unwrap_or_default();
            layers.push((Descriptor::new(media_type, size, descriptor_digest), diff_id.clone()));
        }
        Ok(Base {
            reference: reference.to_owned(),
            digest,
            layers,
            config,
            blobs: cache.to_path_buf(),
        })
    }
}
