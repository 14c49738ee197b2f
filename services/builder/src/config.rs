//! Configuration of the builder.

use nuage_core::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `[builder]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuilderConfig {
    /// Where OCI image layouts are written (one per repository); default `<data-dir>/registry`.
    pub registry_dir: Option<PathBuf>,
    /// Claims of one job before it is given up.
    pub max_attempts: i64,
    /// Seconds a claimed job belongs to its worker, which renews the claim every third of it
    /// while it builds: a worker that dies or is cut off loses the job after this, to
    /// another builder.
    pub lease_seconds: i64,
    /// Builds of one organization that may wait in the queue; a deploy beyond them is refused
    /// (429) and changes nothing.
    pub max_queued_per_organization: u32,
    /// Milliseconds between two looks at an empty queue (a submit wakes the worker at once).
    pub poll_interval_ms: u64,
    /// A registry (`host[:port]`) images are also pushed to over the OCI distribution API;
    /// unset, images stay in the local layouts only.
    pub registry: Option<String>,
    /// Speak plain HTTP to `registry` (a registry on loopback).
    pub registry_insecure: bool,
    /// Basic-auth user of `registry`.
    pub registry_username: Option<String>,
    /// Basic-auth password of `registry`.
    pub registry_password: Option<Secret>,
    /// How long the registry may keep a push waiting (ms): to open a connection (a fifth of
    /// it) or between two reads. Past it, the build is retried later.
    pub registry_timeout_ms: u64,
    /// The base image of a runtime, by runtime name (`node22`, `python311`): an image on
    /// `registry` (`repository:tag`, `repository@sha256:...`, or either after
    /// `<registry>/`) holding the runtime's interpreter, which functions of that runtime are
    /// built on, so that their images run alone (on Kubernetes). A runtime without one is
    /// built on nothing: its image relies on the runner's interpreter (the local runner's).
    /// Go functions are static and need none.
    pub base_images: BTreeMap<String, String>,
}

impl Default for BuilderConfig {
    fn default() -> Self {
        Self {
            registry_dir: None,
            max_attempts: 3,
            lease_seconds: 15,
            poll_interval_ms: 1000,
            max_queued_per_organization: 20,
            registry: None,
            registry_insecure: false,
            registry_username: None,
            registry_password: None,
            registry_timeout_ms: 30_000,
            base_images: BTreeMap::new(),
        }
    }
}

impl BuilderConfig {
    /// Checks `base_images`: each names an interpreted runtime and an image on `registry`.
    pub fn validate(&self) -> Result<(), String> {
        for (runtime, reference) in &self.base_images {
            if !runtime.starts_with("node") && !runtime.starts_with("python") {
                return Err(format!(
                    "builder.base_images.{runtime}: only node and python runtimes are built on a base image"
                ));
            }
            let Some(registry) = self.registry.as_deref().filter(|registry| !registry.is_empty()) else {
                return Err(format!(
                    "builder.base_images.{runtime} needs builder.registry, the registry the base image is on"
                ));
            };
            let resolved = self.base_image(runtime).unwrap_or_default();
            let parsed: Result<oci_client::Reference, _> = resolved.parse();
            if parsed.is_err() || reference.is_empty() {
                return Err(format!(
                    "builder.base_images.{runtime}: `{reference}` is not an image reference on {registry}"
                ));
            }
        }
        Ok(())
    }

    /// Returns the interpreted runtimes' families (`node`, `python`) none of whose runtimes has
    /// a base image: their functions' images run only where the runner lends an interpreter.
    pub fn families_without_base(&self) -> Vec<&'static str> {
        ["node", "python"]
            .into_iter()
            .filter(|family| !self.base_images.keys().any(|runtime| runtime.starts_with(family)))
            .collect()
    }

    /// Returns the full reference of the base image of `runtime`, if it has one: on
    /// `registry`, whether or not the setting names the registry.
    pub fn base_image(&self, runtime: &str) -> Option<String> {
        let reference = self.base_images.get(runtime)?;
        let registry = self.registry.as_deref().unwrap_or_default();
        Some(if reference.starts_with(&format!("{registry}/")) {
            reference.clone()
        } else {
            format!("{registry}/{reference}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_bases(registry: Option<&str>, bases: &[(&str, &str)]) -> BuilderConfig {
        BuilderConfig {
            registry: registry.map(str::to_owned),
            base_images: bases
                .iter()
                .map(|(runtime, reference)| ((*runtime).to_owned(), (*reference).to_owned()))
                .collect(),
            ..BuilderConfig::default()
        }
    }

    const PYTHON: &str =
        "registry.example:5000/bases/python@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn base_images_are_on_the_registry_and_for_interpreted_runtimes_only() {
        let config = with_bases(
            Some("registry.example:5000"),
            &[("node22", "bases/node:22"), ("python311", PYTHON)],
        );
        config.validate().unwrap();
        assert_eq!(
            config.base_image("node22").as_deref(),
            Some("registry.example:5000/bases/node:22")
        );
        assert_eq!(config.base_image("python311").as_deref(), Some(PYTHON));
        assert_eq!(config.base_image("node20"), None);
        assert!(config.families_without_base().is_empty());
        assert_eq!(
            with_bases(Some("r:5000"), &[("node22", "bases/node:22")]).families_without_base(),
            ["python"]
        );
        assert_eq!(BuilderConfig::default().families_without_base(), ["node", "python"]);

        let no_registry = with_bases(None, &[("node22", "bases/node:22")]).validate().unwrap_err();
        assert!(no_registry.contains("needs builder.registry"), "{no_registry}");
        let golang = with_bases(Some("r:5000"), &[("golang", "bases/go:1")])
            .validate()
            .unwrap_err();
        assert!(golang.starts_with("builder.base_images.golang:"), "{golang}");
        let bad = with_bases(Some("r:5000"), &[("node22", "Bases/Node:22!")])
            .validate()
            .unwrap_err();
        assert!(bad.contains("is not an image reference"), "{bad}");
    }
}
