//! A container as stored.

use nuage_core::application::{ApplicationStatus, Privacy};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A container as stored. Values were validated on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Its id.
    pub id: Uuid,
    /// The owning tenant.
    pub organization_id: Uuid,
    /// The owning tenant's project.
    pub project_id: Uuid,
    /// The region it lives in.
    pub region: String,
    /// The namespace it belongs to.
    pub namespace_id: Uuid,
    /// Its name, unique in its namespace.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its own variables (the namespace's come first, these override them).
    pub environment_variables: BTreeMap<String, String>,
    /// Instances kept when idle.
    pub min_scale: u32,
    /// Most instances.
    pub max_scale: u32,
    /// MB.
    pub memory_limit: u32,
    /// Request timeout.
    pub timeout_ms: u64,
    /// The image it runs.
    pub registry_image: String,
    /// Who may call it.
    pub privacy: Privacy,
    /// Where it answers.
    pub endpoint: String,
    /// Where it is in its life.
    pub status: ApplicationStatus,
    /// Why it is in `error`, else empty.
    pub error_message: String,
    /// Whether a change since the last deploy needs a redeploy.
    pub redeploy_due: bool,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}
