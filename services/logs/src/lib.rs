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

use nuage_core::Database;
use nuage_core::served::Served;
use nuage_proto::logs::v1::logs_server::LogsServer;
use tokio::sync::watch;

/// Largest gRPC message of the logs service (batches of lines, pages of 64 KiB lines).
pub const MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Returns the logs service over `database`, with its writer and pruner running; `stopping`
/// turns true when the process stops (open `Write` streams end then). Its figures are the handle.
pub fn serve(
    config: &LogsConfig,
    database: Database,
    stopping: watch::Receiver<bool>,
) -> Served<LogsServer<LogsService>, Metrics> {
    let (service, tasks) = LogsService::start(LogStore::new(database), config, stopping);
    let metrics = service.metrics();
    let server = LogsServer::new(service)
        .max_decoding_message_size(MESSAGE_BYTES)
        .max_encoding_message_size(MESSAGE_BYTES);
    Served::new(server).with_background(tasks).with_handle(metrics)
}
