//! What functions and containers share, written once: the model and its rules
//! ([`Application`] of a [`Kind`]), their store, their reconciler, creating, changing and
//! deleting them, telling routers, rolling a version out, their deployment history and
//! rollback ([`History`]), resolving an application id, and their custom domains
//! ([`Domains`]).
//!
//! A library, not a service: the functions and containers services each serve their own gRPC
//! API over an [`Applications`] of their kind and keep only what differs (a function's
//! archives and builds, a container's registry image). The gateway and crons use [`Owners`]
//! to find which kind an id is. It owns no table of its own: each kind's table is its
//! service's, and the tables both kinds share (`rollouts`, `domains`) are theirs together,
//! each row marked with its kind, and so is their deployment history (`deployments`).

mod config;
mod dns;
mod domain_model;
mod domain_store;
mod domains;
mod history;
mod model;
mod operations;
mod peers;
mod reconciler;
mod resolve;
mod rollouts;
mod rpc;
mod shared_rpcs;
mod store;

pub use config::{ApplicationsConfig, DEFAULT_ENDPOINT_BASE_URL, DomainCheck, DomainsConfig};
pub use domain_model::{Domain, DomainStatus, Hostname};
pub use domain_store::{DomainStore, domain_not_found};
pub use domains::Domains;
pub use history::{BuildResult, Deployment, History, SUCCEEDED, at_digest};
pub use model::{
    Application, ApplicationStatus, DEFAULT_MAX_SCALE, DEFAULT_MEMORY_LIMIT, DEFAULT_MIN_SCALE, DEFAULT_TIMEOUT_MS,
    ENDPOINT_SUFFIX_LENGTH, Kind, MAX_DNS_LABEL, MAX_TIMEOUT_MS, MEMORY_LIMITS, MIN_TIMEOUT_MS, Privacy, Sandbox,
    check_name, check_timeout, cpu_limit, endpoint_label, label_of, new_endpoint_suffix, order_sql,
};
pub use operations::{Applications, Changes, Requested, RouteStream, Settings, required};
pub use peers::Peers;
pub use reconciler::{Leftovers, Reconciler};
pub use resolve::{Live, Lookup, Owners, Resolved};
pub use rollouts::{Rollout, RolloutSettings, Rollouts};
pub use rpc::{answer, requested};
#[doc(hidden)]
pub use shared_rpcs::__macro;
pub use store::{ApplicationStore, ListFilter};
