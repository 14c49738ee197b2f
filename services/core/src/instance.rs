//! Where an instance answers, and how to open a connection to it.
//!
//! An instance of the local backend has a network namespace of its own, with nothing in it but
//! its loopback: it binds no port on any host interface, and nothing outside can open a
//! connection to it except a process allowed to enter its namespace (the router and the runner,
//! which run as root). A socket keeps the namespace of the thread that created it, so a
//! connection is opened by entering the instance's namespace just long enough to create the
//! socket, then returning: the connection lives in the instance's namespace while the router does
//! not. The runner names the namespace by a process that lives in it (`/proc/<pid>/ns/net`) and
//! the namespace's inode, so that a recycled pid is never mistaken for the instance.

use std::fmt;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::str::FromStr;
use std::sync::OnceLock;

/// An instance's address: a TCP address, inside the network namespace of `pid` when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceAddress {
    /// The address the instance listens on (in its own namespace, when it has one).
    pub socket: SocketAddr,
    /// The namespace: a process in it and the namespace's inode.
    pub namespace: Option<(u32, u64)>,
}

impl fmt::Display for InstanceAddress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace {
            Some((pid, inode)) => write!(formatter, "{}@net:{pid}:{inode}", self.socket),
            None => write!(formatter, "{}", self.socket),
        }
    }
}

impl FromStr for InstanceAddress {
    type Err = String;

    /// Parses `ip:port` or `ip:port@net:<pid>:<inode>`.
    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("`{text}` is not an instance address");
        let (socket, namespace) = match text.split_once("@net:") {
            Some((socket, namespace)) => {
                let (pid, inode) = namespace.split_once(':').ok_or_else(invalid)?;
                let pid = pid.parse().map_err(|_| invalid())?;
                let inode = inode.parse().map_err(|_| invalid())?;
                (socket, Some((pid, inode)))
            }
            None => (text, None),
        };
        Ok(Self {
            socket: socket.parse().map_err(|_| invalid())?,
            namespace,
        })
    }
}

/// The network namespace this process started in (its main thread's), to come back to.
fn host_namespace() -> std::io::Result<&'static File> {
    static HOST: OnceLock<File> = OnceLock::new();
    if let Some(file) = HOST.get() {
        return Ok(file);
    }
    let file = File::open("/proc/self/ns/net")?;
    Ok(HOST.get_or_init(|| file))
}

/// Returns the inode of the network namespace of `pid`, which names it.
pub fn namespace_of(pid: u32) -> std::io::Result<u64> {
    Ok(std::fs::metadata(format!("/proc/{pid}/ns/net"))?.ino())
}

/// Returns the inode of this process's own network namespace.
pub fn own_namespace() -> std::io::Result<u64> {
    Ok(host_namespace()?.metadata()?.ino())
}

impl InstanceAddress {
    /// The `Host` an HTTP request to the instance names when its client named none.
    pub fn host(&self) -> String {
        self.socket.to_string()
    }

    /// Opens a TCP connection to the instance, from inside its namespace when it has one.
    pub async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        let Some((pid, inode)) = self.namespace else {
            return tokio::net::TcpStream::connect(self.socket).await;
        };
        let namespace = File::open(format!("/proc/{pid}/ns/net"))?;
        if namespace.metadata()?.ino() != inode {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the instance's network namespace is gone",
            ));
        }
        let socket = socket_in(&namespace, self.socket)?;
        tokio::net::TcpSocket::from_std_stream(socket.into())
            .connect(self.socket)
            .await
    }
}

/// Creates a non-blocking TCP socket for `address` in the network namespace `namespace`: this
/// thread enters it, creates the socket and comes back before anything else runs on it.
fn socket_in(namespace: &File, address: SocketAddr) -> std::io::Result<socket2::Socket> {
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    use std::os::fd::AsFd;
    let host = host_namespace()?;
    move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Network))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(address), socket2::Type::STREAM, None);
    // Staying in a tenant's namespace would put every later socket of this thread there.
    if let Err(error) = move_into_link_name_space(host.as_fd(), Some(LinkNameSpaceType::Network)) {
        tracing::error!(%error, "cannot return to the host's network namespace");
        std::process::abort();
    }
    let socket = socket?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_with_and_without_a_namespace() {
        for text in ["127.0.0.1:8080", "127.0.0.1:8080@net:42:4026532174"] {
            let address: InstanceAddress = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
            assert_eq!(address.host(), "127.0.0.1:8080");
        }
        assert!("127.0.0.1:8080@net:x:1".parse::<InstanceAddress>().is_err());
        assert!("nowhere".parse::<InstanceAddress>().is_err());
    }
}
