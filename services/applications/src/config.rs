//! The `[applications]` section of `nuage.toml`: what functions and containers share, and
//! the endpoints and scale bounds it decides.

use crate::model::endpoint_label;
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::namespaces::v1::Namespace;
use serde::{Deserialize, Serialize};

/// Where endpoints answer when nothing else says: the router's default listener.
pub const DEFAULT_ENDPOINT_BASE_URL: &str = "http://127.0.0.1:8081";

/// The `[applications]` section of `nuage.toml`: settings functions and containers share.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplicationsConfig {
    /// Where function and container endpoints answer when no `domain` is set: each gets the
    /// path `/<label>` under it (see [`endpoint_label`]), which works without wildcard DNS.
    /// Default: the router's address (`http://<router.listen>`, the bound one when it runs in
    /// this process).
    pub endpoint_base_url: Option<String>,
    /// When set, endpoints are host-based, as Scaleway's: `<scheme>://<label>.<domain>`, with
    /// the scheme of `endpoint_base_url`.
    pub domain: Option<String>,
    /// The installation's cap on `max_scale`.
    pub max_scale_cap: u32,
    /// How long creating or deploying a function or container waits for a new namespace to
    /// become ready (ms). A namespace is `pending` for as long as its key pair takes to make
    /// (seconds, for 4096 bits), and clients that follow the documented quick start create a
    /// function right after the namespace.
    pub namespace_wait_ms: u64,
    /// How long a process holds a roll-out (starting a new version) without renewing its
    /// lease (seconds, renewed every third of it): a roll-out whose process died is resumed by
    /// another, or by the same one restarted, this long after.
    pub rollout_lease_seconds: u64,
    /// How long the runner may take to start a new version: pull its image, start an instance
    /// and see it answer (seconds); past it, the deploy ends in `error` saying so.
    pub rollout_timeout_seconds: u64,
    /// Times a roll-out is taken (its first start and resumptions after its process died)
    /// before it fails with a message.
    pub rollout_attempts: u32,
    /// Test-only: how long a roll-out waits, holding its lease, before it starts its version,
    /// so that a test can kill its process mid-roll-out (ms).
    pub hold_before_rollout_ms: u64,
}

impl Default for ApplicationsConfig {
    fn default() -> Self {
        Self {
            endpoint_base_url: None,
            domain: None,
            max_scale_cap: 50,
            namespace_wait_ms: 30_000,
            rollout_lease_seconds: 10,
            rollout_timeout_seconds: 300,
            rollout_attempts: 3,
            hold_before_rollout_ms: 0,
        }
    }
}

impl ApplicationsConfig {
    /// Returns how roll-outs are run.
    pub fn rollouts(&self) -> crate::rollouts::RolloutSettings {
        crate::rollouts::RolloutSettings {
            lease: std::time::Duration::from_secs(self.rollout_lease_seconds.max(1)),
            attempts: i64::from(self.rollout_attempts.max(1)),
            deadline: std::time::Duration::from_secs(self.rollout_timeout_seconds.max(1)),
            hold: std::time::Duration::from_millis(self.hold_before_rollout_ms),
        }
    }

    /// Returns the endpoint of application `name` in `namespace`, or an error while the
    /// namespace has no endpoint suffix yet (one made before suffixes existed, in the moments
    /// before the namespaces service gives it one): without it, two tenants' namespaces of the
    /// same name would share the endpoint.
    pub fn endpoint(&self, namespace: &Namespace, name: &str) -> Result<String, ApiError> {
        if namespace.endpoint_suffix.is_empty() {
            return Err(ApiError::unavailable(format!(
                "namespace `{}` has no endpoint yet; try again in a moment",
                namespace.name
            )));
        }
        Ok(self.endpoint_of(&endpoint_label(&namespace.name, &namespace.endpoint_suffix, name)))
    }

    /// Returns the endpoint whose path segment or first host label is `label`.
    fn endpoint_of(&self, label: &str) -> String {
        let base = self
            .endpoint_base_url
            .as_deref()
            .unwrap_or(DEFAULT_ENDPOINT_BASE_URL)
            .trim_end_matches('/');
        match self.domain.as_deref().filter(|domain| !domain.is_empty()) {
            Some(domain) => {
                let scheme = base.split_once("://").map_or("https", |(scheme, _)| scheme);
                format!("{scheme}://{label}.{}", domain.trim_matches('.'))
            }
            None => format!("{base}/{label}"),
        }
    }

    /// Checks `0 <= min_scale <= max_scale <= max_scale_cap`.
    pub fn check_scale(&self, min_scale: u32, max_scale: u32) -> Result<(), ApiError> {
        if max_scale > self.max_scale_cap {
            return Err(ApiError::invalid_argument(
                "max_scale",
                Reason::Constraint,
                format!("must be at most {}, got {max_scale}", self.max_scale_cap),
            ));
        }
        if min_scale > max_scale {
            return Err(ApiError::invalid_argument(
                "min_scale",
                Reason::Constraint,
                format!("must not exceed max_scale ({max_scale}), got {min_scale}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_bounds() {
        let config = ApplicationsConfig::default();
        assert!(config.check_scale(0, 50).is_ok());
        assert!(config.check_scale(0, 51).is_err());
        assert_eq!(
            config.check_scale(3, 2).unwrap_err().violations[0].argument_name,
            "min_scale"
        );
    }

    fn namespace(name: &str, suffix: &str) -> Namespace {
        Namespace {
            name: name.to_owned(),
            endpoint_suffix: suffix.to_owned(),
            ..Namespace::default()
        }
    }

    #[test]
    fn endpoints_carry_the_namespace_suffix_and_are_path_based_unless_a_domain_is_set() {
        let mut config = ApplicationsConfig::default();
        let shop = namespace("my-shop", "k3x9q2ab");
        assert_eq!(
            config.endpoint(&shop, "hello").unwrap(),
            "http://127.0.0.1:8081/myshopk3x9q2ab-hello"
        );
        config.domain = Some("functions.example.com".to_owned());
        config.endpoint_base_url = Some("https://x".to_owned());
        assert_eq!(
            config.endpoint(&shop, "hello-world").unwrap(),
            "https://myshopk3x9q2ab-hello-world.functions.example.com"
        );
        // A namespace without its suffix yet gets no endpoint rather than a shared one.
        let error = config.endpoint(&namespace("shop", ""), "hello").unwrap_err();
        assert_eq!(error.code, nuage_core::ErrorCode::Unavailable);
    }
}
