//! Which registries the runner pulls images from on a tenant's word. A container's image names
//! its registry, and the runner (the platform, not the tenant's instance) connects there: left
//! open, a tenant could point it at the platform's own loopback or private services, or at the
//! installation's registry under another name (`localhost` for `127.0.0.1`, an address for a
//! name) to pull what another tenant pushed there past the check that the repository is its own.
//! So a registry is pulled from when it is the installation's own, when the operator lists it
//! (`runner.tenant_registries`), or when every address it resolves to is public and none is one
//! of the installation's registry's.
//!
//! The check gives the tenant a clear error; what holds is the way any registry but the own and
//! listed ones is reached: over HTTPS, every connection through the proxy of
//! `registry_proxy.rs`, which admits the same destinations, so that neither a redirect, a token
//! realm elsewhere nor a name that answers another address when connecting (DNS rebinding)
//! leads the runner anywhere else. `runner.registry_insecure` (plain HTTP, for a registry on
//! loopback) applies to the own and listed registries only.

use crate::error::RunnerError;
use crate::registry_proxy::{self, Destinations};
use nuage_core::ids::same_registry;
use nuage_core::validate::{same_address, with_port};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The registries the runner pulls from (see the module's doc).
#[derive(Debug, Clone, Default)]
pub(crate) struct Registries {
    /// The installation's own registry (`host[:port]`), when there is one.
    pub(crate) own: Option<String>,
    /// Registries the operator allows although their addresses are not public.
    pub(crate) listed: Vec<String>,
    /// Plain HTTP to the own and listed registries: one named without a port is on 80, not 443.
    pub(crate) insecure: bool,
    /// The URL of the proxy the others are reached through, once started.
    pub(crate) proxy: Arc<OnceCell<String>>,
}

impl Registries {
    /// Returns a client for `registry` once it is [checked](Self::check), waiting at most
    /// `deadline` for it: the own and listed registries are spoken to directly (over plain
    /// HTTP when `insecure`), any other over HTTPS through the proxy of `registry_proxy.rs`.
    pub(crate) async fn client(&self, registry: &str, deadline: Duration) -> Result<oci_client::Client, RunnerError> {
        self.check(registry).await?;
        self.reach(registry, deadline).await
    }

    /// Returns a client for `registry`, checked or not: direct to the own and listed ones,
    /// through the proxy to any other.
    async fn reach(&self, registry: &str, deadline: Duration) -> Result<oci_client::Client, RunnerError> {
        if self.is_known(registry) {
            return Ok(nuage_clients::registry::client(self.insecure, deadline));
        }
        let proxy = self
            .proxy
            .get_or_try_init(|| async {
                let destinations = Destinations {
                    refused: self.addresses(self.own.as_slice()).await,
                    allowed: self.addresses(&self.listed).await,
                };
                registry_proxy::start(destinations, deadline).await
            })
            .await
            .map_err(|error| RunnerError::RegistryRefused {
                registry: registry.to_owned(),
                reason: format!("the proxy to it does not start: {error}"),
            })?;
        Ok(nuage_clients::registry::client_through(proxy, deadline))
    }

    /// Returns the port of a registry named without one: HTTPS's, or HTTP's when `insecure`.
    fn port(&self) -> u16 {
        if self.insecure { 80 } else { 443 }
    }

    /// Returns whether `registry` is the own one or a listed one.
    fn is_known(&self, registry: &str) -> bool {
        self.own
            .iter()
            .chain(&self.listed)
            .any(|known| same_registry(known, registry))
    }

    /// Returns the addresses `registries` resolve to now (those that do).
    async fn addresses(&self, registries: &[String]) -> Vec<SocketAddr> {
        nuage_core::validate::resolve_each(registries, self.port()).await
    }

    /// Returns whether the runner may pull from `registry` (`host[:port]`, as an image names
    /// it); an error naming it and why not.
    pub(crate) async fn check(&self, registry: &str) -> Result<(), RunnerError> {
        if self.is_known(registry) {
            return Ok(());
        }
        let refused = |reason: String| RunnerError::RegistryRefused {
            registry: registry.to_owned(),
            reason,
        };
        let addresses = nuage_core::validate::public_addresses(with_port(registry, self.port()))
            .await
            .map_err(|error| refused(format!("it does not resolve: {error}")))?
            .ok_or_else(|| {
                refused(
                    "its operator pulls from registries with public addresses only, and from those listed in \
                     `runner.tenant_registries`"
                        .to_owned(),
                )
            })?;
        if let Some(own) = &self.own
            && self
                .addresses(std::slice::from_ref(own))
                .await
                .iter()
                .any(|own| addresses.iter().any(|address| same_address(own, address)))
        {
            return Err(refused(format!(
                "it is this installation's registry under another name: name it `{own}`"
            )));
        }
        Ok(())
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
            ..Registries::default()
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
    async fn any_other_registry_is_reached_through_the_proxy_alone() {
        // As a name that answered a public address when checked, then this one, or as a redirect
        // from a public registry would lead the client: to this machine's loopback.
        let here = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let registry = here.local_addr().unwrap().to_string();
        let registries = Registries {
            insecure: false,
            ..Registries::default()
        };
        let client = registries.reach(&registry, Duration::from_secs(5)).await.unwrap();
        let reference: oci_client::Reference = format!("{registry}/app:latest").parse().unwrap();
        let error = client
            .fetch_manifest_digest(&reference, &oci_client::secrets::RegistryAuth::Anonymous)
            .await
            .unwrap_err();
        // The proxy refused it: nothing ever connected here.
        let connected = tokio::time::timeout(Duration::from_millis(200), here.accept()).await;
        assert!(
            connected.is_err(),
            "the client reached {registry} past the proxy; it failed with {error}"
        );
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
