//! Identity for nuage: organizations (tenants), their projects, and API keys.
//!
//! Owns the `organizations`, `projects` and `api_keys` tables. Serves `VerifyToken` to the
//! gateway and offers tenant administration to `nuage admin` through [`IamStore`]. It does not
//! cache verifications (the gateway does) nor throttle clients (the gateway does).

mod convert;
mod error;
mod model;
mod service;
mod store;

pub use error::IamError;
pub use model::{AccessKey, NewApiKey, SecretKey};
pub use service::IamService;
pub use store::IamStore;
