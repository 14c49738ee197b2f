//! Tokens: each namespace's RSA key pair and the JWTs it signs.
//!
//! Owns the `namespace_keys` and `tokens` tables. A key pair is generated when a namespace is created (off
//! the request path: the namespace stays `pending` meanwhile), on a pool of `key_workers`
//! threads off the async runtime, its private half sealed with
//! AES-256-GCM under the installation's master key; deleting the namespace destroys it. Tokens
//! are RS256 JWTs with the claims of a real Scaleway token, signed with aws-lc (the `rsa` crate
//! only generates keys). Tokens made through v1beta1 `/tokens` are stored (their text is not:
//! it is shown once); deleting one revokes it by its `jti`, and routers fetch the revoked ones.

mod config;
mod keys;
mod model;
mod service;
mod store;

pub use config::TokensConfig;
pub use keys::KeyStore;
pub use service::TokensService;
pub use store::TokenStore;

use nuage_core::served::Served;
use nuage_core::{Database, MasterKey};
use nuage_proto::tokens::v1::tokens_server::TokensServer;

/// Returns the tokens service over `database`, sealing private keys under `master_key`.
pub fn serve(config: &TokensConfig, database: Database, master_key: &MasterKey) -> Served<TokensServer<TokensService>> {
    let tokens = TokenStore::new(database.clone());
    let keys = KeyStore::new(database, master_key, config.key_bits, config.key_workers());
    Served::new(TokensServer::new(TokensService::new(keys, tokens)))
}
