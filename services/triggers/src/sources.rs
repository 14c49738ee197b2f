//! Connections to NATS servers: one per server (and login), shared by every trigger on it,
//! made when a trigger first needs it and kept; the client reconnects (and resubscribes) by
//! itself when a connection drops. What the server reports later (`-ERR`, such as a
//! subscription its permissions refuse) reaches every trigger on the connection.

use crate::config::NatsServer;
use async_nats::{Client, ConnectOptions, Event};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The connections of one replica, by server.
#[derive(Debug, Default)]
pub struct Connections {
    timeout: Duration,
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
            clients: Mutex::default(),
        }
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
    use super::refuses;

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
