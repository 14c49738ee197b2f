//! Configuration of the router.

use nuage_core::listener::ConnectionLimits;
use nuage_wasm::PoolConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The `[router]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// The listener function and container endpoints answer on (`functions` in
    /// `endpoints.json`); port 0 picks a free one.
    pub listen: SocketAddr,
    /// The internal listener, for nuage itself (crons fire through it, without the privacy
    /// check; it demands the internal secret); port 0 picks a free one. Keep it off public
    /// interfaces.
    pub internal_listen: SocketAddr,
    /// Seconds an instance may stay idle before it is stopped (down to `min_scale`).
    pub idle_seconds: u64,
    /// Requests that may wait for an instance, per application, once `max_scale` instances are
    /// busy; more get 503.
    pub queue_limit: usize,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: u64,
    /// Milliseconds between two refreshes of the route table (an unknown address also
    /// triggers one).
    pub routes_refresh_ms: u64,
    /// Milliseconds between two looks at the tokens deleted through `/tokens`: a deleted
    /// token still opens its function for at most about this long (10 to 5000, so that it is
    /// refused within 5 seconds).
    pub revocations_refresh_ms: u64,
    /// Threads that serve invocations, each owning its connections (0: half the cores, at
    /// least one, where this process also runs instance processes, which need the other half;
    /// every core where it does not, as on Kubernetes).
    pub threads: usize,
    /// Whether instance processes run beside the router, in this process's runner (set by
    /// the process from its roles and `runner.backend`, not read from the file).
    #[serde(skip)]
    pub instances_beside: bool,
    /// Microseconds a router thread keeps polling its connections after its last activity
    /// before it sleeps (0: sleep at once). Saves the wake-up of a sleeping thread on each hop
    /// through the router, for at most that much CPU per quiet spell.
    pub idle_poll_us: u64,
    /// Limits on the client connections of each of the router's listeners (public and
    /// internal, each with its own `max_connections`).
    pub connections: ConnectionLimits,
    /// The pool WebAssembly functions' instances come from (`[router.wasm]`).
    pub wasm: PoolConfig,
}

impl RouterConfig {
    /// Checks the settings that have bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !(10..=5000).contains(&self.revocations_refresh_ms) {
            return Err(format!(
                "router.revocations_refresh_ms must be 10 to 5000 (a deleted token is refused within 5 s), got {}",
                self.revocations_refresh_ms
            ));
        }
        self.wasm.validate()?;
        self.connections.validate("router.connections")
    }

    /// Returns how many threads serve invocations.
    pub fn worker_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        match self.threads {
            0 if self.instances_beside => (cores / 2).max(1),
            0 => cores,
            threads => threads,
        }
    }
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".parse().expect("valid address"),
            internal_listen: "127.0.0.1:8082".parse().expect("valid address"),
            idle_seconds: 900,
            queue_limit: 100,
            max_body_bytes: 6 * 1024 * 1024,
            routes_refresh_ms: 1000,
            revocations_refresh_ms: 1000,
            threads: 0,
            instances_beside: true,
            idle_poll_us: 200,
            connections: ConnectionLimits::default(),
            wasm: PoolConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_leaves_half_the_cores_only_to_instances_that_run_beside_it() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let beside = RouterConfig::default();
        assert_eq!(beside.worker_threads(), (cores / 2).max(1));
        let alone = RouterConfig {
            instances_beside: false,
            ..RouterConfig::default()
        };
        assert_eq!(alone.worker_threads(), cores);
        let set = RouterConfig {
            threads: 3,
            instances_beside: false,
            ..RouterConfig::default()
        };
        assert_eq!(set.worker_threads(), 3);
    }
}
