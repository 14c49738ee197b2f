//! The router: the invocation data plane. It owns nothing durable.
//!
//! It owns the path of a request to a function's or container's endpoint: the route table
//! (refreshed from the functions and containers services, never queried per request) names the
//! application; a private one's token is checked against its namespace's key (from the tokens
//! service) and against the tokens its tenant deleted (refreshed from there too); an instance is held for it, started through the runner when none is idle (scale
//! from zero, up to `max_scale`, then a bounded queue, then 503); the request is proxied with
//! the application's `timeout` as its one deadline, and idle instances are stopped down to
//! `min_scale`. WebAssembly functions have no instances: it runs them itself, a fresh
//! Wasmtime instance per request ([`Components`]). It decides how many instances run; the runner runs them. It does not own
//! applications, tokens or instances, and it answers its own failures with the Scaleway error
//! bodies of core, as the gateway does.
//!
//! Served by [`start`]: requests run on the router's own threads (`workers`), calls to other
//! services on the main runtime ([`Control`]), and [`Router`] is the running router.

mod activity;
mod body;
mod components;
mod config;
mod control;
mod error;
mod leased;
mod metrics;
mod pool;
mod privacy;
mod proxy;
mod request;
mod revocations;
mod routes;
mod serve;
mod upstream;
mod workers;

pub use body::ProxyBody;
pub use components::Components;
pub use config::RouterConfig;
pub use control::Control;
pub use metrics::Metrics;
pub use pool::Pools;
pub use privacy::{Privacy, TOKEN_HEADERS};
pub use proxy::Proxy;
pub use revocations::Revocations;
pub use routes::{Route, Routes, key_of};
pub use serve::{Listeners, Peers, Router, start};
