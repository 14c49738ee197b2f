//! Crons: schedules that call a function or a container with fixed arguments.
//!
//! Owns the `crons` table. Serves `nuage.crons.v1.Crons`: create, read, list, update and
//! delete crons (a cron's application must be a function or container of the caller, asked
//! of those services over gRPC), and the cascade from a deleted application. Its
//! [`Reconciler`] makes `pending` crons `ready` and removes `deleting` ones. Firing them comes
//! later.

mod model;
mod reconciler;
mod schedule;
mod service;
mod store;

pub use reconciler::Reconciler;
pub use service::{CronsService, Peers};
pub use store::CronStore;
