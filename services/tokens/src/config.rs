//! Configuration of the tokens service.

use serde::{Deserialize, Serialize};

/// The `[tokens]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// Size of each namespace's RSA key (2048 at least).
    pub key_bits: usize,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self { key_bits: 4096 }
    }
}
