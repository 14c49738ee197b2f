//! Configuration of the namespaces service.

use serde::{Deserialize, Serialize};

/// The `[namespaces]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespacesConfig {
    /// Host (and port) of the image registry that namespaces get a registry namespace in;
    /// `registry_endpoint` is this host followed by the registry namespace's name.
    // TODO(#5): default to the registry that `nuage serve` embeds once the builder lands.
    pub registry_host: String,
    /// Seconds between two sweeps for namespaces stuck in a transient state (a sweep also
    /// runs at once whenever a namespace is created or deleted).
    pub reconcile_interval_seconds: u64,
    /// How many namespaces one organization may have, across regions.
    pub max_per_organization: u64,
}

impl Default for NamespacesConfig {
    fn default() -> Self {
        Self {
            registry_host: "registry.nuage.localhost".to_owned(),
            reconcile_interval_seconds: 5,
            max_per_organization: 100,
        }
    }
}
