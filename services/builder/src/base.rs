//! Runtime base images (`builder.base_images`). A function of an interpreted runtime is, by
//! default, its code and nuage's wrapper only: the local runner lends it the host's
//! interpreter. Built on its runtime's base image (an interpreter and the libraries it
//! needs), its image runs alone wherever an image runs, a Kubernetes pod say. The base's
//! layers are fetched once into a cache beside the layouts ([`cache_dir`]) and linked into
//! the layout of each function built on it.

use oci_spec::image::{Descriptor, ImageConfiguration};
use std::path::{Path, PathBuf};

/// A base image, fetched: what a function image built on it takes from it.
#[derive(Debug, Clone)]
pub struct Base {
    /// The reference it was fetched by.
    pub reference: String,
    /// `sha256:...` of its manifest.
    pub digest: String,
    /// Its layers, bottom first: each layer's descriptor (an OCI media type) and the digest
    /// of its plain tar (`sha256:...`).
    pub layers: Vec<(Descriptor, String)>,
    /// Its config: environment, operating system and architecture.
    pub config: ImageConfiguration,
    /// The directory holding its layers' blobs, named by hex digest.
    pub blobs: PathBuf,
}

impl Base {
    /// Returns the environment of an image built on this base: the base's variables (its
    /// `PATH`, say) but those `own` sets, then `own`.
    pub fn environment(&self, own: Vec<String>) -> Vec<String> {
        let name = |pair: &str| pair.split_once('=').map_or(pair, |(name, _)| name).to_owned();
        let overridden: std::collections::HashSet<String> = own.iter().map(|pair| name(pair)).collect();
        let inherited = self
            .config
            .config()
            .as_ref()
            .and_then(|config| config.env().clone())
            .unwrap_or_default();
        inherited
            .into_iter()
            .filter(|pair| !overridden.contains(&name(pair)))
            .chain(own)
            .collect()
    }
}

/// Returns the directory where the layers of base images are kept, under the layouts'
/// directory `registry_dir`.
pub fn cache_dir(registry_dir: &Path) -> PathBuf {
    registry_dir.join(".base-blobs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_on_a_base_keeps_the_base_variables_it_does_not_set_itself() {
        let config: ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin", "PORT=3000", "LANG=C.UTF-8"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap();
        let base = Base {
            reference: "registry/node:22".to_owned(),
            digest: "sha256:00".to_owned(),
            layers: Vec::new(),
            config,
            blobs: PathBuf::from("/nowhere"),
        };
        assert_eq!(
            base.environment(vec!["PORT=8080".to_owned(), "NUAGE_HANDLER=handler.handle".to_owned()]),
            [
                "PATH=/usr/local/bin:/usr/bin",
                "LANG=C.UTF-8",
                "PORT=8080",
                "NUAGE_HANDLER=handler.handle"
            ]
        );
    }
}
