//! Namespaces: a tenant's groups of functions and containers.
//!
//! Owns the `namespaces` table: names, descriptions, shared environment variables and each
//! namespace's registry namespace. Serves `nuage.namespaces.v1.Namespaces`, and runs a
//! [`Reconciler`] that converges namespaces out of their transient states: `pending` becomes
//! `ready` once the registry namespace exists, `deleting` disappears once its children are gone.
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
pub use store::NamespaceStore;
