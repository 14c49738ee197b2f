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
pub use firings::{FiringStore, Outcome};
pub use reconciler::Reconciler;
pub use scheduler::{Invoker, Scheduler};
pub use service::{CronsService, Peers};
pub use store::CronStore;
