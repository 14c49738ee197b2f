//! Tokens: each namespace's RSA key pair and the JWTs it signs.
//!
//! Owns the `namespace_keys` and `tokens` tables. A namespace gets its key pair when it is
//! created (off the request path: the namespace stays `pending` meanwhile): one of the
//! `key_stock` pairs made ahead of need, or, when the stock is empty, one made for it on a pool
//! of `key_workers` threads off the async runtime; its private half is sealed with
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
pub use keys::{KeyStore, Metrics};
pub use service::TokensService;
pub use store::TokenStore;

use nuage_core::served::Served;
use nuage_core::{Database, MasterKey};
use nuage_proto::tokens::v1::tokens_server::TokensServer;

/// Returns the tokens service over `database`, sealing private keys under `master_key`, with
/// the task keeping its stock of key pairs and its figures.
pub fn serve(
    config: &TokensConfig,
    database: Database,
    master_key: &MasterKey,
) -> Served<TokensServer<TokensService>, Metrics> {
    let tokens = TokenStore::new(database.clone());
    let keys = KeyStore::new(
        database,
        master_key,
        config.key_bits,
        config.key_workers(),
        config.key_stock,
    );
    let metrics = keys.metrics();
    let stocking = keys.keep_stock();
    Served::new(TokensServer::new(TokensService::new(keys, tokens)))
        .with_background(stocking)
        .with_handle(metrics)
}
