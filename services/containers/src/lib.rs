//! Containers: images a tenant builds and pushes, run inside a namespace.
//!
//! Owns the `containers` table. Serves `nuage.containers.v1.Containers` over the shared
//! applications layer (`nuage-applications`: create, read, list, update, delete, routes,
//! roll-out, the reconciler that removes `deleting` containers); what only containers have is
//! here: the image they run, checked as an image reference, and the roll-out of each deploy.

mod config;
mod model;
mod service;

pub use config::ContainersConfig;
pub use model::{Container, ContainerKind};
pub use service::{ContainerApplications, ContainersService};
