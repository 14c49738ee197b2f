//! `/tokens` (v1beta1): tokens that open a tenant's private functions, stored by the tokens
//! service so that they can be listed and deleted (revoked). The token text is shown once, in
//! the answer that made it.

use crate::GatewayState;
use crate::error::{HttpError, invalid};
use crate::extract::{JsonBody, QueryParams, Scope, TokenId};
use crate::jwt::{Target, future_date};
use crate::v1beta1::seconds_timestamp;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_core::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use nuage_proto::tokens::v1 as pb;
use serde::{Deserialize, Serialize};

/// `order_by` values, the default first.
const ORDERS: [&str; 2] = ["created_at_asc", "created_at_desc"];

pub(crate) fn routes() -> Router<GatewayState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{token_id}", get(read).delete(delete))
}

/// The v1beta1 `Token`, fields in the spec's order; of `function_id` and `namespace_id`, the
/// one that is not its scope is left out.
#[derive(Debug, Serialize)]
struct TokenJson {
    id: String,
    token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_id: Option<String>,
    public_key: String,
    status: &'static str,
    description: String,
    expires_at: Option<String>,
}

impl From<pb::Token> for TokenJson {
    fn from(token: pb::Token) -> Self {
        let status = match token.status() {
            pb::TokenStatus::Unspecified => "unknown",
            pb::TokenStatus::Ready => "ready",
            pb::TokenStatus::Deleting => "deleting",
        };
        let (function_id, namespace_id) = if token.application_id.is_empty() {
            (None, Some(token.namespace_id))
        } else {
            (Some(token.application_id), None)
        };
        Self {
            id: token.id,
            token: token.token,
            function_id,
            namespace_id,
            public_key: token.public_key,
            status,
            description: token.description,
            expires_at: seconds_timestamp(token.expires_at),
        }
    }
}

#[derive(Debug, Serialize)]
struct ListJson {
    tokens: Vec<TokenJson>,
    total_count: u64,
}

fn answer(response: tonic::Response<pb::TokenResponse>) -> Result<Json<TokenJson>, HttpError> {
    response
        .into_inner()
        .token
        .map(|token| Json(token.into()))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"tokens service answered without a token")))
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    function_id: Option<String>,
    namespace_id: Option<String>,
    description: Option<String>,
    expires_at: Option<String>,
}

/// Returns the id given as `argument`, if given and not empty, checked to be a UUID.
fn id(argument: &str, value: Option<&str>) -> Result<Option<String>, HttpError> {
    match value.filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) => Ok(Some(nuage_core::ids::parse_id(argument, value)?.to_string())),
    }
}

async fn create(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<TokenJson>, HttpError> {
    let target = match (
        id("function_id", body.function_id.as_deref())?,
        id("namespace_id", body.namespace_id.as_deref())?,
    ) {
        (Some(function_id), None) => Target::Function(function_id),
        (None, Some(namespace_id)) => Target::Namespace(namespace_id),
        (None, None) => {
            return Err(invalid(
                "function_id",
                Reason::Required,
                "give one of function_id and namespace_id",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "namespace_id",
                Reason::Constraint,
                "give only one of function_id and namespace_id",
            ));
        }
    };
    let expires_at = match body.expires_at.as_deref().filter(|value| !value.is_empty()) {
        None => 0,
        Some(value) => future_date("expires_at", value)?,
    };
    let scoped = target.scoped(&state, &scope).await?;
    let request = pb::CreateTokenRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        namespace_id: scoped.namespace_id,
        application_id: scoped.application_id,
        description: body.description.unwrap_or_default(),
        expires_at,
    };
    answer(state.clients().tokens.clone().create_token(scope.grpc(request)).await?)
}

async fn read(
    State(state): State<GatewayState>,
    scope: Scope,
    TokenId(id): TokenId,
) -> Result<Json<TokenJson>, HttpError> {
    answer(state.clients().tokens.clone().get_token(one(&scope, id)).await?)
}

async fn list(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson>, HttpError> {
    let order_by = match query.choice("order_by", &ORDERS)? {
        "created_at_desc" => pb::TokenOrder::CreatedAtDesc,
        _ => pb::TokenOrder::CreatedAtAsc,
    };
    let request = pb::ListTokensRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        page: query.number("page", 1, 1, u32::MAX)?,
        page_size: query.number("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)?,
        order_by: order_by as i32,
        namespace_id: query.uuid("namespace_id")?.map(|id| id.to_string()),
        application_id: query.uuid("function_id")?.map(|id| id.to_string()),
    };
    let response = state
        .clients()
        .tokens
        .clone()
        .list_tokens(scope.grpc(request))
        .await?
        .into_inner();
    Ok(Json(ListJson {
        tokens: response.tokens.into_iter().map(TokenJson::from).collect(),
        total_count: response.total_count,
    }))
}

async fn delete(
    State(state): State<GatewayState>,
    scope: Scope,
    TokenId(id): TokenId,
) -> Result<Json<TokenJson>, HttpError> {
    answer(state.clients().tokens.clone().delete_token(one(&scope, id)).await?)
}

/// The request naming one token of the caller.
fn one(scope: &Scope, id: uuid::Uuid) -> tonic::Request<pb::GetTokenRequest> {
    scope.grpc(pb::GetTokenRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        token_id: id.to_string(),
    })
}
