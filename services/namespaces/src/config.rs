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
    /// How many of an organization's namespaces may wait to be provisioned (their key pair
    /// made) at once; a create beyond it is refused with 429 until one is ready.
    pub max_pending_per_organization: u64,
    /// How many namespaces one replica provisions at once (0: one per core). Each makes a key
    /// pair, which takes a core for a while: more than the tokens service's
    /// `tokens.key_workers` only queues there.
    pub provision_workers: usize,
    /// Seconds a replica holds a pending namespace it provisions; it renews the hold while it
    /// works, so this is how long a namespace waits after its replica died mid-way.
    pub provision_lease_seconds: u64,
}

impl NamespacesConfig {
    /// Returns how many namespaces to provision at once: `provision_workers`, or the number of
    /// cores when that is 0.
    pub fn provision_workers(&self) -> usize {
        nuage_core::workers::or_cores(self.provision_workers)
    }
}

impl Default for NamespacesConfig {
    fn default() -> Self {
        Self {
            registry_host: None,
            reconcile_interval_seconds: 5,
            max_per_organization: 100,
            max_pending_per_organization: 50,
            provision_workers: 0,
            provision_lease_seconds: 10,
        }
    }
}
