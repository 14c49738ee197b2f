//! Configuration of the functions service.

use serde::{Deserialize, Serialize};

/// The `[functions]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionsConfig {
    /// Seconds between two sweeps for functions stuck in a transient state (a sweep also runs
    /// at once whenever a function is deleted).
    pub reconcile_interval_seconds: u64,
    /// Offers the `wasm` runtime (`wasi:http/proxy` components run by the router with
    /// Wasmtime, which is part of nuage); on by default.
    pub wasm: bool,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        Self {
            reconcile_interval_seconds: 5,
            wasm: true,
        }
    }
}
