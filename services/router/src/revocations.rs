//! The revoked tokens: deleted through v1beta1 `/tokens`, refused by their `jti` although
//! their signature still holds. Kept in memory and refreshed from the tokens service every
//! `revocations_refresh_ms`, as the route table is, so a request costs no query; each refresh
//! asks only for what was revoked since the last one (with an overlap for revocations
//! committed out of order), and a token is forgotten once it expired, when `exp` refuses it.

use crate::control::Control;
use nuage_core::transport::Authed;
use nuage_proto::tokens::v1::ListRevokedTokensRequest;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How far back each refresh looks before the newest revocation it saw: a revocation stamped
/// earlier but committed later (another replica, a slow transaction) is still caught.
const OVERLAP_MICROS: i64 = 60_000_000;

#[derive(Debug, Default)]
struct Revoked {
    /// `jti` -> expiry (Unix seconds, 0: never).
    tokens: HashMap<String, i64>,
    /// The newest `revoked_at` seen (Unix microseconds); `None` until the first load.
    newest: Option<i64>,
}

/// The revoked tokens the router refuses.
#[derive(Debug, Clone)]
pub struct Revocations {
    revoked: Arc<RwLock<Revoked>>,
    tokens: TokensClient<Authed>,
    control: Control,
    loading: Arc<tokio::sync::Mutex<()>>,
}

impl Revocations {
    /// Returns an empty set, filled from `tokens` (called on `control`).
    pub fn new(tokens: TokensClient<Authed>, control: Control) -> Self {
        Self {
            revoked: Arc::default(),
            tokens,
            control,
            loading: Arc::default(),
        }
    }

    /// Returns whether the token `jti` is revoked, loading the set first if it never was;
    /// `Err` when it cannot be known.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, String> {
        if self.revoked.read().expect("revocations lock").newest.is_none() {
            let this = self.clone();
            self.control
                .run(async move { this.refresh().await })
                .await
                .ok_or_else(|| "nuage is stopping".to_owned())?
                .map_err(|status| format!("cannot read revoked tokens: {}", status.message()))?;
        }
        Ok(self.revoked.read().expect("revocations lock").tokens.contains_key(jti))
    }

    /// Fetches what was revoked since the last refresh and forgets what expired.
    async fn refresh(&self) -> Result<(), tonic::Status> {
        let _one_at_a_time = self.loading.lock().await;
        let since = self
            .revoked
            .read()
            .expect("revocations lock")
            .newest
            .map_or(0, |newest| (newest - OVERLAP_MICROS).max(1));
        let listed = self
            .tokens
            .clone()
            .list_revoked_tokens(ListRevokedTokensRequest { revoked_since: since })
            .await?
            .into_inner()
            .tokens;
        let now = nuage_core::clock::now_micros() / 1_000_000;
        let mut revoked = self.revoked.write().expect("revocations lock");
        let mut newest = revoked.newest.unwrap_or(0);
        for token in listed {
            newest = newest.max(token.revoked_at);
            revoked.tokens.insert(token.jti, token.expires_at);
        }
        revoked
            .tokens
            .retain(|_, expires_at| *expires_at == 0 || *expires_at >= now);
        revoked.newest = Some(newest);
        Ok(())
    }

    /// Refreshes the set every `interval`, forever.
    pub async fn run(self, interval: Duration) {
        loop {
            if let Err(status) = self.refresh().await {
                tracing::warn!(%status, "cannot read revoked tokens");
            }
            tokio::time::sleep(interval).await;
        }
    }
}
