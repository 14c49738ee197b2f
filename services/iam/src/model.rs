//! API key credentials.

use rand::Rng;
use uuid::Uuid;

/// An access key: `SCW` and 17 uppercase letters or digits, the form real clients check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey(String);

impl AccessKey {
    /// Returns a new random access key.
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = rand::rng();
        let suffix: String = (0..17)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Self(format!("SCW{suffix}"))
    }

    /// Returns the access key in `value` if it has the right form.
    pub fn parse(value: &str) -> Option<Self> {
        let valid = value.len() == 20
            && value.starts_with("SCW")
            && value[3..].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        valid.then(|| Self(value.to_owned()))
    }

    /// Returns the key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A secret key: a random UUID v4 in its 36-character form (clients refuse other lengths).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Uuid);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// Returns a new random secret key.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// Returns the secret key in `value`, which must be a UUID.
    pub fn parse(value: &str) -> Option<Self> {
        Uuid::try_parse(value.trim()).ok().map(Self)
    }

    /// Returns the canonical (lowercase, hyphenated) text, which is what gets hashed.
    pub fn expose(&self) -> String {
        self.0.to_string()
    }
}

/// A freshly created API key, the only moment its secret is known.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The tenant.
    pub organization_id: Uuid,
    /// The tenant's default project.
    pub project_id: Uuid,
    /// The public half.
    pub access_key: AccessKey,
    /// The secret half; stored only as a hash.
    pub secret_key: SecretKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_forms_clients_check() {
        for _ in 0..100 {
            let access = AccessKey::generate();
            assert!(AccessKey::parse(access.as_str()).is_some(), "{}", access.as_str());
            let secret = SecretKey::generate().expose();
            assert_eq!(secret.len(), 36);
        }
        assert!(AccessKey::parse("SCWabcdefghijklmnopq").is_none());
        assert!(SecretKey::parse("not-a-uuid").is_none());
    }
}
