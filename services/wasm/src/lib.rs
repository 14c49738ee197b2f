//! WebAssembly functions: `wasi:http/proxy` components run by Wasmtime.
//!
//! Owns nothing durable. It holds the one engine configuration that both ends agree on
//! ([`engine`]): the builder compiles a tenant's component ahead of time with it (the
//! `compile` feature, [`precompile`]), and the router loads that precompiled form with it and
//! runs a fresh instance per request ([`Host`]), from a pooling allocator, with the function's
//! memory cap, its timeout by epoch interruption, its variables through
//! `wasi:cli/environment`, no filesystem, no sockets, and outgoing HTTP only as the egress
//! policy allows ([`Egress`]). It does not route, fetch images or ship logs: the router and the
//! runner do, and hand it bytes.

#[cfg(feature = "compile")]
mod compile;
mod egress;
pub mod engine;
mod error;
mod host;
mod synced;

#[cfg(feature = "compile")]
pub use compile::precompile;
pub use egress::Egress;
pub use engine::PoolConfig;
pub use error::WasmError;
pub use host::{Failure, Host, Invocation, Loaded, Manifest};
pub use synced::Synced;
