//! The OCI registry client: the builder pushes images with it, the runner pulls them.

use oci_client::client::{ClientConfig, ClientProtocol};
use std::time::Duration;

/// Returns a registry client speaking HTTPS (plain HTTP when `insecure`: a registry on
/// loopback) whose connections wait at most a fifth of `deadline` to open and whose reads wait
/// at most `deadline` for bytes: a registry that stops answering fails the push or pull.
pub fn client(insecure: bool, deadline: Duration) -> oci_client::Client {
    let deadline = deadline.max(Duration::from_millis(100));
    oci_client::Client::new(ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        connect_timeout: Some(deadline / 5),
        read_timeout: Some(deadline),
        ..ClientConfig::default()
    })
}

/// Returns a registry client for a registry a tenant names: HTTPS only, every connection
/// (redirects and token realms included) through the proxy at `proxy` (an `http://` URL, which
/// chooses what may be reached), with the deadlines of [`client`].
pub fn client_through(proxy: &str, deadline: Duration) -> oci_client::Client {
    let deadline = deadline.max(Duration::from_millis(100));
    oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Https,
        connect_timeout: Some(deadline / 5),
        read_timeout: Some(deadline),
        https_proxy: Some(proxy.to_owned()),
        // A redirect to plain HTTP meets the proxy too, which tunnels nothing but `CONNECT`.
        http_proxy: Some(proxy.to_owned()),
        ..ClientConfig::default()
    })
}
