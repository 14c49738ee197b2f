//! Configuration of the triggers service: where NATS accounts are, and how messages are
//! delivered.

use nuage_core::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use uuid::Uuid;

/// The `[triggers]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TriggersConfig {
    /// The NATS servers that Messaging and Queuing accounts (`mnq_nats_account_id`) map to.
    pub nats: NatsConfig,
    /// Milliseconds between two looks at the triggers table for changes made through another
    /// replica (changes made through this one apply at once).
    pub sync_ms: u64,
    /// Tries of one message before it is given up (at least 1).
    pub delivery_attempts: u32,
    /// Milliseconds before the second try of a message; each further try waits twice as long,
    /// up to `max_backoff_ms`.
    pub backoff_ms: u64,
    /// The longest wait between two tries of a message (ms).
    pub max_backoff_ms: u64,
    /// Messages of one trigger delivered at once by one replica; more wait their turn.
    pub concurrent_deliveries: usize,
    /// Seconds between two tries to reach a NATS server that could not be reached.
    pub reconnect_seconds: u64,
}

impl Default for TriggersConfig {
    fn default() -> Self {
        Self {
            nats: NatsConfig::default(),
            sync_ms: 500,
            delivery_attempts: 3,
            backoff_ms: 500,
            max_backoff_ms: 10_000,
            concurrent_deliveries: 16,
            reconnect_seconds: 5,
        }
    }
}

/// `[triggers.nats]`: the installation's default NATS server, and accounts mapped to servers
/// of their own. Without a default server, only mapped accounts can be used.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// The default server, e.g. `nats://127.0.0.1:4222`: any account not in `accounts` is read
    /// there. Unset: NATS triggers only for mapped accounts.
    pub url: Option<String>,
    /// How nuage logs in to the default server (`[triggers.nats.credentials]`).
    pub credentials: NatsCredentials,
    /// Milliseconds a connection to a server may take.
    pub connect_timeout_ms: u64,
    /// Accounts by id (`mnq_nats_account_id`), each on a server of its own.
    pub accounts: BTreeMap<String, NatsAccount>,
    /// On a server that several organizations share (the default one, and an account mapped
    /// to no single organization), each organization's triggers read only subjects under
    /// `<subject_prefix>.<organization id>.`: a trigger on `orders` reads
    /// `tenants.<organization id>.orders`, and its function sees `orders`. Publishers are
    /// given credentials allowed only under their own organization's prefix. Empty: every
    /// tenant reads the same subjects (an installation with one tenant only).
    pub subject_prefix: String,
    /// NATS servers (`host:port`) tenants may name as their own (containers v1
    /// `nats_config.server_urls`). The triggers service connects to what a tenant names: by
    /// default, nothing.
    pub tenant_servers: Vec<String>,
    /// Whether tenants may also name any server all of whose addresses are public (never
    /// loopback, private, link-local, shared or reserved ranges): it is connected to at the
    /// address checked, and servers it advertises are not followed.
    pub public_servers: bool,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: None,
            credentials: NatsCredentials::default(),
            connect_timeout_ms: 5_000,
            accounts: BTreeMap::new(),
            subject_prefix: "tenants".to_owned(),
            tenant_servers: Vec::new(),
            public_servers: false,
        }
    }
}

/// How nuage logs in to a NATS server: at most one of a `.creds` file (what NATS accounts,
/// Scaleway's among them, hand out), a token, or a user and password. None: anonymous.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsCredentials {
    /// A `.creds` file (user JWT and nkey seed).
    pub file: Option<PathBuf>,
    /// A token.
    pub token: Option<Secret>,
    /// A user, with `password`.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<Secret>,
    /// A `.creds` file's content, as a tenant gives it for its own servers (never configured).
    #[serde(skip)]
    pub content: Option<Secret>,
}

/// `[triggers.nats.accounts.<id>]`: one account's server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsAccount {
    /// Its server; default: the default server.
    pub url: Option<String>,
    /// How nuage logs in to it (`credentials = { file = "..." }`).
    pub credentials: NatsCredentials,
    /// The one organization allowed to use it; unset: every tenant. Another organization
    /// naming it finds no such account.
    pub organization_id: Option<Uuid>,
}

/// A NATS server and how to log in to it, as a trigger's account resolves.
#[derive(Debug, Clone)]
pub struct NatsServer {
    /// Its URL.
    pub url: String,
    /// How to log in.
    pub credentials: NatsCredentials,
    /// Where the trigger's subjects are on it, when it is shared: `tenants.<organization id>`.
    pub scope: Option<String>,
    /// The trigger whose own server (a tenant's) it is: its connection is its alone, and
    /// servers it advertises are not followed.
    pub owner: Option<Uuid>,
    /// For a tenant's server named by a host name and connected to at an address it resolved
    /// to: that address and the name, which its certificate is checked against over TLS.
    pub names: Vec<(IpAddr, String)>,
}

impl NatsServer {
    /// Returns the subject a trigger on `subject` reads on this server.
    pub fn subject(&self, subject: &str) -> String {
        match &self.scope {
            Some(scope) => format!("{scope}.{subject}"),
            None => subject.to_owned(),
        }
    }

    /// Returns `subject`, a message's subject on this server, as the trigger's owner names it.
    pub fn unscoped<'a>(&self, subject: &'a str) -> &'a str {
        self.scope
            .as_deref()
            .and_then(|scope| subject.strip_prefix(scope))
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(subject)
    }

    /// Returns what tells two servers apart: triggers on the same one share a connection.
    pub fn key(&self) -> String {
        let credentials = &self.credentials;
        format!(
            "{}|{}|{:?}|{}|{}|{}",
            self.owner.map(|owner| owner.to_string()).unwrap_or_default(),
            self.url,
            self.names,
            credentials
                .file
                .as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
            credentials.user.as_deref().unwrap_or_default(),
            credentials.token.is_some(),
        )
    }
}

impl NatsConfig {
    /// Returns the server of account `account_id` for `organization_id`: its own, or the
    /// default one; `None` when there is neither, or the account is another organization's.
    /// On a server shared by organizations, the trigger's subjects are scoped to its own.
    pub fn server(&self, account_id: &str, organization_id: Uuid) -> Option<NatsServer> {
        let scope = (!self.subject_prefix.is_empty()).then(|| format!("{}.{organization_id}", self.subject_prefix));
        match self.accounts.get(account_id) {
            Some(account) => {
                let dedicated = match account.organization_id {
                    Some(owner) if owner != organization_id => return None,
                    owner => owner.is_some(),
                };
                Some(NatsServer {
                    url: account.url.clone().or_else(|| self.url.clone())?,
                    credentials: account.credentials.clone(),
                    scope: if dedicated { None } else { scope },
                    owner: None,
                    names: Vec::new(),
                })
            }
            None => Some(NatsServer {
                url: self.url.clone()?,
                credentials: self.credentials.clone(),
                scope,
                owner: None,
                names: Vec::new(),
            }),
        }
    }

    /// Returns where to connect for `url`, a server a tenant names as its own, or why it may
    /// not be used: it must be in `tenant_servers`, or (with `public_servers`) have public
    /// addresses only; then it is connected to at the address checked, its certificate (over
    /// TLS) checked against the name the tenant gave.
    pub async fn tenant_server(&self, url: &str) -> Result<TenantServer, String> {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "nats" | "tls"))
            .ok_or_else(|| format!("`{url}` is not a NATS URL such as nats://nats.example.com:4222"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty()
            || authority.contains(['/', '@', '?', '#'])
            || authority.chars().any(char::is_whitespace)
        {
            return Err(format!(
                "`{url}` is not a NATS URL such as nats://nats.example.com:4222 (no user, path or query)"
            ));
        }
        let address = nuage_core::validate::with_port(authority, NATS_PORT);
        if self
            .tenant_servers
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&address))
        {
            return Ok(TenantServer {
                url: format!("{scheme}://{address}"),
                name: None,
            });
        }
        let refused = || {
            format!(
                "`{url}` is not a NATS server this installation reads for tenants; its operator allows {}",
                if self.public_servers {
                    "servers with public addresses only"
                } else {
                    "none but those in triggers.nats.tenant_servers"
                }
            )
        };
        if !self.public_servers {
            return Err(refused());
        }
        let resolved = nuage_core::validate::public_addresses(&address)
            .await
            .map_err(|error| format!("`{url}` does not resolve: {error}"))?
            .ok_or_else(refused)?;
        // The installation's own servers under another name: read there as a server of the
        // tenant's own, its subjects would not be scoped to its organization.
        let own = self.own_addresses().await;
        if resolved
            .iter()
            .any(|address| own.iter().any(|own| nuage_core::validate::same_address(own, address)))
        {
            return Err(format!(
                "`{url}` is this installation's own NATS server: a trigger reads it through its account, not as a \
                 server of its own"
            ));
        }
        // Checked once, connected to as checked: the name cannot move it elsewhere later (a
        // name that turns into 127.0.0.1:<port> would make this host's loopback services
        // answer, and the trigger's error tell them apart).
        let checked = resolved[0];
        let host = address.rsplit_once(':').map_or(address.as_str(), |(host, _)| host);
        let named = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_err();
        Ok(TenantServer {
            url: format!("{scheme}://{checked}"),
            name: named.then(|| (checked.ip(), host.to_owned())),
        })
    }
}

/// Where to connect for a server a tenant names as its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantServer {
    /// The URL to connect to: at the address checked, when the tenant gave a name.
    pub url: String,
    /// The address and the name the tenant gave for it, which its certificate must hold.
    pub name: Option<(IpAddr, String)>,
}

/// NATS's port, where a URL names none.
const NATS_PORT: u16 = 4222;

impl NatsConfig {
    /// Returns the addresses the installation's own servers (`url` and the accounts') resolve
    /// to now (those that do).
    async fn own_addresses(&self) -> Vec<std::net::SocketAddr> {
        let urls = self
            .url
            .iter()
            .chain(self.accounts.values().filter_map(|account| account.url.as_ref()));
        let authorities: Vec<&str> = urls
            .filter_map(|url| {
                let (_, authority) = url.split_once("://")?;
                let authority = authority.trim_end_matches('/');
                Some(authority.rsplit_once('@').map_or(authority, |(_, host)| host))
            })
            .collect();
        nuage_core::validate::resolve_each(&authorities, NATS_PORT).await
    }
}

impl TriggersConfig {
    /// Checks settings that depend on each other.
    pub fn validate(&self) -> Result<(), String> {
        let servers = self
            .nats
            .url
            .iter()
            .chain(self.nats.accounts.values().filter_map(|account| account.url.as_ref()));
        for url in servers {
            let scheme = url.split_once("://").map(|(scheme, _)| scheme);
            if !matches!(scheme, Some("nats" | "tls")) {
                return Err(format!(
                    "triggers.nats: `{url}` is not a NATS URL (nats://host:port or tls://host:port)"
                ));
            }
        }
        let credentials = std::iter::once(&self.nats.credentials)
            .chain(self.nats.accounts.values().map(|account| &account.credentials));
        for credentials in credentials {
            let given = [
                credentials.file.is_some(),
                credentials.token.is_some(),
                credentials.user.is_some() || credentials.password.is_some(),
            ];
            if given.iter().filter(|given| **given).count() > 1 {
                return Err(
                    "triggers.nats: give at most one of credentials.file, credentials.token, and user with password"
                        .to_owned(),
                );
            }
            if credentials.user.is_some() != credentials.password.is_some() {
                return Err("triggers.nats: credentials.user and credentials.password go together".to_owned());
            }
        }
        for server in &self.nats.tenant_servers {
            let port = server.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(_))) if !host.is_empty() && !host.contains('/')) {
                return Err(format!(
                    "triggers.nats.tenant_servers: `{server}` is not a host:port such as nats.example.com:4222"
                ));
            }
        }
        if self.delivery_attempts == 0 || self.concurrent_deliveries == 0 {
            return Err("triggers.delivery_attempts and triggers.concurrent_deliveries must be positive".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_resolve_to_their_server_or_the_default_and_only_for_their_organization() {
        let mine = Uuid::new_v4();
        let mut config = NatsConfig::default();
        assert!(config.server("any", mine).is_none(), "no server at all");
        config.accounts.insert(
            "private".to_owned(),
            NatsAccount {
                url: Some("nats://other:4222".to_owned()),
                organization_id: Some(mine),
                ..NatsAccount::default()
            },
        );
        assert_eq!(config.server("private", mine).unwrap().url, "nats://other:4222");
        assert!(config.server("private", Uuid::new_v4()).is_none());
        assert!(config.server("any", mine).is_none(), "unmapped, and no default");
        config.url = Some("nats://default:4222".to_owned());
        assert_eq!(config.server("any", mine).unwrap().url, "nats://default:4222");
    }

    #[test]
    fn shared_servers_scope_subjects_to_the_organization_and_dedicated_accounts_do_not() {
        let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let mut config = NatsConfig {
            url: Some("nats://default:4222".to_owned()),
            ..NatsConfig::default()
        };
        config.accounts.insert(
            "shared".to_owned(),
            NatsAccount {
                url: Some("nats://shared:4222".to_owned()),
                ..NatsAccount::default()
            },
        );
        config.accounts.insert(
            "own".to_owned(),
            NatsAccount {
                organization_id: Some(mine),
                ..NatsAccount::default()
            },
        );
        for account in ["unmapped", "shared"] {
            let (server, other) = (
                config.server(account, mine).unwrap(),
                config.server(account, theirs).unwrap(),
            );
            assert_eq!(server.subject(">"), format!("tenants.{mine}.>"), "{account}");
            assert_eq!(other.subject("orders"), format!("tenants.{theirs}.orders"));
            assert_eq!(server.unscoped(&format!("tenants.{mine}.orders.eu")), "orders.eu");
        }
        let own = config.server("own", mine).unwrap();
        assert_eq!(
            (own.subject("orders"), own.unscoped("orders")),
            ("orders".to_owned(), "orders")
        );
        config.subject_prefix = String::new();
        assert_eq!(config.server("unmapped", mine).unwrap().subject("orders"), "orders");
    }

    #[tokio::test]
    async fn tenants_name_only_servers_the_operator_allows() {
        let mut config = NatsConfig {
            tenant_servers: vec!["127.0.0.1:4222".to_owned()],
            ..NatsConfig::default()
        };
        assert_eq!(
            config.tenant_server("nats://127.0.0.1:4222").await.unwrap().url,
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            config.tenant_server("nats://127.0.0.1").await.unwrap().url,
            "nats://127.0.0.1:4222"
        );
        for refused in [
            "nats://127.0.0.1:5432",
            "nats://localhost:4222",
            "nats://10.0.0.1:4222",
            "nats://[::1]:4222",
        ] {
            let error = config.tenant_server(refused).await.unwrap_err();
            assert!(
                error.contains("not a NATS server this installation reads"),
                "{refused}: {error}"
            );
        }
        for bad in [
            "http://127.0.0.1:4222",
            "nats://u:p@127.0.0.1:4222",
            "nats://127.0.0.1:4222/x",
            "127.0.0.1:4222",
        ] {
            assert!(
                config.tenant_server(bad).await.unwrap_err().contains("not a NATS URL"),
                "{bad}"
            );
        }
        config.public_servers = true;
        for refused in [
            "nats://127.0.0.2:4222",
            "nats://192.168.1.1:4222",
            "nats://169.254.169.254:4222",
            "nats://100.64.0.1:4222",
            "nats://[fd00::1]:4222",
            "nats://[::ffff:10.0.0.1]:4222",
        ] {
            assert!(config.tenant_server(refused).await.is_err(), "{refused}");
        }
        // An address is connected to as it is, its certificate checked against it.
        for (url, expected) in [
            ("nats://8.8.8.8:4222", "nats://8.8.8.8:4222"),
            ("tls://8.8.8.8", "tls://8.8.8.8:4222"),
            ("tls://[2001:4860:4860::8888]:4443", "tls://[2001:4860:4860::8888]:4443"),
        ] {
            let server = config.tenant_server(url).await.unwrap();
            assert_eq!((server.url.as_str(), server.name), (expected, None), "{url}");
        }
        // The installation's own server, public, under its address or another spelling of it.
        config.url = Some("nats://8.8.8.8:4222".to_owned());
        for own in ["nats://8.8.8.8:4222", "nats://8.8.8.8", "tls://[::ffff:8.8.8.8]:4222"] {
            let error = config.tenant_server(own).await.unwrap_err();
            assert!(error.contains("this installation's own NATS server"), "{own}: {error}");
        }
        assert!(config.tenant_server("nats://8.8.8.8:4223").await.is_ok());
    }

    #[test]
    fn bad_urls_and_mixed_credentials_are_refused() {
        let mut config = TriggersConfig::default();
        config.validate().unwrap();
        config.nats.url = Some("http://x".to_owned());
        assert!(config.validate().unwrap_err().contains("not a NATS URL"));
        config.nats.url = Some("nats://127.0.0.1:4222".to_owned());
        config.nats.credentials.token = Some(Secret::new("t"));
        config.nats.credentials.user = Some("u".to_owned());
        config.nats.credentials.password = Some(Secret::new("p"));
        assert!(config.validate().unwrap_err().contains("at most one"));
        let mut config = TriggersConfig::default();
        config.nats.tenant_servers = vec!["nats://127.0.0.1:4222".to_owned()];
        assert!(config.validate().unwrap_err().contains("not a host:port"));
        config.nats.tenant_servers = vec!["127.0.0.1:4222".to_owned()];
        config.validate().unwrap();
    }
}
