//! Configuration of the containers service.

use serde::{Deserialize, Serialize};

/// The `[containers]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainersConfig {
    /// Seconds between two sweeps for containers stuck in a transient state (a sweep also runs
    /// at once whenever a container is deleted).
    pub reconcile_interval_seconds: u64,
    /// Requests one container instance takes at once (functions take one).
    pub concurrency: u32,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        Self {
            reconcile_interval_seconds: 5,
            concurrency: 50,
        }
    }
}
