//! Identity for nuage: organizations (tenants), their projects, and API keys.
//!
//! Owns the `organizations`, `projects` and `api_keys` tables. Serves `VerifyToken` to the
//! gateway and offers tenant administration to `nuage admin` through [`IamStore`]; [`serve`]
//! creates the `default` tenant on a database without one. It does not cache verifications
//! (the gateway does) nor throttle clients (the gateway does).

mod convert;
mod error;
mod model;
mod service;
mod store;

pub use error::IamError;
pub use model::{AccessKey, NewApiKey, SecretKey};
pub use service::IamService;
pub use store::IamStore;

use nuage_core::served::Served;
use nuage_core::{Database, MasterKey};
use nuage_proto::iam::v1::iam_server::IamServer;

/// Returns the iam service over `database`, keyed from `master_key`. On a database without
/// tenants it first creates the `default` one: its first key is the handle (the only time its
/// secret is at hand).
pub async fn serve(
    database: Database,
    master_key: &MasterKey,
) -> Result<Served<IamServer<IamService>, Option<NewApiKey>>, IamError> {
    let store = IamStore::new(database, master_key);
    let bootstrap = if store.is_empty().await? {
        Some(store.create_tenant("default").await?)
    } else {
        None
    };
    Ok(Served::new(IamServer::new(IamService::new(store))).with_handle(bootstrap))
}
