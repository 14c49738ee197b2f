//! The tokens gRPC service.

use crate::keys::KeyStore;
use crate::model::{MAX_DESCRIPTION_CHARS, Token};
use crate::store::{TokenFilter, TokenStore};
use nuage_core::error::Reason;
use nuage_core::ids::{optional_id, parse_id};
use nuage_core::jwt::{self, ApplicationClaim, Claims};
use nuage_core::{ApiError, Caller, ErrorCode, Page, validate};
use nuage_proto::tokens::v1::{self as pb, tokens_server::Tokens};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Serves `nuage.tokens.v1.Tokens`.
#[derive(Debug, Clone)]
pub struct TokensService {
    keys: KeyStore,
    tokens: TokenStore,
}

impl TokensService {
    /// Returns a service over `keys` and `tokens`.
    pub fn new(keys: KeyStore, tokens: TokenStore) -> Self {
        Self { keys, tokens }
    }

    /// Signs a token of the namespace (or of one application of it, `application_id`) that
    /// expires at `expires_at` (Unix seconds, 0: never), with `jti` as its id; `argument`
    /// names the expiry in errors. Returns the JWT and the namespace's public key.
    async fn sign(
        &self,
        namespace_id: &str,
        application_id: Option<Uuid>,
        expires_at: i64,
        jti: Uuid,
        argument: &str,
    ) -> Result<(String, String), ApiError> {
        let (private, public_key) = self.keys.private_key(namespace_id).await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::FailedPrecondition,
                format!("namespace {namespace_id} has no key pair yet; retry once it is ready"),
            )
        })?;
        let now = nuage_core::clock::now_micros() / 1_000_000;
        if expires_at != 0 && expires_at <= now {
            return Err(ApiError::invalid_argument(
                argument,
                Reason::Constraint,
                "must be in the future",
            ));
        }
        let claim = match application_id {
            None => ApplicationClaim {
                namespace_id: namespace_id.to_owned(),
                application_id: String::new(),
            },
            Some(application_id) => ApplicationClaim {
                namespace_id: String::new(),
                application_id: application_id.to_string(),
            },
        };
        let claims = Claims {
            application_claim: vec![claim],
            version: 2,
            aud: jwt::AUDIENCE.to_owned(),
            exp: (expires_at != 0).then_some(expires_at),
            jti: jti.to_string(),
            iat: now,
            iss: jwt::ISSUER.to_owned(),
            nbf: now,
            sub: "token".to_owned(),
        };
        let token = jwt::sign(&private, &claims).map_err(|error| ApiError::internal(&error))?;
        Ok((token, public_key))
    }
}

/// Returns the proto of a stored token; `issued` (the JWT and the public key) only on create.
fn to_proto(token: Token, issued: Option<(String, String)>) -> pb::Token {
    let status = if token.revoked_at.is_some() {
        pb::TokenStatus::Deleting
    } else {
        pb::TokenStatus::Ready
    };
    let (text, public_key) = issued.unwrap_or_default();
    pb::Token {
        id: token.id.to_string(),
        organization_id: token.organization_id.to_string(),
        region: token.region,
        namespace_id: token.namespace_id.to_string(),
        application_id: token.application_id.map(|id| id.to_string()).unwrap_or_default(),
        description: token.description,
        expires_at: token.expires_at.unwrap_or(0),
        status: status as i32,
        created_at: token.created_at,
        updated_at: token.updated_at,
        token: text,
        public_key,
    }
}

fn answer(token: Token, issued: Option<(String, String)>) -> Response<pb::TokenResponse> {
    Response::new(pb::TokenResponse {
        token: Some(to_proto(token, issued)),
    })
}

fn namespace_id(value: &str) -> Result<String, ApiError> {
    nuage_core::ids::parse_id("namespace_id", value).map(|id| id.to_string())
}

#[tonic::async_trait]
impl Tokens for TokensService {
    async fn create_key_pair(&self, request: Request<pb::KeyPairRequest>) -> Result<Response<pb::PublicKey>, Status> {
        let namespace_id = namespace_id(&request.into_inner().namespace_id)?;
        let pem = self.keys.create(&namespace_id).await?;
        Ok(Response::new(pb::PublicKey { namespace_id, pem }))
    }

    async fn delete_key_pair(
        &self,
        request: Request<pb::KeyPairRequest>,
    ) -> Result<Response<pb::DeleteKeyPairResponse>, Status> {
        let namespace_id = namespace_id(&request.into_inner().namespace_id)?;
        self.keys.delete(&namespace_id).await?;
        self.tokens.delete_namespace(&namespace_id).await?;
        Ok(Response::new(pb::DeleteKeyPairResponse {}))
    }

    async fn revoke_application_tokens(
        &self,
        request: Request<pb::RevokeApplicationTokensRequest>,
    ) -> Result<Response<pb::RevokeApplicationTokensResponse>, Status> {
        let application_id = optional_id("application_id", Some(&request.into_inner().application_id))?
            .ok_or_else(|| ApiError::required("application_id"))?;
        let revoked = self.tokens.revoke_application(&application_id.to_string()).await?;
        Ok(Response::new(pb::RevokeApplicationTokensResponse { revoked }))
    }

    async fn get_public_key(&self, request: Request<pb::KeyPairRequest>) -> Result<Response<pb::PublicKey>, Status> {
        let namespace_id = namespace_id(&request.into_inner().namespace_id)?;
        let pem = self
            .keys
            .public_key(&namespace_id)
            .await?
            .ok_or_else(|| ApiError::not_found("namespace_key", namespace_id.clone()))?;
        Ok(Response::new(pb::PublicKey { namespace_id, pem }))
    }

    async fn issue_token(&self, request: Request<pb::IssueTokenRequest>) -> Result<Response<pb::IssuedToken>, Status> {
        let request = request.into_inner();
        let namespace_id = namespace_id(&request.namespace_id)?;
        let application_id = optional_id("application_id", Some(&request.application_id))?;
        // Not stored: a v1alpha2 token cannot be listed or revoked, as on Scaleway.
        let (token, public_key) = self
            .sign(
                &namespace_id,
                application_id,
                request.expires_at,
                Uuid::new_v4(),
                "expiration_date",
            )
            .await?;
        Ok(Response::new(pb::IssuedToken { token, public_key }))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let namespace_id = parse_id("namespace_id", &request.namespace_id)?;
        let application_id = optional_id("function_id", Some(&request.application_id))?;
        validate::at_most_chars("description", &request.description, MAX_DESCRIPTION_CHARS)?;
        let id = Uuid::new_v4();
        let issued = self
            .sign(
                &namespace_id.to_string(),
                application_id,
                request.expires_at,
                id,
                "expires_at",
            )
            .await?;
        let now = nuage_core::clock::now_micros();
        let token = Token {
            id,
            organization_id: caller.organization_id,
            region: request.region,
            namespace_id,
            application_id,
            description: request.description,
            expires_at: (request.expires_at != 0).then_some(request.expires_at),
            revoked_at: None,
            created_at: now,
            updated_at: now,
        };
        self.tokens.insert(&token).await?;
        Ok(answer(token, Some(issued)))
    }

    async fn get_token(&self, request: Request<pb::GetTokenRequest>) -> Result<Response<pb::TokenResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("token_id", &request.token_id)?;
        Ok(answer(self.tokens.get(&caller, &request.region, id).await?, None))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let page = Page::new(request.page, request.page_size)?;
        let filter = TokenFilter {
            namespace_id: optional_id("namespace_id", request.namespace_id.as_deref())?,
            application_id: optional_id("function_id", request.application_id.as_deref())?,
        };
        let newest_first = request.order_by == pb::TokenOrder::CreatedAtDesc as i32;
        let (tokens, total_count) = self
            .tokens
            .list(&caller, &request.region, filter, newest_first, page)
            .await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.into_iter().map(|token| to_proto(token, None)).collect(),
            total_count,
        }))
    }

    async fn delete_token(&self, request: Request<pb::GetTokenRequest>) -> Result<Response<pb::TokenResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let id = parse_id("token_id", &request.token_id)?;
        let token = self.tokens.revoke(&caller, &request.region, id).await?;
        tracing::info!(token_id = %id, namespace_id = %token.namespace_id, "token revoked");
        Ok(answer(token, None))
    }

    async fn list_revoked_tokens(
        &self,
        request: Request<pb::ListRevokedTokensRequest>,
    ) -> Result<Response<pb::ListRevokedTokensResponse>, Status> {
        let since = request.into_inner().revoked_since;
        let tokens = self
            .tokens
            .revoked(since)
            .await?
            .into_iter()
            .map(|(jti, expires_at, revoked_at)| pb::RevokedToken {
                jti,
                expires_at,
                revoked_at,
            })
            .collect();
        Ok(Response::new(pb::ListRevokedTokensResponse { tokens }))
    }
}
