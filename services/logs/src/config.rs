//! Configuration of the logs service.

use serde::{Deserialize, Serialize};

/// The `[logs]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Lines kept per application (the newest).
    pub max_lines_per_application: u64,
    /// Seconds a line is kept.
    pub max_age_seconds: u64,
    /// Milliseconds between two passes of the pruner.
    pub prune_interval_ms: u64,
    /// Lines waiting to be stored; a sender that finds the queue full waits (and its own
    /// bounded buffer drops, counted).
    pub queue_lines: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            max_lines_per_application: 10_000,
            max_age_seconds: 7 * 24 * 3600,
            prune_interval_ms: 10_000,
            queue_lines: 50_000,
        }
    }
}
