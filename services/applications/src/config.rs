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
    /// Deployments kept per function or container (the newest, besides the one serving), and
    /// images kept per function by the builder: the history a rollback chooses from. One
    /// setting for both, so that a deployment listed has its image unless it was removed
    /// some other way.
    pub deployment_history: u32,
    /// Custom domains of functions and containers (`[applications.domains]`).
    pub domains: DomainsConfig,
}

/// What proves that a tenant may route a host name of its own to an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainCheck {
    /// Nothing: a domain is ready once stored. Only for an installation whose tenants are
    /// trusted: any of them can take any free host name that reaches the router.
    None,
    /// The host name must be a CNAME to the application's own host (its `domain_name`), which
    /// only whoever controls the name's DNS can set. Needs host-based endpoints
    /// (`applications.domain`).
    Cname,
}

/// The `[applications.domains]` section: custom domains and how they are checked.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainsConfig {
    /// What a domain must pass to become `ready`. Default `cname`: what a hosted platform needs,
    /// so that no tenant can take a host name whose DNS another controls.
    pub check: DomainCheck,
    /// The DNS server the CNAME check asks (`ip:port`, or an IP for port 53); default: the
    /// system's resolvers (`/etc/resolv.conf`).
    pub resolver: Option<String>,
    /// How often a `pending` domain is checked again (ms).
    pub recheck_ms: u64,
    /// How long a domain stays `pending` while its check fails before it ends in `error`,
    /// saying why (ms): DNS changes take a while to reach every resolver.
    pub check_timeout_ms: u64,
    /// Domains one function or container may have.
    pub max_per_application: u64,
    /// How often a `ready` domain's check is run again (ms): one whose DNS no longer points
    /// at its application (the name changed hands, or its owner moved it) ends in `error` and
    /// stops being routed. A check that cannot get an answer leaves it ready.
    pub recheck_ready_ms: u64,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        Self {
            check: DomainCheck::Cname,
            resolver: None,
            recheck_ms: 10_000,
            check_timeout_ms: 3_600_000,
            max_per_application: 20,
            recheck_ready_ms: 3_600_000,
        }
    }
}

impl DomainsConfig {
    /// Returns the resolver's address, checked: `ip:port` or an IP (port 53).
    pub fn resolver_address(&self) -> Result<Option<std::net::SocketAddr>, String> {
        let Some(text) = self.resolver.as_deref().filter(|text| !text.is_empty()) else {
            return Ok(None);
        };
        text.parse::<std::net::SocketAddr>()
            .or_else(|_| {
                text.parse::<std::net::IpAddr>()
                    .map(|ip| std::net::SocketAddr::new(ip, 53))
            })
            .map(Some)
            .map_err(|_| format!("applications.domains.resolver must be `ip:port` or an IP, got `{text}`"))
    }
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
            deployment_history: 5,
            domains: DomainsConfig::default(),
        }
    }
}

impl ApplicationsConfig {
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

    /// Returns the host names this installation's own endpoints answer under (its endpoint
    /// domain, or the host of its base URL when that is a name): no custom domain may be one of
    /// them or under one.
    pub fn reserved_hosts(&self) -> Vec<String> {
        let base = self.endpoint_base_url.as_deref().unwrap_or(DEFAULT_ENDPOINT_BASE_URL);
        let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
        [self.domain.as_deref().unwrap_or_default(), host]
            .into_iter()
            .map(|host| host.trim_matches('.').to_ascii_lowercase())
            .filter(|host| !host.is_empty() && host.parse::<std::net::IpAddr>().is_err() && !host.starts_with('['))
            .collect()
    }

    /// Returns the host of an application whose endpoint is `endpoint`, when endpoints are
    /// host-based (a `domain` is set): what the CNAME of its custom domains must name.
    pub fn application_host(&self, endpoint: &str) -> Option<String> {
        self.domain.as_deref().filter(|domain| !domain.is_empty())?;
        let rest = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
        Some(host.trim_end_matches('.').to_ascii_lowercase()).filter(|host| !host.is_empty())
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
