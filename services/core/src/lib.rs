//! Shared foundations of nuage, used by every service and by the gateway.
//!
//! Owns: the closed [`ErrorCode`] table and the [`ApiError`] carried over gRPC, ids, the
//! [`Caller`] a request acts for, pagination, the database pool and its migrator, the master
//! key, sealing of secrets at rest, the namespace tokens (JWT), shared config types, the
//! internal gRPC credential, the gRPC [`Transport`], the [`served::Served`] shape in which
//! each service crate hands itself to the process, how HTTP listeners hold their client
//! connections ([`listener`]), and how services render their figures for `/metrics`
//! ([`figures`]). It holds no business logic and no tables of its own, and calls no service:
//! clients of other parts live in `nuage-clients`.

pub mod caller;
pub mod clock;
pub mod db;
pub mod error;
pub mod figures;
pub mod follow;
pub mod ids;
pub mod instance;
pub mod internal;
pub mod jwt;
pub mod listener;
pub mod pagination;
pub mod seal;
pub mod secret;
pub mod secrets;
pub mod served;
pub mod storage;
pub mod transport;
pub mod validate;
pub mod wasm;
pub mod workers;

pub use caller::Caller;
pub use db::Database;
pub use error::{ApiError, ErrorCode, Violation};
pub use pagination::Page;
pub use secret::{MasterKey, Secret};
pub use transport::Transport;
