//! `GET /jwt/issue`: a token that opens the caller's private functions and containers.

use crate::GatewayState;
use crate::applications::{owners, resolve};
use crate::error::{HttpError, invalid};
use crate::extract::{QueryParams, Scope};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use nuage_applications::Resolved;
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::namespaces::v1 as namespaces;
use nuage_proto::tokens::v1::IssueTokenRequest;
use serde::Serialize;

pub(crate) fn routes() -> axum::Router<GatewayState> {
    axum::Router::new().route("/jwt/issue", get(issue))
}

#[derive(Debug, Serialize)]
struct TokenJson {
    token: String,
    public_key: String,
}

/// The namespace and application a token is for.
struct Scoped {
    namespace_id: String,
    application_id: String,
}

async fn issue(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<TokenJson>, HttpError> {
    let given: Vec<&str> = ["namespace_id", "function_id", "container_id"]
        .into_iter()
        .filter(|name| query.get(name).is_some_and(|value| !value.is_empty()))
        .collect();
    if given.len() != 1 {
        return Err(invalid(
            "namespace_id",
            Reason::Required,
            "give exactly one of namespace_id, function_id and container_id",
        ));
    }
    let expires_at = match query.get("expiration_date").filter(|value| !value.is_empty()) {
        None => 0,
        Some(value) => {
            let when =
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).map_err(|_| {
                    invalid(
                        "expiration_date",
                        Reason::Format,
                        format!("`{value}` is not an RFC 3339 date such as 2030-01-02T00:00:00Z"),
                    )
                })?;
            if when <= time::OffsetDateTime::now_utc() {
                return Err(invalid("expiration_date", Reason::Constraint, "must be in the future"));
            }
            when.unix_timestamp()
        }
    };
    let id = query.uuid(given[0])?.expect("given").to_string();
    let clients = state.clients();
    let scoped = match given[0] {
        "namespace_id" => {
            let request = namespaces::GetNamespaceRequest {
                caller: Some(scope.caller.to_proto()),
                region: scope.region.clone(),
                namespace_id: id.clone(),
                wait_ready_ms: 0,
            };
            clients.namespaces.clone().get_namespace(scope.grpc(request)).await?;
            Scoped {
                namespace_id: id,
                application_id: String::new(),
            }
        }
        // The Serverless Framework plugin sends a container's id as function_id.
        "function_id" => scoped(resolve(&state, &scope, &id).await?, "function", id)?,
        _ => scoped(owners(&state).container(scope.lookup(&id)).await?, "container", id)?,
    };
    let token = clients
        .tokens
        .clone()
        .issue_token(scope.grpc(IssueTokenRequest {
            namespace_id: scoped.namespace_id,
            application_id: scoped.application_id,
            expires_at,
        }))
        .await?
        .into_inner();
    Ok(Json(TokenJson {
        token: token.token,
        public_key: token.public_key,
    }))
}

/// Returns the token scope of application `id` as found, or says that no `kind` has it.
fn scoped(resolved: Option<Resolved>, kind: &str, id: String) -> Result<Scoped, HttpError> {
    let resolved = resolved.ok_or_else(|| HttpError::Api(ApiError::not_found(kind, &id)))?;
    Ok(Scoped {
        namespace_id: resolved.namespace_id,
        application_id: id,
    })
}
