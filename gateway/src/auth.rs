//! `X-Auth-Token` authentication.
//!
//! Verified tokens are cached (keyed by their SHA-256, bounded, with a TTL of at most 10 s), so
//! the request path pays no argon2 verification and a revoked key stops working within the TTL.
//! Failed attempts are counted per client address; past a limit the address gets 429 without
//! reaching iam, so the API cannot be used to burn CPU.

use crate::GatewayState;
use crate::clients::ServiceClients;
use crate::config::GatewayConfig;
use crate::error::HttpError;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use moka::future::Cache;
use nuage_core::{ApiError, Caller, ErrorCode};
use nuage_proto::iam::v1::VerifyTokenRequest;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The header clients authenticate with (matched case-insensitively).
pub(crate) const AUTH_HEADER: &str = "x-auth-token";

pub(crate) struct Authenticator {
    verified: Cache<[u8; 32], Caller>,
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
                .time_to_live(Duration::from_secs(config.auth_cache_ttl_seconds))
                .build(),
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
        if let Some(failures) = self.failures.get(&address).await
            && failures.load(Ordering::Relaxed) >= self.failure_limit
        {
            return Err(HttpError::TooManyRequests {
                quota: self.failure_limit,
                window_seconds: self.failure_window_seconds,
            });
        }
        let Some(token) = token.map(str::trim).filter(|token| !token.is_empty()) else {
            self.record_failure(address).await;
            return Err(ApiError::unauthenticated().into());
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut iam = self.clients.iam.clone();
        let verified = self
            .verified
            .try_get_with(key, async move {
                let response = iam
                    .verify_token(VerifyTokenRequest {
                        secret_key: token.to_owned(),
                    })
                    .await
                    .map_err(|status| ApiError::from_status(&status))?
                    .into_inner();
                Caller::from_proto(response.caller.as_ref())
            })
            .await;
        match verified {
            Ok(caller) => Ok(caller),
            Err(error) if error.code == ErrorCode::Unauthenticated => {
                self.record_failure(address).await;
                Err(ApiError::unauthenticated().into())
            }
            Err(error) => Err(HttpError::Api((*error).clone())),
        }
    }

    async fn record_failure(&self, address: IpAddr) {
        let counter = self
            .failures
            .get_with(address, async { Arc::new(AtomicU32::new(0)) })
            .await;
        let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if count == self.failure_limit {
            tracing::warn!(client = %address, "authentication failures over the limit; throttling");
        }
    }
}

/// Middleware on API routes: resolves the caller or answers 401/429.
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
