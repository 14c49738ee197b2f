//! Configuration of the gateway.

use nuage_core::Secret;
use nuage_core::listener::ConnectionLimits;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `[gateway]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Regions this installation serves; any other region in a path is refused.
    pub regions: Vec<String>,
    /// Largest accepted request body, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// After this long a cached API key is re-verified in the background; no entry outlives
    /// twice this. A revoked key keeps working at most twice this long (at most 10 s).
    pub auth_cache_ttl_seconds: u64,
    /// How many verified API keys are cached at most.
    pub auth_cache_capacity: u64,
    /// Failed authentications one client address may make per window before its further
    /// failures get 429 rather than 401. A valid key always passes.
    pub auth_failure_limit: u32,
    /// The window of `auth_failure_limit`, in seconds.
    pub auth_failure_window_seconds: u64,
    /// The bearer token an operator sends (`Authorization: Bearer <token>`) to read `/metrics`,
    /// whose figures name every tenant's applications. Unset (and no `metrics_token_file`):
    /// `/metrics` is not served. The gateway reads only this field; the process fills it from
    /// the file at start.
    pub metrics_token: Option<Secret>,
    /// A file holding `metrics_token`.
    pub metrics_token_file: Option<PathBuf>,
    /// Milliseconds each check of `/healthz` (a service, the database, the object store, the
    /// data disk) may take; one that takes longer counts as down. They run at once.
    pub health_timeout_ms: u64,
    /// `/healthz` is not ready while the data dir's disk has fewer bytes free than this.
    pub health_min_free_disk_bytes: u64,
    /// Limits on the REST listener's client connections (`[gateway.connections]`).
    pub connections: ConnectionLimits,
    /// The v1beta1 name of the sandbox instances run in when their function or container
    /// names none (`v1`: bubblewrap, `v2`: gVisor), which v1beta1 shows for them. Not a
    /// setting: the process fills it from `runner.sandbox`.
    #[serde(skip)]
    pub sandbox: String,
    /// The v1beta1 names of the sandboxes a function or container may name; others are
    /// refused. Not a setting: the process fills it from the runner's offer
    /// (`runner.sandboxes`, by default those installed).
    #[serde(skip)]
    pub sandboxes: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            regions: vec!["fr-par".to_owned(), "nl-ams".to_owned(), "pl-waw".to_owned()],
            max_body_bytes: 1024 * 1024,
            auth_cache_ttl_seconds: 5,
            auth_cache_capacity: 10_000,
            auth_failure_limit: 20,
            auth_failure_window_seconds: 60,
            metrics_token: None,
            metrics_token_file: None,
            health_timeout_ms: 2000,
            health_min_free_disk_bytes: 256 * 1024 * 1024,
            connections: ConnectionLimits::default(),
            sandbox: "v1".to_owned(),
            sandboxes: vec!["v1".to_owned()],
        }
    }
}

impl GatewayConfig {
    /// Returns a description of the first invalid setting, if any.
    pub fn validate(&self) -> Result<(), String> {
        if self.regions.is_empty() {
            return Err("gateway.regions must list at least one region".to_owned());
        }
        if self.auth_cache_ttl_seconds == 0 || self.auth_cache_ttl_seconds > 5 {
            return Err(
                "gateway.auth_cache_ttl_seconds must be 1 to 5, so revoked keys stop working within 10 s".to_owned(),
            );
        }
        if self.auth_failure_limit == 0 || self.auth_failure_window_seconds == 0 {
            return Err("gateway.auth_failure_limit and auth_failure_window_seconds must be positive".to_owned());
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|token| token.expose().trim().is_empty())
        {
            return Err("gateway.metrics_token must not be empty".to_owned());
        }
        if self.health_timeout_ms == 0 {
            return Err("gateway.health_timeout_ms must be positive".to_owned());
        }
        self.connections.validate("gateway.connections")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_token_is_never_printed_and_never_empty() {
        let config = GatewayConfig {
            metrics_token: Some(Secret::new("operator-only")),
            ..GatewayConfig::default()
        };
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("operator-only"));
        let empty = GatewayConfig {
            metrics_token: Some(Secret::new(" ")),
            ..GatewayConfig::default()
        };
        assert!(empty.validate().is_err());
    }
}
