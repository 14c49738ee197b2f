//! The `kubernetes` backend: each deployed version of a function or container is a Deployment
//! and a headless Service in a Kubernetes namespace per tenant namespace.
//!
//! [`naming`] derives every name and label from ids; [`objects`] makes the objects from a spec
//! and the runner's configuration, with the isolation local instances have; [`claims`] makes
//! the scale decisions; [`cleanup`] what a release removes (versions, then namespaces left
//! with none); [`logs`] resumes a pod's log where a dropped stream left it. None of them speaks to a cluster, so all are tested here; the schemas
//! of what [`objects`] makes are checked in CI (`tests/kubernetes_objects.rs` writes them out
//! for `deploy/validate`). [`backend`] applies them to a cluster, and says how the router's
//! per-instance contract maps onto Deployments; it is tested against a real cluster only
//! (`tests/kubernetes_cluster.rs`, with `NUAGE_TEST_KUBECONFIG`).

mod backend;
mod claims;
mod cleanup;
mod logs;
mod naming;
mod objects;

pub use backend::KubernetesBackend;
pub use naming::{APPLICATION, DEPLOYMENT, MANAGED_BY, MANAGER, NAMESPACE, ORGANIZATION};
pub use objects::{NamespaceObjects, Objects, VersionObjects, open_secrets, port};
