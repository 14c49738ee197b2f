//! Connections to NATS servers: one per server (and login), shared by every trigger on it,
//! made when a trigger first needs it and kept; the client reconnects (and resubscribes) by
//! itself when a connection drops. What the server reports later (`-ERR`, such as a
//! subscription its permissions refuse) reaches every trigger on the connection.

use crate::config::NatsServer;
use async_nats::{Client, ConnectOptions, Event};
use rustls::RootCertStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The connections of one replica, by server.
#[derive(Debug, Default)]
pub struct Connections {
    timeout: Duration,
    /// The certificate authorities trusted for tenants' servers named by a host name (read
    /// from this host when first needed).
    roots: OnceLock<Arc<RootCertStore>>,
    /// Per server: its connection once made. A server's slot is locked while connecting, so
    /// that triggers on it wait for one connection, and those on other servers do not wait.
    clients: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Connection>>>>>,
}

/// A connection to a NATS server.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Its client.
    pub client: Client,
    /// The errors the server reports on it, as it words them.
    pub errors: tokio::sync::broadcast::Sender<String>,
}

/// Returns whether `error`, as a NATS server words it, refuses a subscription to `subject`
/// (subjects are case-sensitive; the server's wording is matched in any case).
pub fn refuses(error: &str, subject: &str) -> bool {
    const REFUSAL: &str = "permissions violation for subscription to \"";
    error
        .to_ascii_lowercase()
        .find(REFUSAL)
        .and_then(|start| error.get(start + REFUSAL.len()..))
        .is_some_and(|rest| rest.strip_prefix(subject).is_some_and(|after| after.starts_with('"')))
}

impl Connections {
    /// Returns no connections yet; each attempt waits at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            roots: OnceLock::new(),
            clients: Mutex::default(),
        }
    }

    /// Returns no connections yet, trusting `roots` for tenants' servers named by a host name.
    #[cfg(test)]
    fn trusting(timeout: Duration, roots: RootCertStore) -> Self {
        let connections = Self::new(timeout);
        connections.roots.get_or_init(|| Arc::new(roots));
        connections
    }

    /// Returns a client of `server`, connecting if this replica has none; the error says why
    /// the server could not be reached, for the trigger's `error_message`.
    pub async fn client(&self, server: &NatsServer) -> Result<Connection, String> {
        let slot = self
            .clients
            .lock()
            .expect("connections lock")
            .entry(server.key())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(connection) = &*slot {
            return Ok(connection.clone());
        }
        let (errors, _) = tokio::sync::broadcast::channel(64);
        let client = self
            .connect(server, errors.clone())
            .await
            .map_err(|error| format!("cannot reach the NATS server `{}`: {error}", server.url))?;
        tracing::info!(url = %server.url, "connected to a NATS server");
        let connection = Connection { client, errors };
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn connect(
        &self,
        server: &NatsServer,
        errors: tokio::sync::broadcast::Sender<String>,
    ) -> Result<Client, String> {
        let credentials = &server.credentials;
        let mut options = ConnectOptions::new()
            .event_callback(move |event| {
                let errors = errors.clone();
                async move {
                    if let Event::ServerError(async_nats::ServerError::Other(error)) = event {
                        // Nobody listening is no one to tell.
                        let _ = errors.send(error);
                    }
                }
            })
            .name("nuage triggers")
            .connection_timeout(self.timeout)
            // Messages wait here while deliveries are busy; a full buffer drops (and the
            // server counts the subscription a slow consumer).
            .subscription_capacity(4096);
        if let Some(content) = &credentials.content {
            options = options
                .credentials(content.expose())
                .map_err(|error| format!("its credentials do not parse as a NATS `.creds` file: {error}"))?;
        } else if let Some(file) = &credentials.file {
            options = options
                .credentials_file(file)
                .await
                .map_err(|error| format!("its credentials file `{}` cannot be read: {error}", file.display()))?;
        } else if let Some(token) = &credentials.token {
            options = options.token(token.expose().to_owned());
        } else if let (Some(user), Some(password)) = (&credentials.user, &credentials.password) {
            options = options.user_and_password(user.clone(), password.expose().to_owned());
        }
        if server.owner.is_some() {
            // A tenant's server: connected to only at the addresses checked, never at those
            // it advertises.
            options = options.ignore_discovered_servers();
        }
        if !server.names.is_empty() {
            let roots = self.roots.get_or_init(|| Arc::new(crate::tls::host_roots())).clone();
            options = options.tls_client_config(crate::tls::checking_names(roots, &server.names)?);
        }
        let addresses: Vec<&str> = server.url.split(',').collect();
        // One try: a server that cannot be reached is reported at once and tried again later.
        match tokio::time::timeout(self.timeout * 2, options.connect(addresses)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis() * 2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Connections, refuses};
    use crate::config::{NatsCredentials, NatsServer};
    use rustls::RootCertStore;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use std::net::{IpAddr, Ipv4Addr};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    /// Runs `openssl` with `args` in `folder`.
    fn openssl(folder: &std::path::Path, args: &str) {
        let made = Command::new("openssl")
            .args(args.split(' '))
            .current_dir(folder)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs here (.ci/run installs it)");
        assert!(made.success(), "openssl {args}");
    }

    /// A NATS server requiring TLS, killed when dropped, whose certificate is for `name` only,
    /// signed by a certificate authority of its own.
    struct TlsNats {
        child: std::process::Child,
        folder: tempfile::TempDir,
        port: u16,
    }

    impl TlsNats {
        async fn start(name: &str) -> Self {
            let folder = tempfile::tempdir().unwrap();
            let path = folder.path();
            let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
            openssl(
                path,
                &format!("req -x509 {ec} -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem"),
            );
            openssl(
                path,
                &format!("req -new {ec} -subj /CN={name} -keyout key.pem -out req.csr"),
            );
            std::fs::write(
                path.join("ext.cnf"),
                format!("subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
            )
            .unwrap();
            openssl(
                path,
                "x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out cert.pem",
            );
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("nats-server")
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--tls"])
                .args(["--tlscert", "cert.pem", "--tlskey", "key.pem"])
                .current_dir(path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server runs here (.ci/run installs it)");
            // Killed and waited for when dropped, should it not listen.
            let nats = Self { child, folder, port };
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    return nats;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("nats-server did not listen on {port}");
        }

        fn roots(&self) -> RootCertStore {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_file(self.folder.path().join("ca.pem")).unwrap())
                .unwrap();
            roots
        }

        /// A tenant's server, connected to at 127.0.0.1 over `scheme`, named `name`.
        fn tenants(&self, scheme: &str, name: &str) -> NatsServer {
            NatsServer {
                url: format!("{scheme}://127.0.0.1:{}", self.port),
                credentials: NatsCredentials::default(),
                scope: None,
                owner: Some(uuid::Uuid::new_v4()),
                names: vec![(IpAddr::V4(Ipv4Addr::LOCALHOST), name.to_owned())],
            }
        }
    }

    impl Drop for TlsNats {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    async fn a_tenant_server_reached_at_its_checked_address_holds_a_certificate_for_its_name() {
        let nats = TlsNats::start("nats.tenant.test").await;
        let connections = Connections::trusting(Duration::from_secs(5), nats.roots());
        // tls://, and nats:// to a server that requires TLS (as hosted NATS does): both are
        // connected to at the address, and the certificate is for the name.
        for scheme in ["tls", "nats"] {
            let connection = connections.client(&nats.tenants(scheme, "nats.tenant.test")).await;
            assert!(connection.is_ok(), "{scheme}: {:?}", connection.err());
        }
        // Another name resolving there (a name moved onto a server that is not its own).
        let error = connections
            .client(&nats.tenants("tls", "elsewhere.tenant.test"))
            .await
            .unwrap_err();
        assert!(error.contains("invalid peer certificate"), "{error}");
    }

    #[tokio::test]
    async fn only_the_addresses_named_are_checked_against_names() {
        let nats = TlsNats::start("nats.tenant.test").await;
        let connections = Connections::trusting(Duration::from_secs(5), nats.roots());
        // The name is given for another address: the certificate is checked against the
        // address connected to, which it does not hold.
        let mut server = nats.tenants("tls", "nats.tenant.test");
        server.names = vec![("192.0.2.1".parse().unwrap(), "nats.tenant.test".to_owned())];
        let error = connections.client(&server).await.unwrap_err();
        assert!(error.contains("invalid peer certificate"), "{error}");
    }

    #[test]
    fn a_refusal_names_its_subject_exactly() {
        let error = "Permissions Violation for Subscription to \"Orders.EU\" using queue \"q\"";
        assert!(refuses(error, "Orders.EU"));
        assert!(!refuses(error, "orders.eu"));
        assert!(!refuses(error, "Orders"));
        assert!(!refuses(
            "Permissions Violation for Publish to \"Orders.EU\"",
            "Orders.EU"
        ));
    }
}
