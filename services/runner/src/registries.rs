//! Which registries the runner pulls images from on a tenant's word. A container's image names
//! its registry, and the runner (the platform, not the tenant's instance) connects there: left
//! open, a tenant could point it at the platform's own loopback or private services, or at the
//! installation's registry under another name (`localhost` for `127.0.0.1`, an address for a
//! name) to pull what another tenant pushed there past the check that the repository is its own.
//! So a registry is pulled from when it is the installation's own, when the operator lists it
//! (`runner.tenant_registries`), or when every address it resolves to is public and none is one
//! of the installation's registry's.
//!
//! The registry client resolves the name again when it connects. Over HTTPS the registry's
//! certificate must match the name, so a name that answers a public address here and a
//! loopback one then (DNS rebinding) fails the handshake; plain HTTP
//! (`runner.registry_insecure`, meant for a registry on loopback) has no such guard.

use crate::error::RunnerError;
use nuage_core::ids::same_registry;
use std::net::SocketAddr;

/// The registries the runner pulls from (see the module's doc).
#[derive(Debug, Clone, Default)]
pub(crate) struct Registries {
    /// The installation's own registry (`host[:port]`), when there is one.
    pub(crate) own: Option<String>,
    /// Registries the operator allows although their addresses are not public.
    pub(crate) listed: Vec<String>,
    /// Plain HTTP: a registry named without a port is on 80, not 443.
    pub(crate) insecure: bool,
}

impl Registries {
    /// Returns whether the runner may pull from `registry` (`host[:port]`, as an image names
    /// it); an error naming it and why not.
    pub(crate) async fn check(&self, registry: &str) -> Result<(), RunnerError> {
        if self
            .own
            .iter()
            .chain(&self.listed)
            .any(|allowed| same_registry(allowed, registry))
        {
            return Ok(());
        }
        let refused = |reason: String| RunnerError::RegistryRefused {
            registry: registry.to_owned(),
            reason,
        };
        let addresses = nuage_core::validate::public_addresses(self.address(registry))
            .await
            .map_err(|error| refused(format!("it does not resolve: {error}")))?
            .ok_or_else(|| {
                refused(
                    "its operator pulls from registries with public addresses only, and from those listed in \
                     `runner.tenant_registries`"
                        .to_owned(),
                )
            })?;
        let canonical = |address: &SocketAddr| (address.ip().to_canonical(), address.port());
        if let Some(own) = &self.own
            && let Ok(own_addresses) = tokio::net::lookup_host(self.address(own)).await
            && own_addresses
                .map(|own| canonical(&own))
                .any(|own| addresses.iter().any(|address| canonical(address) == own))
        {
            return Err(refused(format!(
                "it is this installation's registry under another name: name it `{own}`"
            )));
        }
        Ok(())
    }

    /// Returns `registry` with its port: its own, or the protocol's.
    fn address(&self, registry: &str) -> String {
        let has_port = registry
            .rsplit_once(':')
            .is_some_and(|(host, port)| port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']')));
        if has_port {
            registry.to_owned()
        } else {
            format!("{registry}:{}", if self.insecure { 80 } else { 443 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registries(own: &str, listed: &[&str]) -> Registries {
        Registries {
            own: Some(own.to_owned()),
            listed: listed.iter().map(|registry| (*registry).to_owned()).collect(),
            insecure: true,
        }
    }

    #[tokio::test]
    async fn the_installations_registry_and_listed_ones_are_pulled_from_however_spelled() {
        let registries = registries("Registry.Example:443", &["10.1.2.3:5000"]);
        for registry in ["registry.example", "REGISTRY.EXAMPLE:443", "10.1.2.3:5000"] {
            registries
                .check(registry)
                .await
                .unwrap_or_else(|error| panic!("{registry}: {error}"));
        }
        // An address literal is not looked up anywhere: a public one is pulled from.
        registries.check("1.1.1.1:443").await.unwrap();
    }

    #[tokio::test]
    async fn the_installations_registry_under_another_name_is_refused() {
        let registries = registries("1.1.1.1:5000", &[]);
        let error = registries.check("[::ffff:1.1.1.1]:5000").await.unwrap_err();
        assert!(error.to_string().contains("name it `1.1.1.1:5000`"), "{error}");
        // Another port of the same host is another registry.
        registries.check("[::ffff:1.1.1.1]:5001").await.unwrap();
    }

    #[tokio::test]
    async fn the_platforms_own_addresses_are_never_pulled_from_on_a_tenants_word() {
        let registries = registries("127.0.0.1:5000", &[]);
        // Other names and spellings of loopback, the unspecified address (which reaches this
        // host), private and link-local ranges.
        for registry in [
            "localhost:5000",
            "0.0.0.0:5000",
            "2130706433:5000",
            "[::1]:5000",
            "[::ffff:127.0.0.1]:5000",
            "127.0.0.2",
            "10.0.0.1:5000",
            "192.168.1.1",
            "169.254.169.254",
        ] {
            let error = registries.check(registry).await.unwrap_err();
            assert!(
                matches!(&error, RunnerError::RegistryRefused { registry: named, .. } if named == registry),
                "{registry}: {error}"
            );
            assert!(error.to_string().contains("public addresses only"), "{error}");
        }
    }
}
