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
pub use model::{Container, ContainerKind, HealthCheck, Scaling, Settings};
pub use service::{ContainerApplications, ContainersService};

use nuage_applications::{ApplicationsConfig, Peers};
use nuage_core::Database;
use nuage_core::served::Served;
use nuage_proto::containers::v1::containers_server::ContainersServer;

/// Returns the containers service over `database`; its reconciler, the check of custom
/// domains and the move of endpoints made before suffixes existed run beside it.
pub fn serve(
    config: &ContainersConfig,
    applications: ApplicationsConfig,
    database: Database,
    peers: Peers,
    sealing: [u8; 32],
) -> Served<ContainersServer<ContainersService>> {
    let containers = ContainerApplications::new(
        database,
        peers,
        applications,
        (),
        (config.reconcile_interval_seconds, config.concurrency),
        sealing,
    );
    let background = [
        tokio::spawn(containers.reconciler().run()),
        tokio::spawn(containers.domains().clone().run()),
        tokio::spawn(containers.clone().move_old_endpoints()),
    ];
    Served::new(ContainersServer::new(ContainersService::new(
        containers,
        config.concurrency,
    )))
    .with_background(background)
}
