//! Secrets in memory, and the master key that protects secrets at rest.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer};
use sha2::Sha256;
use std::io::Write;
use std::path::Path;

/// A secret string: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl serde::Serialize for Secret {
    // Serialising a config back out (e.g. for `nuage config`) must not leak it either.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// Errors loading the master key.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The key is not 64 hexadecimal characters.
    #[error("master key must be 64 hexadecimal characters (32 bytes)")]
    Malformed,
    /// The key file could not be read or created.
    #[error("master key file `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The installation's master key: 32 bytes from configuration or a file, never from the
/// database. Purpose-specific keys are derived from it so that no two uses share a key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Returns the key written as 64 hex characters.
    pub fn from_hex(hex_key: &str) -> Result<Self, MasterKeyError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| MasterKeyError::Malformed)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self(bytes))
    }

    /// Returns the key stored in `path`, creating the file (mode 0600) with a random key if it
    /// does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let mut file = create_private_file(path).map_err(io)?;
                file.write_all(hex::encode(key).as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Self(key))
            }
            Err(error) => Err(io(error)),
        }
    }

    /// Returns a key for one purpose (e.g. `"api-key-digest"`), derived with HMAC-SHA256.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(b"nuage/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Returns the hex HMAC-SHA256 of `data` under `key`: a digest that can be indexed and looked up
/// but not recomputed without the key.
pub fn keyed_digest(key: &[u8; 32], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// Creates `path` for writing with mode 0600 (owner only), failing if it exists.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_debug_print() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
    }

    #[test]
    fn master_key_file_is_created_private_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(first.derive("x"), again.derive("x"));
        assert_ne!(first.derive("x"), first.derive("y"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(MasterKey::from_hex("abcd"), Err(MasterKeyError::Malformed)));
    }
}
