//! A trigger as stored, and the rules its values follow.

use nuage_core::error::Reason;
use nuage_core::{ApiError, validate};
use uuid::Uuid;

/// Where a trigger is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerStatus {
    /// Stored, not yet subscribed.
    Creating,
    /// Subscribed: messages are delivered.
    Ready,
    /// Its source cannot be read, or its last message could not be delivered.
    Error,
    /// Being deleted.
    Deleting,
}

impl TriggerStatus {
    /// Returns the stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Ready => "ready",
            Self::Error => "error",
            Self::Deleting => "deleting",
        }
    }

    /// Returns the status stored as `value`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "creating" => Some(Self::Creating),
            "ready" => Some(Self::Ready),
            "error" => Some(Self::Error),
            "deleting" => Some(Self::Deleting),
            _ => None,
        }
    }
}

/// The stored input type of NATS triggers on an account the operator maps (Scaleway's
/// `scw_nats`).
pub const SCW_NATS: &str = "scw_nats";
/// The stored input type of NATS triggers on the tenant's own servers (containers v1 `nats`).
pub const NATS: &str = "nats";

/// Where a NATS trigger reads: a subject of an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatsSource {
    /// The subject; may hold wildcards.
    pub subject: String,
    /// The account (`mnq_nats_account_id`), which the operator maps to a server.
    pub account_id: String,
    /// Echoed as given.
    pub mnq_project_id: String,
    /// Echoed as given.
    pub mnq_region: String,
    /// The tenant's own servers (containers v1); empty: the account's, as the operator maps it.
    pub server_urls: Vec<String>,
    /// The `.creds` content to log in to them with, sealed ([`credentials_context`]); empty:
    /// none.
    pub credentials: String,
}

impl NatsSource {
    /// Returns its stored input type.
    pub fn input_type(&self) -> &'static str {
        if self.server_urls.is_empty() { SCW_NATS } else { NATS }
    }
}

/// What sealed credentials of trigger `id` are bound to.
pub fn credentials_context(id: Uuid) -> String {
    format!("trigger/{id}/credentials")
}

/// A trigger as stored. Values were validated on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Its id.
    pub id: Uuid,
    /// The owning tenant.
    pub organization_id: Uuid,
    /// The region it lives in.
    pub region: String,
    /// Its application's project.
    pub project_id: Uuid,
    /// Its application's namespace.
    pub namespace_id: Uuid,
    /// The function or container its messages go to.
    pub application_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its description (`""` when none).
    pub description: String,
    /// Where its messages come from.
    pub source: NatsSource,
    /// Where in the application its messages go (`/` when not said).
    pub http_path: String,
    /// How (`post` when not said).
    pub http_method: String,
    /// Its tags.
    pub tags: nuage_core::validate::Tags,
    /// Where it is in its life.
    pub status: TriggerStatus,
    /// Why it is in `error`.
    pub error_message: Option<String>,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}

/// Longest trigger name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Longest description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 255;
/// Longest subject, in bytes.
const MAX_SUBJECT_BYTES: usize = 255;
/// Longest account id, project id or region, in characters.
const MAX_REFERENCE_CHARS: usize = 100;

/// Returns a trigger name as given, trimmed: required, at most 100 characters, none of them a
/// control.
pub fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    validate::required("name", name)?;
    validate::short_text("name", name, MAX_NAME_CHARS)?;
    Ok(name.to_owned())
}

/// Returns a description as given: at most 255 characters, none of them a control but line
/// breaks and tabs.
pub fn check_description(description: &str) -> Result<String, ApiError> {
    validate::at_most_chars("description", description, MAX_DESCRIPTION_CHARS)?;
    if description
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::invalid_argument(
            "description",
            Reason::Format,
            "must not hold control characters",
        ));
    }
    Ok(description.to_owned())
}

/// Returns `value` (`argument` names it) if given, else the error that it is required.
pub fn check_reference(argument: &str, value: &str) -> Result<String, ApiError> {
    validate::required(argument, value)?;
    validate::short_text(argument, value, MAX_REFERENCE_CHARS)?;
    Ok(value.to_owned())
}

/// Checks a NATS subject to subscribe to, given as `argument`: tokens separated by dots, none
/// empty, no whitespace; `*` stands for one whole token and `>` for the rest, as the last
/// token only. Subjects starting with `$` belong to the server (system and JetStream APIs).
pub fn check_subject(argument: &str, subject: &str) -> Result<(), ApiError> {
    let refuse = |help: &str| Err(ApiError::invalid_argument(argument, Reason::Format, help));
    validate::required(argument, subject)?;
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(ApiError::invalid_argument(
            argument,
            Reason::Constraint,
            format!("must be at most {MAX_SUBJECT_BYTES} bytes"),
        ));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("a NATS subject holds no whitespace");
    }
    if subject.starts_with('$') {
        return refuse("subjects starting with `$` are reserved for the NATS server");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (index, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return refuse("a NATS subject is tokens separated by single dots, none of them empty");
        }
        if token.contains('>') && (*token != ">" || index + 1 != tokens.len()) {
            return refuse("`>` stands for the rest of a subject: it must be the whole last token");
        }
        if token.contains('*') && *token != "*" {
            return refuse("`*` stands for one token: it must be a whole token");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_nats_rules() {
        for good in ["orders", "orders.created", "orders.*.eu", "orders.>", ">", "a-b_c.D9"] {
            check_subject("scw_nats_config.subject", good).unwrap_or_else(|error| panic!("{good}: {error}"));
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a.>.b", "a.b>", "a*.b", "$SYS.>", "a\tb"] {
            let error = check_subject("scw_nats_config.subject", bad).unwrap_err();
            assert_eq!(error.violations[0].argument_name, "scw_nats_config.subject", "{bad}");
        }
        assert!(check_subject("s", &"a".repeat(256)).is_err());
    }

    #[test]
    fn names_are_required_and_bounded() {
        assert_eq!(check_name("  mine ").unwrap(), "mine");
        assert!(check_name("  ").is_err());
        assert!(check_name(&"n".repeat(101)).is_err());
        assert!(check_name("a\u{7}").is_err());
        assert_eq!(check_description("two\nlines").unwrap(), "two\nlines");
        assert!(check_description(&"d".repeat(256)).is_err());
    }
}
