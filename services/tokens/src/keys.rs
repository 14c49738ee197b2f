//! Namespace key pairs in the database, private halves sealed.

use nuage_core::{ApiError, Database, MasterKey, seal};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Key pairs in the database.
#[derive(Clone)]
pub struct KeyStore {
    database: Database,
    sealing: [u8; 32],
    bits: usize,
    /// One permit per key pair being made: the pool's size. Tokio's semaphore is fair, so
    /// requests are served in the order they came.
    makers: Arc<Semaphore>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("bits", &self.bits)
            .field("free_makers", &self.makers.available_permits())
            .finish_non_exhaustive()
    }
}

/// What a private key is sealed to: its namespace.
fn context(namespace_id: &str) -> String {
    format!("namespace-key:{namespace_id}")
}

impl KeyStore {
    /// Returns a store over `database` that seals private keys under `master_key` and makes
    /// keys of `bits` bits, `workers` at once.
    pub fn new(database: Database, master_key: &MasterKey, bits: usize, workers: usize) -> Self {
        Self {
            database,
            sealing: master_key.derive("namespace-keys"),
            bits: bits.max(2048),
            makers: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    /// Returns the namespace's public key (PKCS#1 PEM), making the pair first if it has none.
    pub async fn create(&self, namespace_id: &str) -> Result<String, ApiError> {
        if let Some(public) = self.public_key(namespace_id).await? {
            return Ok(public);
        }
        let turn = self
            .makers
            .clone()
            .acquire_owned()
            .await
            .map_err(|error| ApiError::internal(&error))?;
        // Made by another request while this one waited its turn.
        if let Some(public) = self.public_key(namespace_id).await? {
            return Ok(public);
        }
        let bits = self.bits;
        let started = std::time::Instant::now();
        // The turn goes with the work: should this request be dropped, the thread still ends
        // its key before the next one starts.
        let (private_pem, public_pem) = tokio::task::spawn_blocking(move || -> Result<(String, String), String> {
            let _turn = turn;
            let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(|error| error.to_string())?;
            let public = RsaPublicKey::from(&private);
            let private_pem = private
                .to_pkcs1_pem(LineEnding::LF)
                .map_err(|error| error.to_string())?
                .to_string();
            let public_pem = public.to_pkcs1_pem(LineEnding::LF).map_err(|error| error.to_string())?;
            Ok((private_pem, public_pem))
        })
        .await
        .map_err(|error| ApiError::internal(&error))?
        .map_err(|error| ApiError::internal(&error))?;
        tracing::info!(
            namespace_id,
            bits,
            took_ms = started.elapsed().as_millis() as u64,
            "namespace key pair made"
        );
        let sealed = seal::seal(&self.sealing, &context(namespace_id), private_pem.as_bytes());
        // Two makers at once: the first one stored wins, both answer its key.
        sqlx::query(
            "insert into namespace_keys (namespace_id, public_key, private_key_sealed, bits, created_at) \
             values ($1, $2, $3, $4, $5) on conflict (namespace_id) do nothing",
        )
        .bind(namespace_id)
        .bind(&public_pem)
        .bind(sealed)
        .bind(i64::try_from(bits).unwrap_or(i64::MAX))
        .bind(nuage_core::clock::now_micros())
        .execute(self.database.pool())
        .await?;
        self.public_key(namespace_id)
            .await?
            .ok_or_else(|| ApiError::internal(&"a key pair vanished as it was stored"))
    }

    /// Returns the namespace's public key (PKCS#1 PEM).
    pub async fn public_key(&self, namespace_id: &str) -> Result<Option<String>, ApiError> {
        Ok(
            sqlx::query_scalar("select public_key from namespace_keys where namespace_id = $1")
                .bind(namespace_id)
                .fetch_optional(self.database.pool())
                .await?,
        )
    }

    /// Returns the namespace's private key (PKCS#1 PEM), unsealed.
    pub async fn private_key(&self, namespace_id: &str) -> Result<Option<(Vec<u8>, String)>, ApiError> {
        let row = sqlx::query("select public_key, private_key_sealed from namespace_keys where namespace_id = $1")
            .bind(namespace_id)
            .fetch_optional(self.database.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: String = row.try_get("private_key_sealed")?;
        let private =
            seal::open(&self.sealing, &context(namespace_id), &sealed).map_err(|error| ApiError::internal(&error))?;
        Ok(Some((private, row.try_get("public_key")?)))
    }

    /// Destroys the namespace's key pair.
    pub async fn delete(&self, namespace_id: &str) -> Result<(), ApiError> {
        self.database
            .delete_where("namespace_keys", "namespace_id", namespace_id)
            .await?;
        Ok(())
    }
}
