//! Crons: schedules that call a function or a container with fixed arguments.
//!
//! Owns the `crons` table. Serves `nuage.crons.v1.Crons`: create, read, list, update and
//! delete crons (a cron's application must be a function or container of the caller, asked
//! of those services over gRPC), and the cascade from a deleted application. Its
//! [`Reconciler`] makes `pending` crons `ready` and removes `deleting` ones. Its
//! [`Scheduler`] fires `ready` crons through the router, each scheduled time once across
//! replicas, and records every firing (`cron_firings`).

mod config;
mod firings;
mod model;
mod reconciler;
mod schedule;
mod scheduler;
mod service;
mod store;

pub use config::CronsConfig;
pub use firings::FiringStore;
pub use nuage_clients::invoker::{Invoker, Outcome};
pub use reconciler::Reconciler;
pub use scheduler::Scheduler;
pub use service::{CronsService, Peers};
pub use store::CronStore;

use nuage_clients::LogSink;
use nuage_core::Database;
use nuage_core::served::Served;
use nuage_proto::crons::v1::crons_server::CronsServer;

/// Seconds between two sweeps of crons stuck in a transient state.
const RECONCILE_SECONDS: u64 = 5;

/// Returns the crons service over `database`, with its scheduler (the handle: stop it before the
/// router goes) firing through `invoker` and its reconciler running. Each firing leaves a line
/// in its application's logs through `logs`.
pub fn serve(
    config: &CronsConfig,
    database: Database,
    peers: Peers,
    invoker: Invoker,
    logs: Option<LogSink>,
) -> Served<CronsServer<CronsService>, Scheduler> {
    let store = CronStore::new(database.clone());
    let firings = FiringStore::new(database);
    let scheduler = Scheduler::new(store.clone(), firings, invoker, config.clone(), logs);
    let scheduling = tokio::spawn(scheduler.clone().run());
    let reconciler = Reconciler::new(store.clone(), RECONCILE_SECONDS).with_scheduler(scheduler.clone());
    let reconciling = tokio::spawn(reconciler.clone().run());
    let service = CronsService::new(store, reconciler, peers, config.seconds_schedules);
    Served::new(CronsServer::new(service))
        .with_background([scheduling, reconciling])
        .with_handle(scheduler)
}
