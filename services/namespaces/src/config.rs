//! Configuration of the namespaces service.

use serde::{Deserialize, Serialize};

/// The registry host namespaces name when no registry is configured: images then live in OCI
/// image layouts in the data dir, under the same repository paths.
pub const EMBEDDED_REGISTRY_HOST: &str = "registry.nuage.localhost";

/// The `[namespaces]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespacesConfig {
    /// Host (and port) of the image registry that namespaces get a registry namespace in;
    /// `registry_endpoint` is this host followed by the registry namespace's name. Default: the
    /// registry the builder pushes to (`builder.registry`), else [`EMBEDDED_REGISTRY_HOST`],
    /// the name of the OCI image layouts in the data dir.
    pub registry_host: Option<String>,
    /// Seconds between two sweeps for namespaces stuck in a transient state (a sweep also
    /// runs at once whenever a namespace is created or deleted).
    pub reconcile_interval_seconds: u64,
    /// How many namespaces one organization may have, across regions.
    pub max_per_organization: u64,
}

impl Default for NamespacesConfig {
    fn default() -> Self {
        Self {
            registry_host: None,
            reconcile_interval_seconds: 5,
            max_per_organization: 100,
        }
    }
}
