//! A cron as stored.

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
