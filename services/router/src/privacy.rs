//! The token check of private functions and containers: an RS256 JWT signed by the
//! namespace's key, in `SCW_FUNCTIONS_TOKEN`, `SCW-Functions-Token` or `X-Auth-Token`.

use crate::control::Control;
use crate::revocations::Revocations;
use crate::routes::Route;
use http::{HeaderMap, HeaderName};
use nuage_core::jwt::{Claims, Verifier};
use nuage_core::transport::Authed;
use nuage_proto::tokens::v1::KeyPairRequest;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The headers a token may come in, in the order they are looked at. None reaches the code.
pub const TOKEN_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("scw_functions_token"),
    HeaderName::from_static("scw-functions-token"),
    HeaderName::from_static("x-auth-token"),
];

/// Why a call to a private application is refused.
#[derive(Debug)]
pub enum Refusal {
    /// No token at all.
    Missing,
    /// A token that does not open this application.
    Invalid(String),
    /// The namespace's key could not be read.
    Unavailable(String),
}

/// Verifies tokens, keeping namespace keys and verified tokens (never past their `exp`).
#[derive(Debug, Clone)]
pub struct Privacy {
    tokens: TokensClient<Authed>,
    /// Where keys are fetched (checks run on the router's workers).
    control: Control,
    keys: Arc<RwLock<HashMap<String, Verifier>>>,
    verified: moka::sync::Cache<(String, String), Arc<Claims>>,
    /// Tokens deleted by their tenant: refused even from `verified`.
    revocations: Revocations,
}

impl Privacy {
    /// Returns a checker that reads namespace keys from `tokens`, on `control`, and refuses
    /// what `revocations` holds.
    pub fn new(tokens: TokensClient<Authed>, control: Control, revocations: Revocations) -> Self {
        Self {
            tokens,
            control,
            revocations,
            keys: Arc::default(),
            verified: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }

    async fn verifier(&self, namespace_id: &str) -> Result<Verifier, Refusal> {
        if let Some(verifier) = self.keys.read().expect("keys lock").get(namespace_id) {
            return Ok(verifier.clone());
        }
        let mut tokens = self.tokens.clone();
        let request = KeyPairRequest {
            namespace_id: namespace_id.to_owned(),
        };
        let pem = self
            .control
            .run(async move { tokens.get_public_key(request).await })
            .await
            .ok_or_else(|| Refusal::Unavailable("nuage is stopping".to_owned()))?
            .map_err(|status| Refusal::Unavailable(status.message().to_owned()))?
            .into_inner()
            .pem;
        let verifier = Verifier::new(pem.as_bytes()).map_err(|error| Refusal::Unavailable(error.to_string()))?;
        self.keys
            .write()
            .expect("keys lock")
            .insert(namespace_id.to_owned(), verifier.clone());
        Ok(verifier)
    }

    /// Checks that `headers` carry a token that opens `route`.
    pub async fn check(&self, route: &Route, headers: &HeaderMap) -> Result<(), Refusal> {
        let token = TOKEN_HEADERS
            .iter()
            .find_map(|name| headers.get(name))
            .and_then(|value| value.to_str().ok())
            .map(|value| value.trim().trim_start_matches("Bearer ").trim())
            .filter(|value| !value.is_empty())
            .ok_or(Refusal::Missing)?;
        let now = nuage_core::clock::now_micros() / 1_000_000;
        let cache_key = (route.namespace_id.clone(), token.to_owned());
        let claims = match self.verified.get(&cache_key) {
            Some(claims) if claims.exp.is_none_or(|exp| exp > now) => claims,
            _ => {
                let verifier = self.verifier(&route.namespace_id).await?;
                let claims = Arc::new(
                    verifier
                        .verify(token)
                        .map_err(|error| Refusal::Invalid(error.to_string()))?,
                );
                self.verified.insert(cache_key, claims.clone());
                claims
            }
        };
        if self
            .revocations
            .is_revoked(&claims.jti)
            .await
            .map_err(Refusal::Unavailable)?
        {
            return Err(Refusal::Invalid("the token was deleted".to_owned()));
        }
        let claim = &claims.application_claim[0];
        let opens = (!claim.namespace_id.is_empty() && claim.namespace_id == route.namespace_id)
            || (!claim.application_id.is_empty() && claim.application_id == route.application_id);
        if !opens {
            return Err(Refusal::Invalid(
                "the token is for another namespace or application".to_owned(),
            ));
        }
        Ok(())
    }

    /// Forgets a namespace's key (it was deleted).
    pub fn forget(&self, namespace_id: &str) {
        self.keys.write().expect("keys lock").remove(namespace_id);
    }
}
