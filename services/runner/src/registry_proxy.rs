//! The proxy every connection to a registry a tenant names goes through. Checking the registry's
//! name before a pull (see `registries.rs`) is not enough: the registry may redirect a manifest
//! or a blob to another address, send the client to a token "realm" elsewhere, or its name may
//! answer another address when the client connects. The registry client speaks HTTPS only
//! through this proxy, which resolves each `CONNECT host:port` itself and tunnels to the address
//! it checked, when that address is public, none of this host's and none of the installation's
//! registry's, or is one of a registry the operator lists. Anything else is answered 403 and
//! goes nowhere.

use nuage_core::validate::{is_tenant_destination, same_address};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head the proxy reads.
const MAX_HEAD: usize = 4096;

/// Which destinations the proxy tunnels to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Destinations {
    /// Addresses never tunnelled to, though public: the installation's registry's.
    pub(crate) refused: Vec<SocketAddr>,
    /// Addresses tunnelled to, though not public: the listed registries'.
    pub(crate) allowed: Vec<SocketAddr>,
}

impl Destinations {
    /// Returns whether the proxy may connect to `address`.
    fn admit(&self, address: &SocketAddr) -> bool {
        let same = |other: &SocketAddr| same_address(other, address);
        if self.allowed.iter().any(same) {
            return true;
        }
        is_tenant_destination(address.ip()) && !self.refused.iter().any(same)
    }
}

/// Starts the proxy on loopback; returns its `http://` URL. It serves until the process ends;
/// each connection may take `deadline` to send its request and to reach its destination.
pub(crate) async fn start(destinations: Destinations, deadline: Duration) -> std::io::Result<String> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let destinations = Arc::new(destinations);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let destinations = destinations.clone();
            tokio::spawn(async move {
                if let Err(error) = tunnel(client, &destinations, deadline).await {
                    tracing::debug!(%error, "registry proxy connection ended");
                }
            });
        }
    });
    Ok(url)
}

/// Reads one `CONNECT` request from `client` and tunnels it, or answers why not.
async fn tunnel(mut client: TcpStream, destinations: &Destinations, deadline: Duration) -> std::io::Result<()> {
    let target = match tokio::time::timeout(deadline, connect_target(&mut client)).await {
        Ok(Ok(Some(target))) => target,
        Ok(Ok(None)) => return refuse(&mut client, "405 Method Not Allowed").await,
        Ok(Err(error)) => return Err(error),
        Err(_) => return Ok(()),
    };
    let addresses: Vec<SocketAddr> = match tokio::net::lookup_host(target.as_str()).await {
        Ok(addresses) => addresses.collect(),
        Err(_) => return refuse(&mut client, "502 Bad Gateway").await,
    };
    // Every address must be admitted, so that a name cannot hide a private address among public ones.
    if addresses.is_empty() || !addresses.iter().all(|address| destinations.admit(address)) {
        tracing::warn!(destination = %target, "refused a registry connection to a destination no tenant may reach");
        return refuse(&mut client, "403 Forbidden").await;
    }
    let mut upstream = match tokio::time::timeout(deadline, TcpStream::connect(&addresses[..])).await {
        Ok(Ok(upstream)) => upstream,
        _ => return refuse(&mut client, "504 Gateway Timeout").await,
    };
    client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Reads a request head; returns the `host:port` of a `CONNECT`, or none for any other method.
async fn connect_target(client: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 512];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = client.read(&mut buffer).await?;
        if read == 0 || head.len() + read > MAX_HEAD {
            return Ok(None);
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = head.split(|byte| *byte == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    Ok(match (words.next(), words.next()) {
        (Some("CONNECT"), Some(target)) => Some(target.to_owned()),
        _ => None,
    })
}

async fn refuse(client: &mut TcpStream, status: &str) -> std::io::Result<()> {
    client
        .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `request` to the proxy at `url`; returns the status line it answers and the stream.
    async fn ask(url: &str, request: String) -> (String, TcpStream) {
        let mut stream = TcpStream::connect(url.trim_start_matches("http://")).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            answer.push(byte[0]);
        }
        let answer = String::from_utf8(answer).unwrap();
        (answer.lines().next().unwrap_or_default().to_owned(), stream)
    }

    #[tokio::test]
    async fn only_admitted_destinations_are_tunnelled_to() {
        // A listed registry on loopback answers whatever it reads back.
        let listed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listed_address = listed.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listed.accept().await.unwrap();
            let mut buffer = [0u8; 5];
            stream.read_exact(&mut buffer).await.unwrap();
            stream.write_all(&buffer).await.unwrap();
        });
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_port = other.local_addr().unwrap().port();
        let destinations = Destinations {
            refused: Vec::new(),
            allowed: vec![listed_address],
        };
        let url = start(destinations, Duration::from_secs(5)).await.unwrap();

        let (status, mut tunnel) = ask(&url, format!("CONNECT {listed_address} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        assert_eq!(status, "HTTP/1.1 200 Connection Established");
        tunnel.write_all(b"hello").await.unwrap();
        let mut echoed = [0u8; 5];
        tunnel.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"hello");

        // Loopback not listed, under any name, and this machine's other addresses: refused.
        for target in [
            format!("127.0.0.1:{other_port}"),
            format!("localhost:{other_port}"),
            format!("0.0.0.0:{other_port}"),
            "169.254.169.254:80".to_owned(),
            "10.0.0.1:443".to_owned(),
        ] {
            let (status, _) = ask(&url, format!("CONNECT {target} HTTP/1.1\r\n\r\n")).await;
            assert_eq!(status, "HTTP/1.1 403 Forbidden", "{target}");
        }
        // A plain request (a redirect to `http://`) goes nowhere either.
        let (status, _) = ask(&url, format!("GET http://127.0.0.1:{other_port}/ HTTP/1.1\r\n\r\n")).await;
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    }

    #[test]
    fn the_installations_registry_is_refused_though_public() {
        let own: SocketAddr = "1.1.1.1:443".parse().unwrap();
        let destinations = Destinations {
            refused: vec![own],
            allowed: Vec::new(),
        };
        assert!(!destinations.admit(&own));
        assert!(!destinations.admit(&"[::ffff:1.1.1.1]:443".parse().unwrap()));
        assert!(destinations.admit(&"1.1.1.1:8443".parse().unwrap()));
        assert!(destinations.admit(&"8.8.8.8:443".parse().unwrap()));
    }
}
