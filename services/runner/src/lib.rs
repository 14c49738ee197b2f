//! The runner: runs instances of functions and containers, shaped like OpenFaaS's
//! faas-provider (deploy a spec, remove, scale, resolve, list instances, stream output).
//!
//! It obeys the router, which decides how many instances each application needs. Owns the
//! `runner_applications` table (each application's current spec). The `local` backend runs
//! instances as processes of this machine, each in a network namespace of its own, sandboxed
//! with bubblewrap or gVisor as an unprivileged host id, and capped (memory, CPU, processes)
//! with cgroups where writable; the [`Backend`] trait is where a Kubernetes backend goes.

mod backend;
mod cgroups;
mod config;
mod confined;
mod error;
mod gvisor;
mod images;
mod local;
mod sandbox;
mod seccomp;
mod service;
mod specs;

pub use backend::{Backend, Running};
pub use config::{Egress, RunnerConfig, Sandbox};
pub use error::RunnerError;
pub use local::{LocalBackend, LogShipping};
pub use service::RunnerService;
pub use specs::SpecStore;
