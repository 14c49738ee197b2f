//! `X-Auth-Token` authentication.
//!
//! Verified tokens are cached (keyed by their SHA-256, bounded), so the request path pays no
//! argon2 verification. An entry older than `auth_cache_ttl_seconds` is still served but
//! re-verified in the background (a revoked key is then dropped at once), and no entry lives
//! past twice that TTL (at most 10 s): a revoked key stops working within 10 s, and a key in
//! steady use never waits for argon2 again.
//! Failed attempts are counted per client address; past a limit the address's failures are
//! answered 429 instead of 401. A valid key always passes, whatever its address did: every
//! tenant's functions share the host's address, so refusing the address would let one tenant
//! lock all others out. Guessing costs no argon2 work anyway: iam finds a key by its keyed
//! digest first and runs argon2 only on a match, so a wrong secret costs one indexed lookup.

use crate::GatewayState;
use crate::clients::ServiceClients;
use crate::config::GatewayConfig;
use crate::error::HttpError;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use moka::future::Cache;
use nuage_core::transport::Authed;
use nuage_core::{ApiError, Caller, ErrorCode};
use nuage_proto::iam::v1::VerifyTokenRequest;
use nuage_proto::iam::v1::iam_client::IamClient;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The header clients authenticate with (matched case-insensitively).
pub(crate) const AUTH_HEADER: &str = "x-auth-token";

/// A verified token.
struct Verified {
    caller: Caller,
    verified_at: Instant,
    refreshing: AtomicBool,
}

pub(crate) struct Authenticator {
    verified: Cache<[u8; 32], Arc<Verified>>,
    refresh_after: Duration,
    failures: Cache<IpAddr, Arc<AtomicU32>>,
    failure_limit: u32,
    failure_window_seconds: u64,
    clients: ServiceClients,
}

impl Authenticator {
    pub(crate) fn new(config: &GatewayConfig, clients: ServiceClients) -> Self {
        Self {
            verified: Cache::builder()
                .max_capacity(config.auth_cache_capacity)
                .time_to_live(Duration::from_secs(config.auth_cache_ttl_seconds * 2))
                .build(),
            refresh_after: Duration::from_secs(config.auth_cache_ttl_seconds),
            failures: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(config.auth_failure_window_seconds))
                .build(),
            failure_limit: config.auth_failure_limit,
            failure_window_seconds: config.auth_failure_window_seconds,
            clients,
        }
    }

    /// Returns the caller a token belongs to.
    async fn authenticate(&self, address: IpAddr, token: Option<&str>) -> Result<Caller, HttpError> {
        let Some(token) = token.map(str::trim).filter(|token| !token.is_empty()) else {
            return Err(self.refuse(address).await);
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let iam = self.clients.iam.clone();
        let verified = self.verified.try_get_with(key, verify(iam, token.to_owned())).await;
        match verified {
            Ok(entry) => {
                if entry.verified_at.elapsed() >= self.refresh_after && !entry.refreshing.swap(true, Ordering::Relaxed)
                {
                    self.refresh(key, token.to_owned());
                }
                Ok(entry.caller)
            }
            Err(error) if error.code == ErrorCode::Unauthenticated => Err(self.refuse(address).await),
            Err(error) => Err(HttpError::Api((*error).clone())),
        }
    }

    /// Counts a failed authentication from `address` and returns its answer: 401, or 429 once
    /// the address is past the limit.
    async fn refuse(&self, address: IpAddr) -> HttpError {
        let counter = self
            .failures
            .get_with(address, async { Arc::new(AtomicU32::new(0)) })
            .await;
        let previous = counter.fetch_add(1, Ordering::Relaxed);
        if previous < self.failure_limit {
            return ApiError::unauthenticated().into();
        }
        if previous == self.failure_limit {
            tracing::warn!(client = %address, "authentication failures over the limit; throttling");
        }
        HttpError::TooManyRequests {
            quota: self.failure_limit,
            window_seconds: self.failure_window_seconds,
        }
    }

    /// Re-verifies a cached token in the background: replaces the entry if the key is still
    /// valid, drops it if it was revoked, and leaves it to expire if iam cannot answer.
    fn refresh(&self, key: [u8; 32], token: String) {
        let cache = self.verified.clone();
        let iam = self.clients.iam.clone();
        tokio::spawn(async move {
            match verify(iam, token).await {
                Ok(entry) => cache.insert(key, entry).await,
                Err(error) if error.code == ErrorCode::Unauthenticated => cache.invalidate(&key).await,
                Err(error) => tracing::warn!(error = %error, "token re-verification failed"),
            }
        });
    }
}

/// Asks iam who a token belongs to.
async fn verify(mut iam: IamClient<Authed>, token: String) -> Result<Arc<Verified>, ApiError> {
    let response = iam
        .verify_token(VerifyTokenRequest { secret_key: token })
        .await
        .map_err(|status| ApiError::from_status(&status))?
        .into_inner();
    Ok(Arc::new(Verified {
        caller: Caller::from_proto(response.caller.as_ref())?,
        verified_at: Instant::now(),
        refreshing: AtomicBool::new(false),
    }))
}

/// Middleware on API routes: resolves the caller or answers 401 (429 past the failure limit).
pub(crate) async fn require_caller(
    State(state): State<GatewayState>,
    mut request: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let token = request.headers().get(AUTH_HEADER).and_then(|value| value.to_str().ok());
    let caller = state.inner.auth.authenticate(address, token).await?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
