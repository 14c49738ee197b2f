//! What a custom domain is made of: a [`Hostname`] (a real DNS host name, checked and
//! lower-cased), a [`DomainStatus`], and the [`Domain`] that binds one to a function or a
//! container.

use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_core::validate;
use nuage_proto::applications::v1 as wire;
use uuid::Uuid;

/// Longest host name (RFC 1035: 255 octets on the wire, 253 characters written out).
pub const MAX_HOSTNAME_LENGTH: usize = 253;
/// Longest label of a host name.
const MAX_LABEL_LENGTH: usize = 63;

/// A DNS host name a tenant routes to an application: lower-case, at least two labels of
/// letters, digits and inner hyphens, no trailing dot, not an IP address, and not under the
/// installation's own endpoint hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    /// Returns `raw` as a host name (lower-cased, a trailing dot dropped), or an error naming
    /// `hostname`; one equal to or under any of `reserved` is refused.
    pub fn parse(raw: &str, reserved: &[String]) -> Result<Self, ApiError> {
        let refuse = |help: String| ApiError::invalid_argument("hostname", Reason::Constraint, help);
        let name = raw.trim().strip_suffix('.').unwrap_or(raw.trim()).to_ascii_lowercase();
        validate::required("hostname", &name)?;
        if name.parse::<std::net::IpAddr>().is_ok() || name.starts_with('[') {
            return Err(refuse(format!(
                "`{raw}` is an IP address; give a DNS host name such as `api.example.com`"
            )));
        }
        if name.len() > MAX_HOSTNAME_LENGTH {
            return Err(refuse(format!("must be at most {MAX_HOSTNAME_LENGTH} characters")));
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(refuse(format!(
                "`{raw}` is not a fully qualified host name; give one such as `api.example.com`"
            )));
        }
        for label in &labels {
            let valid = !label.is_empty()
                && label.len() <= MAX_LABEL_LENGTH
                && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err(refuse(format!(
                    "`{raw}` is not a valid host name: each label is 1 to {MAX_LABEL_LENGTH} letters, digits \
                     or inner hyphens, separated by dots"
                )));
            }
        }
        // A numeric top-level label makes a dotted IP address of it, to some resolvers.
        if labels
            .last()
            .is_some_and(|top| top.bytes().all(|byte| byte.is_ascii_digit()))
        {
            return Err(refuse(format!(
                "`{raw}` has a numeric top-level label; it is not a host name"
            )));
        }
        if let Some(own) = reserved
            .iter()
            .find(|own| name == **own || name.ends_with(&format!(".{own}")))
        {
            return Err(refuse(format!(
                "`{raw}` is under `{own}`, where this installation's own endpoints answer; use a host name of your own"
            )));
        }
        Ok(Self(name))
    }

    /// Returns it as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns a host name as stored, already checked.
    pub(crate) fn stored(name: String) -> Self {
        Self(name)
    }
}

/// Where a domain is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainStatus {
    /// Its check has not passed yet.
    Pending,
    /// Requests for it reach its application.
    Ready,
    /// Its check did not pass in time.
    Error,
    /// Removed (only in the answer to a delete).
    Deleting,
}

impl DomainStatus {
    /// Returns its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Error => "error",
            Self::Deleting => "deleting",
        }
    }

    /// Returns the status stored as `value`.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "pending" => Self::Pending,
            "ready" => Self::Ready,
            "error" => Self::Error,
            "deleting" => Self::Deleting,
            _ => return None,
        })
    }

    fn to_proto(self) -> wire::DomainStatus {
        match self {
            Self::Pending => wire::DomainStatus::Pending,
            Self::Ready => wire::DomainStatus::Ready,
            Self::Error => wire::DomainStatus::Error,
            Self::Deleting => wire::DomainStatus::Deleting,
        }
    }
}

/// A host name of a tenant's, bound to one of its functions or containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Its id.
    pub id: Uuid,
    /// The owning tenant.
    pub organization_id: Uuid,
    /// The region it lives in.
    pub region: String,
    /// The function or container it leads to.
    pub application_id: Uuid,
    /// The host name.
    pub hostname: Hostname,
    /// Where it is in its life.
    pub status: DomainStatus,
    /// `<scheme>://<hostname>` once ready, empty before.
    pub url: String,
    /// Why it is in `error`, else empty.
    pub error_message: String,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
    /// Its tags.
    pub tags: nuage_core::validate::Tags,
}

impl Domain {
    /// Returns its wire form.
    pub fn into_proto(self) -> wire::Domain {
        wire::Domain {
            id: self.id.to_string(),
            hostname: self.hostname.0,
            application_id: self.application_id.to_string(),
            url: self.url,
            status: self.status.to_proto() as i32,
            error_message: self.error_message,
            region: self.region,
            organization_id: self.organization_id.to_string(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            tags: self.tags.into_values(),
        }
    }
}

/// What narrows a list of domains: one application, or those of a namespace or a project.
#[derive(Debug, Clone, Default)]
pub struct DomainFilter {
    /// Only this application's.
    pub application_id: Option<Uuid>,
    /// Only those of applications of this namespace.
    pub namespace_id: Option<Uuid>,
    /// Only those of applications of this project.
    pub project_id: Option<Uuid>,
}

/// Returns the `order by` clause of a domain order (its wire value); ties are broken by id.
pub fn domain_order_sql(order: i32) -> &'static str {
    match wire::DomainOrder::try_from(order).unwrap_or(wire::DomainOrder::CreatedAtAsc) {
        wire::DomainOrder::CreatedAtAsc => "created_at asc, id asc",
        wire::DomainOrder::CreatedAtDesc => "created_at desc, id desc",
        wire::DomainOrder::HostnameAsc => "hostname asc, id asc",
        wire::DomainOrder::HostnameDesc => "hostname desc, id desc",
    }
}

#[cfg(test)]
mod tests {
    use super::Hostname;

    fn refused(raw: &str, reserved: &[String]) -> String {
        let error = Hostname::parse(raw, reserved).unwrap_err();
        assert_eq!(error.violations[0].argument_name, "hostname", "{raw}");
        error.violations[0].help_message.clone()
    }

    #[test]
    fn host_names_are_lower_cased_dns_names_outside_the_installation() {
        let reserved = vec!["fn.example.net".to_owned()];
        assert_eq!(
            Hostname::parse("API.Shop.example.COM.", &reserved).unwrap().as_str(),
            "api.shop.example.com"
        );
        assert_eq!(
            Hostname::parse("xn--bcher-kva.de", &reserved).unwrap().as_str(),
            "xn--bcher-kva.de"
        );
        assert!(refused("127.0.0.1", &reserved).contains("IP address"));
        assert!(refused("::1", &reserved).contains("IP address"));
        assert!(refused("localhost", &reserved).contains("fully qualified"));
        assert!(refused("1.2.3.999", &reserved).contains("numeric"));
        for bad in [
            "a..b.com",
            "-a.b.com",
            "a-.b.com",
            "*.b.com",
            "a_b.com",
            "a b.com",
            "https://a.com",
        ] {
            assert!(refused(bad, &reserved).contains("not a valid host name"), "{bad}");
        }
        assert!(refused(&format!("{}.com", "a".repeat(64)), &reserved).contains("not a valid"));
        assert!(refused(&format!("{}.com", "a.".repeat(126)), &reserved).contains("at most 253"));
        assert!(refused("x.fn.example.net", &reserved).contains("own endpoints"));
        assert!(refused("FN.example.net", &reserved).contains("own endpoints"));
        // A name that merely ends like a reserved one is not under it.
        assert!(Hostname::parse("myfn.example.net", &reserved).is_ok());
        let empty = Hostname::parse(" ", &reserved).unwrap_err();
        assert_eq!(empty.violations[0].reason, "required");
    }
}
