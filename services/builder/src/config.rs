//! Configuration of the builder.

use nuage_core::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `[builder]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuilderConfig {
    /// Where OCI image layouts are written (one per repository); default `<data-dir>/registry`.
    pub registry_dir: Option<PathBuf>,
    /// Claims of one job before it is given up.
    pub max_attempts: i64,
    /// Seconds a claimed job belongs to its worker, which renews the claim every third of it
    /// while it builds: a worker that dies or is cut off loses the job after this, to
    /// another builder.
    pub lease_seconds: i64,
    /// Builds of one organization that may wait in the queue; a deploy beyond them is refused
    /// (429) and changes nothing.
    pub max_queued_per_organization: u32,
    /// Milliseconds between two looks at an empty queue (a submit wakes the worker at once).
    pub poll_interval_ms: u64,
    /// A registry (`host[:port]`) images are also pushed to over the OCI distribution API;
    /// unset, images stay in the local layouts only.
    pub registry: Option<String>,
    /// Speak plain HTTP to `registry` (a registry on loopback).
    pub registry_insecure: bool,
    /// Basic-auth user of `registry`.
    pub registry_username: Option<String>,
    /// Basic-auth password of `registry`.
    pub registry_password: Option<Secret>,
    /// How long the registry may keep a push waiting (ms): to open a connection (a fifth of
    /// it) or between two reads. Past it, the build is retried later.
    pub registry_timeout_ms: u64,
}

impl Default for BuilderConfig {
    fn default() -> Self {
        Self {
            registry_dir: None,
            max_attempts: 3,
            lease_seconds: 15,
            poll_interval_ms: 1000,
            max_queued_per_organization: 20,
            registry: None,
            registry_insecure: false,
            registry_username: None,
            registry_password: None,
            registry_timeout_ms: 30_000,
        }
    }
}
