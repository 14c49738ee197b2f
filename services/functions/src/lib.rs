//! Functions: a tenant's code in a runtime, inside a namespace.
//!
//! Owns the `functions` table. Serves `nuage.functions.v1.Functions`: create, read, list,
//! update and delete functions, presigned upload and download URLs for their source
//! archives (in any S3 store), the runtimes this installation can build and run, and the
//! cascade from a deleted namespace. Its [`Reconciler`] removes `deleting` functions once
//! their crons are gone (asked of the crons service over gRPC). Source archives, builds and
//! deploys come later.

mod archives;
mod config;
mod deployments;
mod model;
mod reconciler;
mod runtimes;
mod service;
mod store;

pub use archives::{ARCHIVE_CONTENT_TYPE, Archives, Presigned};
pub use config::FunctionsConfig;
pub use deployments::DeploymentStore;
pub use reconciler::Reconciler;
pub use runtimes::{Runtimes, detect_runtimes};
pub use service::{FunctionsService, Peers};
pub use store::FunctionStore;
