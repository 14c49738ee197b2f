//! `/tokens` (v1beta1): tokens that open a tenant's private functions, stored by the tokens
//! service so that they can be listed and deleted (revoked). The token text is shown once, in
//! the answer that made it.

use crate::GatewayState;
use crate::error::{HttpError, invalid};
use crate::extract::{JsonBody, QueryParams, Scope, TokenId};
use crate::jwt::{Target, future_date};
use crate::list::{ListJson, listed};
use crate::v1beta1::seconds_timestamp;
use crate::version::Version;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::tokens::v1 as pb;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `order_by` values and the service's, the default first.
const ORDERS: [(&str, pb::TokenOrder); 2] = [
    ("created_at_asc", pb::TokenOrder::CreatedAtAsc),
    ("created_at_desc", pb::TokenOrder::CreatedAtDesc),
];

/// The routes of tokens in version `V`, whose tokens name their application `function_id` or
/// `container_id` (`V::CRON_TARGET`).
pub(crate) fn routes<V: Version>() -> Router<GatewayState> {
    Router::new()
        .route("/tokens", get(list::<V>).post(create::<V>))
        .route("/tokens/{token_id}", get(read::<V>).delete(delete::<V>))
}

/// The v1beta1 `Token`, fields in the spec's order; of its application (`function_id` or
/// `container_id`) and `namespace_id`, the one that is not its scope is left out.
#[derive(Debug, Serialize)]
struct TokenJson {
    id: String,
    token: String,
    #[serde(flatten)]
    application: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_id: Option<String>,
    public_key: String,
    status: &'static str,
    description: String,
    expires_at: Option<String>,
}

impl TokenJson {
    /// Returns the JSON of `token`, whose application is named `target`.
    fn of(token: pb::Token, target: &'static str) -> Self {
        let status = match token.status() {
            pb::TokenStatus::Unspecified => "unknown",
            pb::TokenStatus::Ready => "ready",
            pb::TokenStatus::Deleting => "deleting",
        };
        let (application, namespace_id) = if token.application_id.is_empty() {
            (BTreeMap::new(), Some(token.namespace_id))
        } else {
            (BTreeMap::from([(target, token.application_id)]), None)
        };
        Self {
            id: token.id,
            token: token.token,
            application,
            namespace_id,
            public_key: token.public_key,
            status,
            description: token.description,
            expires_at: seconds_timestamp(token.expires_at),
        }
    }
}

fn answer<V: Version>(response: tonic::Response<pb::TokenResponse>) -> Result<Json<TokenJson>, HttpError> {
    response
        .into_inner()
        .token
        .map(|token| Json(TokenJson::of(token, V::CRON_TARGET)))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"tokens service answered without a token")))
}

/// A create body: `function_id` (functions API) or `container_id` (containers API) names its
/// application; the other API's name is not read.
#[derive(Debug, Deserialize)]
struct CreateBody {
    function_id: Option<String>,
    container_id: Option<String>,
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

async fn create<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<TokenJson>, HttpError> {
    let application = match V::CRON_TARGET {
        "container_id" => body.container_id,
        _ => body.function_id,
    };
    let target = match (
        id(V::CRON_TARGET, application.as_deref())?,
        id("namespace_id", body.namespace_id.as_deref())?,
    ) {
        (Some(function_id), None) => Target::Function(function_id),
        (None, Some(namespace_id)) => Target::Namespace(namespace_id),
        (None, None) => {
            return Err(invalid(
                V::CRON_TARGET,
                Reason::Required,
                format!("give one of {} and namespace_id", V::CRON_TARGET),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "namespace_id",
                Reason::Constraint,
                format!("give only one of {} and namespace_id", V::CRON_TARGET),
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
    answer::<V>(state.clients().tokens.clone().create_token(scope.grpc(request)).await?)
}

async fn read<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    TokenId(id): TokenId,
) -> Result<Json<TokenJson>, HttpError> {
    answer::<V>(state.clients().tokens.clone().get_token(one(&scope, id)).await?)
}

async fn list<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson<TokenJson>>, HttpError> {
    let list = query.list(&ORDERS)?;
    let request = pb::ListTokensRequest {
        namespace_id: query.uuid("namespace_id")?.map(|id| id.to_string()),
        application_id: query.uuid(V::CRON_TARGET)?.map(|id| id.to_string()),
        ..scope.list_request(list)
    };
    let mut client = state.clients().tokens.clone();
    let call = client.list_tokens(scope.grpc(request));
    listed("tokens", call, |token| TokenJson::of(token, V::CRON_TARGET))
        .await
        .map(Json)
}

async fn delete<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    TokenId(id): TokenId,
) -> Result<Json<TokenJson>, HttpError> {
    answer::<V>(state.clients().tokens.clone().delete_token(one(&scope, id)).await?)
}

/// The request naming one token of the caller.
fn one(scope: &Scope, id: uuid::Uuid) -> tonic::Request<pb::GetTokenRequest> {
    scope.grpc(pb::GetTokenRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        token_id: id.to_string(),
    })
}
