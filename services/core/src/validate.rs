//! Validation rules shared by several resources (namespaces, functions, containers).

use crate::error::{ApiError, Reason, Violation};
use std::collections::HashMap;

/// The most environment variables one resource may carry.
pub const MAX_ENVIRONMENT_VARIABLES: usize = 100;
/// The longest environment variable value.
pub const MAX_ENVIRONMENT_VALUE_LENGTH: usize = 1000;
/// The longest environment variable name.
pub const MAX_ENVIRONMENT_NAME_LENGTH: usize = 256;

/// Checks a set of environment variables and returns every violation at once: names
/// `[A-Za-z_][A-Za-z0-9_]*`, at most 100 entries, values at most 1000 characters, and the `SCW_`
/// prefix reserved for the platform.
pub fn environment_variables(argument: &str, variables: &HashMap<String, String>) -> Result<(), ApiError> {
    let mut violations = Vec::new();
    if variables.len() > MAX_ENVIRONMENT_VARIABLES {
        violations.push(Violation {
            argument_name: argument.to_owned(),
            reason: Reason::Constraint.as_str().to_owned(),
            help_message: format!(
                "at most {MAX_ENVIRONMENT_VARIABLES} environment variables are allowed, {} were given",
                variables.len()
            ),
        });
    }
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort();
    for name in names {
        let value = &variables[name];
        let argument_name = format!("{argument}.{name}");
        let mut refuse = |reason: Reason, help: String| {
            violations.push(Violation {
                argument_name: argument_name.clone(),
                reason: reason.as_str().to_owned(),
                help_message: help,
            })
        };
        if !is_environment_name(name) {
            refuse(
                Reason::Format,
                format!(
                    "variable name `{name}` must match [A-Za-z_][A-Za-z0-9_]* and be at most {MAX_ENVIRONMENT_NAME_LENGTH} characters"
                ),
            );
        } else if name.to_ascii_uppercase().starts_with("SCW_") {
            refuse(
                Reason::Constraint,
                format!("variable name `{name}` uses the reserved prefix `SCW_`"),
            );
        }
        if let Some((reason, help)) = value_problem(name, value) {
            refuse(reason, help);
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_arguments(violations))
    }
}

/// Returns what is wrong with `value` as the value of variable `name`, plain or secret: longer
/// than [`MAX_ENVIRONMENT_VALUE_LENGTH`], or holding a NUL, which no process's environment can
/// carry (and which would end the value early wherever variables are passed NUL-separated).
pub(crate) fn value_problem(name: &str, value: &str) -> Option<(Reason, String)> {
    let length = value.chars().count();
    if length > MAX_ENVIRONMENT_VALUE_LENGTH {
        return Some((
            Reason::Constraint,
            format!(
                "value of `{name}` is {length} characters long; at most {MAX_ENVIRONMENT_VALUE_LENGTH} are allowed"
            ),
        ));
    }
    value.contains('\0').then(|| {
        (
            Reason::Format,
            format!("value of `{name}` holds a NUL character, which no environment can carry"),
        )
    })
}

pub(crate) fn is_environment_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_ENVIRONMENT_NAME_LENGTH
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The most tags one resource may carry.
pub const MAX_TAGS: usize = 64;
/// The longest tag.
pub const MAX_TAG_LENGTH: usize = 128;

/// The tags of a namespace, function or container: free text, in the order given, each
/// non-empty and at most [`MAX_TAG_LENGTH`] characters, at most [`MAX_TAGS`] of them. Stored as
/// a JSON array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<String>);

impl Tags {
    /// Returns `values` as tags, or an error naming `argument` (and the offending tag).
    pub fn parse(argument: &str, values: Vec<String>) -> Result<Self, ApiError> {
        if values.len() > MAX_TAGS {
            return Err(ApiError::invalid_argument(
                argument,
                Reason::Constraint,
                format!("at most {MAX_TAGS} tags are allowed, {} were given", values.len()),
            ));
        }
        for (index, tag) in values.iter().enumerate() {
            let length = tag.chars().count();
            if length == 0 || length > MAX_TAG_LENGTH || tag.chars().any(char::is_control) {
                return Err(ApiError::invalid_argument(
                    format!("{argument}.{index}"),
                    Reason::Constraint,
                    format!("a tag has 1 to {MAX_TAG_LENGTH} characters and no control characters, got `{tag}`"),
                ));
            }
        }
        Ok(Self(values))
    }

    /// Returns the tags stored as `json`.
    pub fn from_json(json: &str) -> Result<Self, String> {
        serde_json::from_str(json)
            .map(Self)
            .map_err(|error| format!("stored tags do not parse: {error}"))
    }

    /// Returns the stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Returns the tags.
    pub fn values(&self) -> &[String] {
        &self.0
    }

    /// Returns the tags, consuming them.
    pub fn into_values(self) -> Vec<String> {
        self.0
    }
}

/// The longest description of a namespace, a function or a container, in characters.
pub const MAX_DESCRIPTION_LENGTH: usize = 255;

/// Checks the description of a namespace, a function or a container: at most
/// [`MAX_DESCRIPTION_LENGTH`] characters; the error says how many were given.
pub fn description(value: &str) -> Result<(), ApiError> {
    let length = value.chars().count();
    if length > MAX_DESCRIPTION_LENGTH {
        return Err(ApiError::invalid_argument(
            "description",
            Reason::Constraint,
            format!("must be at most {MAX_DESCRIPTION_LENGTH} characters, {length} were given"),
        ));
    }
    Ok(())
}

/// Checks that `value` (`argument` names it) is at most `max_chars` characters.
pub fn at_most_chars(argument: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.chars().count() > max_chars {
        return Err(ApiError::invalid_argument(
            argument,
            Reason::Constraint,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// Checks that `value`, which `argument` names and the request must give, is not empty.
pub fn required(argument: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::required(argument));
    }
    Ok(())
}

/// Checks a short text on one line (a name, a reference) that `argument` names: at most
/// `max_chars` characters, none of them a control.
pub fn short_text(argument: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    at_most_chars(argument, value, max_chars)?;
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_argument(
            argument,
            Reason::Format,
            "must not hold control characters",
        ));
    }
    Ok(())
}

/// Longest destination path, in bytes.
const MAX_DESTINATION_PATH_BYTES: usize = 1024;

/// Checks where a trigger or cron calls its application (`argument`: `destination_config`):
/// `path` a URL path starting with `/` (a query allowed, no fragment), `method` one of get,
/// post, put, patch and delete, lowercase.
pub fn destination(argument: &str, path: &str, method: &str) -> Result<(), ApiError> {
    let valid_path = path.starts_with('/')
        && path.len() <= MAX_DESTINATION_PATH_BYTES
        && !path.contains('#')
        && path.parse::<http::uri::PathAndQuery>().is_ok();
    if !valid_path {
        return Err(ApiError::invalid_argument(
            format!("{argument}.http_path"),
            Reason::Format,
            format!(
                "must be a URL path starting with `/`, at most {MAX_DESTINATION_PATH_BYTES} bytes, without spaces, \
                 got `{path}`"
            ),
        ));
    }
    if !matches!(method, "get" | "post" | "put" | "patch" | "delete") {
        return Err(ApiError::invalid_argument(
            format!("{argument}.http_method"),
            Reason::Constraint,
            format!("must be one of get, post, put, patch and delete, got `{method}`"),
        ));
    }
    Ok(())
}

/// Checks that `value` can be a DNS label, or part of one: lowercase letters, digits and
/// hyphens, starting with a letter, not ending with a hyphen, at most `max_length` long.
pub fn dns_label(argument: &str, value: &str, max_length: usize) -> Result<(), ApiError> {
    let refuse = |reason: Reason, help: String| Err(ApiError::invalid_argument(argument, reason, help));
    if value.is_empty() {
        return refuse(Reason::Required, "must not be empty".to_owned());
    }
    if value.len() > max_length {
        return refuse(
            Reason::Constraint,
            format!("must be at most {max_length} characters, `{value}` has {}", value.len()),
        );
    }
    let valid_chars = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let valid_ends = value.starts_with(|c: char| c.is_ascii_lowercase()) && !value.ends_with('-');
    if !valid_chars || !valid_ends {
        return refuse(
            Reason::Format,
            format!(
                "`{value}` must contain only lowercase letters, digits and hyphens, start with a letter and not end with a hyphen"
            ),
        );
    }
    Ok(())
}

/// Returns whether `ip` is a public unicast address: none of loopback, private, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast, unspecified or reserved ranges.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        std::net::IpAddr::V6(ip) => {
            if let Some(mapped) = ip.to_ipv4_mapped() {
                return is_public(std::net::IpAddr::V4(mapped));
            }
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && ip.segments()[1] == 0x0db8
                || first == 0x0064)
        }
    }
}

/// Returns `authority` (`host`, `host:port`, `[v6]` or `[v6]:port`) with a port: its own, or
/// `default`.
pub fn with_port(authority: &str, default: u16) -> String {
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']')));
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default}")
    }
}

/// Returns whether `a` and `b` are one socket address: the same port, and the same IP once an
/// IPv4-mapped IPv6 address is read as the IPv4 one it maps.
pub fn same_address(a: &std::net::SocketAddr, b: &std::net::SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// Returns the addresses `authorities` (each `host[:port]`, `default_port` where it names none)
/// resolve to now; one that does not resolve adds none.
pub async fn resolve_each<S: AsRef<str> + Sync>(authorities: &[S], default_port: u16) -> Vec<std::net::SocketAddr> {
    let mut addresses = Vec::new();
    for authority in authorities {
        if let Ok(resolved) = tokio::net::lookup_host(with_port(authority.as_ref(), default_port)).await {
            addresses.extend(resolved);
        }
    }
    addresses
}

/// Returns whether `ip` is an address of this host, in whatever range: one of its interfaces
/// holds it (a socket can be bound to it). Whatever listens on the host's public address
/// answers a connection made from the host itself.
pub fn is_this_host(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind(std::net::SocketAddr::new(ip.to_canonical(), 0)).is_ok()
}

/// Returns whether the platform may connect to `ip` on a tenant's word: a public address
/// ([`is_public`]) that is none of this host's ([`is_this_host`]).
pub fn is_tenant_destination(ip: std::net::IpAddr) -> bool {
    is_public(ip) && !is_this_host(ip)
}

/// Resolves `address` (`host:port`, or a host and a port); returns what it resolves to when
/// that is at least one address and every one is a [tenant destination](is_tenant_destination),
/// `None` otherwise: a destination a tenant names that the platform may connect to. Connecting
/// to what is returned, rather than resolving the name again, keeps a name from moving to a
/// private address between the check and the connection.
pub async fn public_addresses(
    address: impl tokio::net::ToSocketAddrs,
) -> std::io::Result<Option<Vec<std::net::SocketAddr>>> {
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host(address).await?.collect();
    let public = !addresses.is_empty() && addresses.iter().all(|address| is_tenant_destination(address.ip()));
    Ok(public.then_some(addresses))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_authority_keeps_its_port_or_gets_the_default() {
        for (authority, expected) in [
            ("nats.example", "nats.example:4222"),
            ("nats.example:5222", "nats.example:5222"),
            ("[::1]", "[::1]:4222"),
            ("[::1]:5222", "[::1]:5222"),
        ] {
            assert_eq!(super::with_port(authority, 4222), expected);
        }
    }

    #[test]
    fn this_hosts_addresses_are_no_tenant_destination_whatever_their_range() {
        use std::net::IpAddr;
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(super::is_this_host(loopback));
        assert!(super::is_this_host("::ffff:127.0.0.1".parse().unwrap()));
        // A public address no interface of this machine holds.
        let elsewhere: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(!super::is_this_host(elsewhere));
        assert!(super::is_tenant_destination(elsewhere));
        assert!(!super::is_tenant_destination(loopback));
    }

    #[test]
    fn destinations_are_url_paths_and_lowercase_methods() {
        for (path, method) in [("/", "post"), ("/hooks/cron?x=1", "put"), ("/a%20b", "delete")] {
            destination("destination_config", path, method).unwrap_or_else(|error| panic!("{path}: {error}"));
        }
        for path in [
            "hooks",
            "",
            "/a b",
            "/a#b",
            "/a\u{7}",
            &format!("/{}", "a".repeat(1024)),
        ] {
            let error = destination("destination_config", path, "post").unwrap_err();
            assert_eq!(
                error.violations[0].argument_name, "destination_config.http_path",
                "{path}"
            );
        }
        for method in ["POST", "head", "unknown_http_method", ""] {
            let error = destination("destination_config", "/", method).unwrap_err();
            assert_eq!(
                error.violations[0].argument_name, "destination_config.http_method",
                "{method}"
            );
        }
    }

    use super::*;

    fn variables(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_rules_name_each_offending_variable() {
        assert!(environment_variables("environment_variables", &variables(&[("A_1", "x"), ("_b", "")])).is_ok());
        let long = "x".repeat(1001);
        let error = environment_variables(
            "environment_variables",
            &variables(&[("1BAD", "x"), ("SCW_X", "x"), ("LONG", &long), ("OK", "y")]),
        )
        .unwrap_err();
        let names: Vec<_> = error.violations.iter().map(|v| v.argument_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "environment_variables.1BAD",
                "environment_variables.LONG",
                "environment_variables.SCW_X"
            ]
        );
        let many: HashMap<_, _> = (0..101).map(|i| (format!("V{i}"), String::new())).collect();
        assert!(environment_variables("environment_variables", &many).is_err());
    }

    #[test]
    fn tags_are_checked_and_stored_as_json() {
        let tags = Tags::parse("tags", vec!["a b".into(), "é".into()]).unwrap();
        assert_eq!(Tags::from_json(&tags.to_json()).unwrap(), tags);
        assert!(Tags::parse("tags", vec![String::new()]).is_err());
        assert!(Tags::parse("tags", vec!["x".repeat(129)]).is_err());
        assert!(Tags::parse("tags", vec!["t".into(); 65]).is_err());
    }

    #[test]
    fn dns_labels() {
        assert!(dns_label("name", "my-ns-1", 34).is_ok());
        for bad in ["", "My", "-a", "a-", "a_b", "1abc", &"a".repeat(35)] {
            assert!(dns_label("name", bad, 34).is_err(), "{bad} accepted");
        }
    }
}
