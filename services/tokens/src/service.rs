//! The tokens gRPC service.

use crate::keys::KeyStore;
use nuage_core::error::Reason;
use nuage_core::jwt::{self, ApplicationClaim, Claims};
use nuage_core::{ApiError, ErrorCode};
use nuage_proto::tokens::v1::{self as pb, tokens_server::Tokens};
use tonic::{Request, Response, Status};

/// Serves `nuage.tokens.v1.Tokens`.
#[derive(Debug, Clone)]
pub struct TokensService {
    keys: KeyStore,
}

impl TokensService {
    /// Returns a service over `keys`.
    pub fn new(keys: KeyStore) -> Self {
        Self { keys }
    }
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
        Ok(Response::new(pb::DeleteKeyPairResponse {}))
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
        let (private, public_key) = self.keys.private_key(&namespace_id).await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::FailedPrecondition,
                format!("namespace {namespace_id} has no key pair yet; retry once it is ready"),
            )
        })?;
        let now = nuage_core::clock::now_micros() / 1_000_000;
        if request.expires_at != 0 && request.expires_at <= now {
            return Err(
                ApiError::invalid_argument("expiration_date", Reason::Constraint, "must be in the future").into(),
            );
        }
        let claim = if request.application_id.is_empty() {
            ApplicationClaim {
                namespace_id: namespace_id.clone(),
                application_id: String::new(),
            }
        } else {
            ApplicationClaim {
                namespace_id: String::new(),
                application_id: nuage_core::ids::parse_id("application_id", &request.application_id)?.to_string(),
            }
        };
        let claims = Claims {
            application_claim: vec![claim],
            version: 2,
            aud: jwt::AUDIENCE.to_owned(),
            exp: (request.expires_at != 0).then_some(request.expires_at),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            iss: jwt::ISSUER.to_owned(),
            nbf: now,
            sub: "token".to_owned(),
        };
        let token = jwt::sign(&private, &claims).map_err(|error| ApiError::internal(&error))?;
        Ok(Response::new(pb::IssuedToken { token, public_key }))
    }
}
