//! The nuage binary's library: configuration, role composition, bootstrap and admin commands.
//!
//! Every role is a tonic service; the gateway reaches them through gRPC clients even when they
//! run in the same process (it then hands calls to their gRPC routes in process; services call
//! each other over the loopback listener). Each service crate says how it is served (its
//! `serve`); this crate binds the listeners, hands every role its config section and the
//! services it calls, runs the embedded S3 endpoint of the all-in-one shape, and owns nothing
//! else.

pub mod admin;
pub mod cli;
pub mod config;
mod grpc;
mod health;
mod probes;
mod roles;
mod s3;
mod server;

pub use config::{Config, Overrides, Role};
pub use server::{Endpoints, RunningServer, shutdown_signal, start};
