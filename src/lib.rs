//! The nuage binary's library: configuration, role composition, bootstrap and admin commands.
//!
//! Every role is a tonic service; the gateway reaches them through gRPC clients even when they
//! run in the same process (they then dial loopback). This crate wires them together and owns
//! nothing else.

pub mod admin;
pub mod config;
mod server;

pub use config::{Config, Overrides, Role};
pub use server::{Endpoints, RunningServer, shutdown_signal, start};
