//! The tokens that open private functions and containers: RS256 JWTs with the claims of a real
//! Scaleway token, signed with the namespace's own key.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// `iss` of every token.
pub const ISSUER: &str = "SCALEWAY";
/// `aud` of every token.
pub const AUDIENCE: &str = "functions";

/// What a token opens: a namespace (every application in it) or one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationClaim {
    /// Set for a namespace-scoped token, else empty.
    #[serde(default)]
    pub namespace_id: String,
    /// Set for an application-scoped token, else empty.
    #[serde(default)]
    pub application_id: String,
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Exactly one element.
    pub application_claim: Vec<ApplicationClaim>,
    /// Token format version (2, as Scaleway's).
    pub version: u32,
    /// `functions`.
    pub aud: String,
    /// Unix seconds; absent: the token does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Unique token id.
    pub jti: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// `SCALEWAY`.
    pub iss: String,
    /// Not before (unix seconds).
    pub nbf: i64,
    /// `token`.
    pub sub: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Signs `claims` with `private_pem` (PKCS#1 or PKCS#8).
pub fn sign(private_pem: &[u8], claims: &Claims) -> Result<String, TokenError> {
    let key = EncodingKey::from_rsa_pem(private_pem).map_err(|error| TokenError(error.to_string()))?;
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).map_err(|error| TokenError(error.to_string()))
}

/// A namespace's public key, ready to verify tokens.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// Returns a verifier for `public_pem` (PKCS#1 `RSA PUBLIC KEY` or SPKI `PUBLIC KEY`).
    pub fn new(public_pem: &[u8]) -> Result<Self, TokenError> {
        let key = DecodingKey::from_rsa_pem(public_pem).map_err(|error| TokenError(error.to_string()))?;
        // RS256 only: `none`, HS256 keyed with the public key and every other algorithm fail.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["aud", "iss", "nbf"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        Ok(Self { key, validation })
    }

    /// Checks the signature, algorithm, issuer, audience, expiry and not-before of `token`;
    /// returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| TokenError(format!("the token is not valid: {error}")))?;
        // RFC 7519: not accepted on or after `exp` (the library lets the very second pass).
        let now = crate::clock::now_micros() / 1_000_000;
        if data.claims.exp.is_some_and(|exp| exp <= now) {
            return Err(TokenError("the token is not valid: it has expired".to_owned()));
        }
        if data.claims.application_claim.len() != 1 {
            return Err(TokenError(
                "the token must carry exactly one application claim".to_owned(),
            ));
        }
        Ok(data.claims)
    }
}
