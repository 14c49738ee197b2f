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
    /// How many key pairs are kept made ahead of need (0: none), so that a new namespace is
    /// ready at once; refilled one at a time, beside the `key_workers`, after each is taken.
    pub key_stock: usize,
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
            key_stock: 2,
        }
    }
}
