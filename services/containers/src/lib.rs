//! Containers: images a tenant builds and pushes, run inside a namespace.
//!
//! Owns the `containers` table. Serves `nuage.containers.v1.Containers`: create, read, list,
//! update and delete containers, and the cascade from a deleted namespace. Its
//! [`Reconciler`] removes `deleting` containers once their crons are gone (asked of the crons
//! service over gRPC). Deploys come later.

mod config;
mod model;
mod reconciler;
mod service;
mod store;

pub use config::ContainersConfig;
pub use reconciler::Reconciler;
pub use service::{ContainersService, Peers};
pub use store::ContainerStore;
