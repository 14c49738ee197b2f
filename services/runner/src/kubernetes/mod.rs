//! The `kubernetes` backend: each deployed version of a function or container is a Deployment
//! and a headless Service in a Kubernetes namespace per tenant namespace.
//!
//! [`naming`] derives every name and label from ids; [`objects`] makes the objects from a spec
//! and the runner's configuration, with the isolation local instances have. Neither speaks
//! to a cluster, so both are tested here; the schemas of what they make are checked in CI
//! (`tests/kubernetes_objects.rs` writes them out for `deploy/validate`).

mod naming;
mod objects;

pub use naming::{APPLICATION, DEPLOYMENT, MANAGED_BY, MANAGER, NAMESPACE, ORGANIZATION};
pub use objects::{Cidr, NamespaceObjects, Objects, VersionObjects, open_secrets, port};
