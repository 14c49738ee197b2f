//! Clients that several parts of nuage use to call another one: the [`LogSink`] through which
//! producers of lines (runner, builder, crons, router) ship them to the logs service, the
//! [`Invoker`] through which crons and triggers call applications on the router's internal
//! listener, the
//! object store client that functions and the builder reach archives with, and the registry
//! client the builder pushes images with and the runner pulls them with.
//!
//! It owns no data and serves nothing. Config types (`StorageConfig`, `StorageAccess`) stay in
//! `nuage-core`, which calls no one; gRPC clients of a single caller stay with that caller.

pub mod invoker;
pub mod logsink;
pub mod registry;
pub mod storage;

pub use invoker::Invoker;
pub use logsink::LogSink;
