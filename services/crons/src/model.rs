//! A cron as stored, and the rules of a containers v1 cron trigger's delivery.

use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_core::validate::Tags;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Where a cron is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronStatus {
    /// Stored, not yet scheduled.
    Pending,
    /// Scheduled.
    Ready,
    /// Being deleted.
    Deleting,
}

impl CronStatus {
    /// Returns the stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Deleting => "deleting",
        }
    }

    /// Returns the status stored as `value`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "ready" => Some(Self::Ready),
            "deleting" => Some(Self::Deleting),
            _ => None,
        }
    }
}

/// A cron as stored. Values were validated on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// Its id.
    pub id: Uuid,
    /// The owning tenant.
    pub organization_id: Uuid,
    /// The region it lives in.
    pub region: String,
    /// The function or container it calls.
    pub application_id: Uuid,
    /// Five-field UNIX cron.
    pub schedule: String,
    /// The JSON object it sends.
    pub args: String,
    /// Where it is in its life.
    pub status: CronStatus,
    /// Its name (v1beta1).
    pub name: String,
    /// How it calls its application when made as a containers v1 trigger; `None`: a POST of
    /// `args` to `/`.
    pub delivery: Option<Delivery>,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}

/// Longest cron name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// Returns the name of a cron made without one: `cron-` and the first 8 hex digits of its id
/// (Scaleway generates a name then too).
pub fn default_name(id: Uuid) -> String {
    format!("cron-{}", &id.simple().to_string()[..8])
}

/// What a cron made as a containers v1 trigger sends, where, and what describes it. Stored as
/// JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Sent as is.
    pub body: String,
    /// Sent with each call.
    pub headers: BTreeMap<String, String>,
    /// Starts with `/`.
    pub http_path: String,
    /// Lowercase.
    pub http_method: String,
    /// The time zone its schedule is read in.
    pub timezone: String,
    /// Its description.
    pub description: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// Largest body, in bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most headers.
const MAX_HEADERS: usize = 50;
/// Longest description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 255;
/// Headers a cron may not set: the router's and the connection's own.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "authorization",
    "x-auth-token",
];

impl Delivery {
    /// Returns `wire` checked, errors naming containers v1's arguments (`cron_config.*`,
    /// `destination_config.*`).
    pub fn parse(wire: nuage_proto::crons::v1::CronDelivery) -> Result<Self, ApiError> {
        if wire.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::invalid_argument(
                "cron_config.body",
                Reason::Constraint,
                format!("must be at most {MAX_BODY_BYTES} bytes"),
            ));
        }
        if wire.headers.len() > MAX_HEADERS {
            return Err(ApiError::invalid_argument(
                "cron_config.headers",
                Reason::Constraint,
                format!("at most {MAX_HEADERS} headers"),
            ));
        }
        for (name, value) in &wire.headers {
            let argument = format!("cron_config.headers.{name}");
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
            if !valid_name || RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ApiError::invalid_argument(
                    &argument,
                    Reason::Format,
                    format!("`{name}` is not a header a cron may set"),
                ));
            }
            if value.bytes().any(|byte| byte.is_ascii_control() && byte != b'\t') {
                return Err(ApiError::invalid_argument(
                    &argument,
                    Reason::Format,
                    "holds control characters",
                ));
            }
        }
        nuage_core::validate::destination("destination_config", &wire.http_path, &wire.http_method)?;
        // croner reads schedules in UTC here: other zones are refused rather than misread.
        if !matches!(wire.timezone.as_str(), "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Z") {
            return Err(ApiError::invalid_argument(
                "cron_config.timezone",
                Reason::Constraint,
                format!(
                    "this installation reads schedules in UTC only: give `UTC` (and the schedule in UTC), got `{}`",
                    wire.timezone
                ),
            ));
        }
        if wire.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ApiError::invalid_argument(
                "description",
                Reason::Constraint,
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        let tags = Tags::parse("tags", wire.tags)?.into_values();
        Ok(Self {
            body: wire.body,
            headers: wire.headers.into_iter().collect(),
            http_path: wire.http_path,
            http_method: wire.http_method,
            timezone: wire.timezone,
            description: wire.description,
            tags,
        })
    }

    /// Returns its wire form.
    pub fn into_proto(self) -> nuage_proto::crons::v1::CronDelivery {
        nuage_proto::crons::v1::CronDelivery {
            body: self.body,
            headers: self.headers.into_iter().collect(),
            http_path: self.http_path,
            http_method: self.http_method,
            timezone: self.timezone,
            description: self.description,
            tags: self.tags,
        }
    }
}
