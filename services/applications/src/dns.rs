//! The DNS question of the CNAME check: what a host name is a CNAME to, asked of the system's
//! resolvers or of the one the operator named, with no cache (a tenant who just fixed its
//! record is answered from DNS, not from an earlier miss).

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::net::SocketAddr;
use std::time::Duration;

/// How long one question may take (each try; two tries).
const QUESTION_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks DNS what host names are CNAMEs to.
#[derive(Clone)]
pub struct CnameResolver {
    resolver: TokioResolver,
}

impl std::fmt::Debug for CnameResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CnameResolver")
    }
}

impl CnameResolver {
    /// Returns a resolver asking `server`, or the system's resolvers (`/etc/resolv.conf`).
    pub fn new(server: Option<SocketAddr>) -> Result<Self, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(address) => {
                let mut connection = ConnectionConfig::udp();
                connection.port = address.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = address.port();
                let name_server = NameServerConfig::new(address.ip(), true, vec![connection, tcp]);
                TokioResolver::builder_with_config(ResolverConfig::from_name_servers(vec![name_server]), provider)
            }
            None => TokioResolver::builder(provider)
                .map_err(|error| format!("cannot read the system's DNS configuration: {error}"))?,
        };
        let options = builder.options_mut();
        options.cache_size = 0;
        options.timeout = QUESTION_TIMEOUT;
        options.attempts = 2;
        let resolver = builder
            .build()
            .map_err(|error| format!("cannot make a DNS resolver: {error}"))?;
        Ok(Self { resolver })
    }

    /// Returns what `hostname` is a CNAME to (lower-case, no trailing dot), `None` when it has
    /// no CNAME record; `Err` says why DNS could not tell.
    pub async fn cname(&self, hostname: &str) -> Result<Option<String>, String> {
        // Fully qualified: no search domain is tried.
        let name = format!("{}.", hostname.trim_end_matches('.'));
        match self.resolver.lookup(name.as_str(), RecordType::CNAME).await {
            Ok(lookup) => Ok(lookup.answers().iter().find_map(|record| match &record.data {
                RData::CNAME(target) => Some(target.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })),
            Err(error) if error.is_no_records_found() => Ok(None),
            Err(error) => Err(format!("the DNS lookup of `{hostname}` failed: {error}")),
        }
    }
}
