//! Configuration of the crons service.

use serde::{Deserialize, Serialize};

/// The `[crons]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CronsConfig {
    /// Milliseconds between two looks at the crons table for changes made through another
    /// replica (changes made through this one apply at once).
    pub sync_ms: u64,
    /// Seconds a replica holds a firing it claimed before another may take it over.
    pub lease_seconds: u64,
    /// Seconds after its lease ran out during which a held firing whose replica died is still
    /// taken over; later (every replica was down), it is recorded as failed, not replayed.
    pub takeover_seconds: u64,
    /// Firings kept per cron (the newest).
    pub keep_firings: u32,
    /// Test-only: also accept 6-field schedules whose first field is the second. Never enable
    /// it where tenants reach the API: Scaleway accepts 5 fields only.
    pub seconds_schedules: bool,
    /// Test-only: milliseconds a replica waits between claiming a firing and sending it, so
    /// that a test can kill it while it holds one.
    pub hold_before_send_ms: u64,
}

impl Default for CronsConfig {
    fn default() -> Self {
        Self {
            sync_ms: 500,
            lease_seconds: 3,
            takeover_seconds: 10,
            keep_firings: 100,
            seconds_schedules: false,
            hold_before_send_ms: 0,
        }
    }
}
