//! Configuration of the tokens service.

use serde::{Deserialize, Serialize};

/// The `[tokens]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// Size of each namespace's RSA key (2048 at least).
    pub key_bits: usize,
    /// How many key pairs are made at once (0: one per core), each on a thread of its own
    /// outside the async runtime; more requests wait their turn, first come first served.
    pub key_workers: usize,
}

impl TokensConfig {
    /// Returns how many key pairs to make at once: `key_workers`, or the number of cores when
    /// that is 0.
    pub fn key_workers(&self) -> usize {
        nuage_core::workers::or_cores(self.key_workers)
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            key_bits: 4096,
            key_workers: 0,
        }
    }
}
