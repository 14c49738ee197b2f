//! Secrets at rest: AES-256-GCM under a key derived from the master key, with a random nonce per
//! message and the row it belongs to as associated data (a sealed value moved to another row
//! does not open).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("a sealed value does not open (wrong master key, or corrupt)")]
pub struct SealError;

fn key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 256-bit key"))
}

/// Encrypts `plaintext` bound to `context`; returns hex of nonce followed by ciphertext and tag.
pub fn seal(secret: &[u8; 32], context: &str, plaintext: &[u8]) -> String {
    let mut nonce = [0_u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("the system's random source");
    let mut sealed = plaintext.to_vec();
    key(secret)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut sealed,
        )
        .expect("sealing cannot fail on a valid key");
    let mut out = nonce.to_vec();
    out.extend(sealed);
    hex::encode(out)
}

/// Decrypts what [`seal`] returned for the same `context`.
pub fn open(secret: &[u8; 32], context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
    let bytes = hex::decode(sealed).map_err(|_| SealError)?;
    if bytes.len() < NONCE_LEN {
        return Err(SealError);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
    let mut buffer = ciphertext.to_vec();
    let plain = key(secret)
        .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
        .map_err(|_| SealError)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let secret = [7_u8; 32];
        let sealed = seal(&secret, "row-1", b"private key");
        assert!(!sealed.contains(&hex::encode(b"private key")));
        assert_eq!(open(&secret, "row-1", &sealed).unwrap(), b"private key");
        assert!(open(&secret, "row-2", &sealed).is_err());
        assert!(open(&[8_u8; 32], "row-1", &sealed).is_err());
        assert_ne!(
            seal(&secret, "row-1", b"x"),
            seal(&secret, "row-1", b"x"),
            "fresh nonce each time"
        );
    }
}
