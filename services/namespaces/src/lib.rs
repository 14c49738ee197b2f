//! Namespaces: a tenant's groups of functions and containers.
//!
//! Owns the `namespaces` table: names, descriptions, shared environment variables and each
//! namespace's registry namespace. Serves `nuage.namespaces.v1.Namespaces`, and runs a
//! [`Reconciler`] that converges namespaces out of their transient states: `pending` becomes
//! `ready` once its key pair and registry namespace exist (a few at once, round robin over
//! tenants, each tenant's backlog bounded), `deleting` disappears once its children are gone.
//! It does not own functions, containers or crons; deleting cascades to them over gRPC.

mod config;
mod convert;
mod error;
mod model;
mod reconciler;
mod service;
mod store;

pub use config::{EMBEDDED_REGISTRY_HOST, NamespacesConfig};
pub use error::NamespacesError;
pub use reconciler::{Peers, Reconciler};
pub use service::NamespacesService;
pub use store::{Limits, NamespaceStore};

use nuage_core::Database;
use nuage_core::served::Served;
use nuage_proto::namespaces::v1::namespaces_server::NamespacesServer;

/// Returns the namespaces service over `database`, with its reconciler running; secrets are
/// sealed under `sealing`. Before that it
/// gives every namespace made before endpoint suffixes existed its suffix, so that none hands
/// out an endpoint another tenant's namespace of the same name could share.
pub async fn serve(
    config: NamespacesConfig,
    database: Database,
    peers: Peers,
    sealing: [u8; 32],
) -> Result<Served<NamespacesServer<NamespacesService>>, NamespacesError> {
    let store = NamespaceStore::new(database);
    let filled = store.fill_endpoint_suffixes().await?;
    if filled > 0 {
        tracing::info!(namespaces = filled, "namespaces given an endpoint suffix");
    }
    let reconciler = Reconciler::new(store.clone(), config.clone(), peers);
    let background = tokio::spawn(reconciler.clone().run());
    let service = NamespacesService::new(store, reconciler, config, sealing);
    Ok(Served::new(NamespacesServer::new(service)).with_background([background]))
}
