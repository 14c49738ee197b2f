//! Functions: a tenant's code in a runtime, inside a namespace.
//!
//! Owns the `functions` and `deployments` tables and the source archives. Serves
//! `nuage.functions.v1.Functions`: what functions share with containers goes through the
//! shared applications layer (`nuage-applications`: create, read, list, update, delete, routes,
//! roll-out, the reconciler that removes `deleting` functions); what only functions have is
//! here: runtimes, presigned upload and download URLs for source archives (in any S3 store),
//! deployments and the builds the builder reports.

mod archives;
mod config;
mod deployments;
mod leftovers;
mod model;
mod runtimes;
mod service;

pub use archives::{ARCHIVE_CONTENT_TYPE, Archives, Presigned};
pub use config::FunctionsConfig;
pub use deployments::DeploymentStore;
pub use leftovers::FunctionLeftovers;
pub use model::{Function, FunctionKind};
pub use runtimes::{Runtimes, detect_runtimes};
pub use service::{FunctionApplications, FunctionsService};
