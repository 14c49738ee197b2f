//! Logs: what functions and containers print, what their builds said, when their crons fired
//! and which invocations the router failed, per application.
//!
//! Owns the `log_lines` table. Serves `nuage.logs.v1.Logs`: a `Write` stream that producers
//! (runner, builder, crons, router) feed through `nuage_clients::LogSink`, queries by
//! page, a follow stream, and the cascade from deleted applications. Lines are stored in
//! batches from a bounded queue; a pruner keeps each application within a line count and an
//! age.

mod config;
mod service;
mod store;
mod text;

pub use config::LogsConfig;
pub use service::{LogsService, Metrics};
pub use store::{Entry, LogStore};
