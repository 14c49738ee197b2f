//! Namespace key pairs in the database, private halves sealed, and a stock of pairs made
//! ahead of need.

use nuage_core::{ApiError, Database, MasterKey, seal};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rsa::pkcs1::der::zeroize::Zeroizing;
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sqlx::Row;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

/// How long the stock waits before it tries again after failing to make a pair.
const STOCK_RETRY: Duration = Duration::from_secs(10);

/// Key pairs in the database.
#[derive(Clone)]
pub struct KeyStore {
    database: Database,
    sealing: [u8; 32],
    bits: usize,
    /// One permit per key pair being made on demand: the pool's size. Tokio's semaphore is
    /// fair, so requests are served in the order they came.
    makers: Arc<Semaphore>,
    stock: Arc<Stock>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("bits", &self.bits)
            .field("free_makers", &self.makers.available_permits())
            .field("stocked", &self.stock.figures.stocked.get())
            .finish_non_exhaustive()
    }
}

/// A key pair in PEM (PKCS#1), its private half wiped from memory when dropped.
struct Pair {
    private_pem: Zeroizing<String>,
    public_pem: String,
}

/// Makes a key pair of `bits` bits (seconds of one core at 4096 bits).
fn make_pair(bits: usize) -> Result<Pair, String> {
    let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(|error| error.to_string())?;
    let public = RsaPublicKey::from(&private);
    Ok(Pair {
        private_pem: private
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|error| error.to_string())?,
        public_pem: public.to_pkcs1_pem(LineEnding::LF).map_err(|error| error.to_string())?,
    })
}

/// Key pairs made ahead of need, so that a new namespace gets one at once; a task refills it.
struct Stock {
    /// How many pairs it keeps (0: none; every pair is made on demand).
    size: usize,
    pairs: Mutex<Vec<Pair>>,
    /// Wakes the refilling task when a pair was taken.
    taken: Notify,
    figures: Figures,
}

impl Stock {
    fn take(&self) -> Option<Pair> {
        let pair = self
            .pairs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()?;
        self.figures.stocked.dec();
        self.taken.notify_one();
        Some(pair)
    }

    fn put(&self, pair: Pair) {
        self.pairs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(pair);
        self.figures.stocked.inc();
    }

    fn full(&self) -> bool {
        self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len() >= self.size
    }
}

#[derive(Debug, Default)]
struct Figures {
    stocked: Gauge,
    from_stock: Counter,
    made_on_demand: Counter,
}

/// The tokens service's figures, in the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Registry>);

impl Metrics {
    /// Renders the figures (without the `# EOF` line, so that they can be appended).
    pub fn render(&self) -> String {
        nuage_core::figures::render(&self.0)
    }
}

/// What a private key is sealed to: its namespace.
fn context(namespace_id: &str) -> String {
    format!("namespace-key:{namespace_id}")
}

impl KeyStore {
    /// Returns a store over `database` that seals private keys under `master_key`, makes keys
    /// of `bits` bits on demand `workers` at once, and keeps `stock` pairs made ahead (once
    /// [`KeyStore::keep_stock`] runs).
    pub fn new(database: Database, master_key: &MasterKey, bits: usize, workers: usize, stock: usize) -> Self {
        Self {
            database,
            sealing: master_key.derive("namespace-keys"),
            bits: bits.max(2048),
            makers: Arc::new(Semaphore::new(workers.max(1))),
            stock: Arc::new(Stock {
                size: stock,
                pairs: Mutex::new(Vec::with_capacity(stock)),
                taken: Notify::new(),
                figures: Figures::default(),
            }),
        }
    }

    /// Returns the store's figures.
    pub fn metrics(&self) -> Metrics {
        let mut registry = Registry::with_prefix("nuage_tokens");
        let figures = &self.stock.figures;
        registry.register(
            "key_pairs_stocked",
            "Namespace key pairs made ahead of need and not yet given to a namespace",
            figures.stocked.clone(),
        );
        registry.register(
            "key_pairs_from_stock",
            "Namespaces given a key pair from the stock",
            figures.from_stock.clone(),
        );
        registry.register(
            "key_pairs_made_on_demand",
            "Namespaces given a key pair made for them (the stock was empty)",
            figures.made_on_demand.clone(),
        );
        Metrics(Arc::new(registry))
    }

    /// Starts the task that keeps the stock full, making one pair at a time on a thread
    /// outside the async runtime and beside the on-demand makers; `None` when the stock's size
    /// is 0.
    pub fn keep_stock(&self) -> Option<JoinHandle<()>> {
        if self.stock.size == 0 {
            return None;
        }
        let stock = self.stock.clone();
        let bits = self.bits;
        Some(tokio::spawn(async move {
            loop {
                // A permit stored by `take` while a pair was being made is consumed here.
                if stock.full() {
                    stock.taken.notified().await;
                    continue;
                }
                let started = Instant::now();
                match tokio::task::spawn_blocking(move || make_pair(bits)).await {
                    Ok(Ok(pair)) => {
                        tracing::debug!(bits, took_ms = started.elapsed().as_millis() as u64, "key pair stocked");
                        stock.put(pair);
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "a key pair for the stock could not be made; trying again");
                        tokio::time::sleep(STOCK_RETRY).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the thread making a key pair for the stock failed; trying again");
                        tokio::time::sleep(STOCK_RETRY).await;
                    }
                }
            }
        }))
    }

    /// Returns the namespace's public key (PKCS#1 PEM), giving it a pair first if it has none:
    /// one from the stock, or one made for it.
    pub async fn create(&self, namespace_id: &str) -> Result<String, ApiError> {
        if let Some(public) = self.public_key(namespace_id).await? {
            return Ok(public);
        }
        let (pair, given) = match self.stock.take() {
            Some(pair) => {
                tracing::info!(
                    namespace_id,
                    bits = self.bits,
                    "namespace key pair taken from the stock"
                );
                (pair, &self.stock.figures.from_stock)
            }
            None => match self.make_on_demand(namespace_id).await? {
                Some(pair) => (pair, &self.stock.figures.made_on_demand),
                None => return self.stored_public_key(namespace_id).await,
            },
        };
        let sealed = seal::seal(&self.sealing, &context(namespace_id), pair.private_pem.as_bytes());
        // Two makers at once: the first one stored wins, both answer its key.
        let stored = sqlx::query(
            "insert into namespace_keys (namespace_id, public_key, private_key_sealed, bits, created_at) \
             values ($1, $2, $3, $4, $5) on conflict (namespace_id) do nothing",
        )
        .bind(namespace_id)
        .bind(&pair.public_pem)
        .bind(sealed)
        .bind(i64::try_from(self.bits).unwrap_or(i64::MAX))
        .bind(nuage_core::clock::now_micros())
        .execute(self.database.pool())
        .await?;
        // Counted once stored: a pair that lost the race to another is not the namespace's.
        if stored.rows_affected() == 1 {
            given.inc();
        }
        self.stored_public_key(namespace_id).await
    }

    /// Makes a pair for the namespace when its turn comes; `None` when another request gave
    /// it one meanwhile.
    async fn make_on_demand(&self, namespace_id: &str) -> Result<Option<Pair>, ApiError> {
        let turn = self
            .makers
            .clone()
            .acquire_owned()
            .await
            .map_err(|error| ApiError::internal(&error))?;
        if self.public_key(namespace_id).await?.is_some() {
            return Ok(None);
        }
        let bits = self.bits;
        let started = Instant::now();
        // The turn goes with the work: should this request be dropped, the thread still ends
        // its key before the next one starts.
        let pair = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            make_pair(bits)
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
        Ok(Some(pair))
    }

    async fn stored_public_key(&self, namespace_id: &str) -> Result<String, ApiError> {
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
