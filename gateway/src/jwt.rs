//! `GET /jwt/issue`: a token that opens the caller's private functions and containers; and
//! what v1beta1 `/tokens` shares with it: finding what a token is for, reading its expiry.
//! v1beta1 has the same at `GET /issue-jwt`: no longer in Scaleway's spec, but what the
//! Serverless plugin (0.3.2 to 0.5.0) calls, with the same query and answer.

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

/// Returns `GET /jwt/issue` (v1alpha2).
pub(crate) fn routes() -> axum::Router<GatewayState> {
    axum::Router::new().route("/jwt/issue", get(issue))
}

/// Returns `GET /issue-jwt` (functions and containers v1beta1).
pub(crate) fn issue_jwt_routes() -> axum::Router<GatewayState> {
    axum::Router::new().route("/issue-jwt", get(issue))
}

#[derive(Debug, Serialize)]
struct TokenJson {
    token: String,
    public_key: String,
}

/// The namespace and application a token is for.
pub(crate) struct Scoped {
    /// The namespace whose key signs it.
    pub namespace_id: String,
    /// Empty for a namespace-scoped token.
    pub application_id: String,
}

/// What a client asked a token for, by id.
pub(crate) enum Target {
    /// A namespace: every function and container in it.
    Namespace(String),
    /// A function (or a container: the Serverless Framework plugin sends its id so).
    Function(String),
    /// A container.
    Container(String),
}

impl Target {
    /// Returns the scope of a token for this target, which must be the caller's: another
    /// tenant's is not found.
    pub(crate) async fn scoped(self, state: &GatewayState, scope: &Scope) -> Result<Scoped, HttpError> {
        match self {
            Self::Namespace(id) => {
                let request = namespaces::GetNamespaceRequest {
                    caller: Some(scope.caller.to_proto()),
                    region: scope.region.clone(),
                    namespace_id: id.clone(),
                    wait_ready_ms: 0,
                };
                state
                    .clients()
                    .namespaces
                    .clone()
                    .get_namespace(scope.grpc(request))
                    .await?;
                Ok(Scoped {
                    namespace_id: id,
                    application_id: String::new(),
                })
            }
            Self::Function(id) => scoped(resolve(state, scope, &id).await?, "function", id),
            Self::Container(id) => scoped(owners(state).container(scope.lookup(&id)).await?, "container", id),
        }
    }
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
        Some(value) => future_date("expiration_date", value)?,
    };
    let id = query.uuid(given[0])?.expect("given").to_string();
    let scoped = match given[0] {
        "namespace_id" => Target::Namespace(id),
        // The Serverless Framework plugin sends a container's id as function_id.
        "function_id" => Target::Function(id),
        _ => Target::Container(id),
    }
    .scoped(&state, &scope)
    .await?;
    let clients = state.clients();
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

/// Returns a date in the future, RFC 3339 with or without an offset (none means UTC, as
/// Python's `datetime.isoformat()` writes a naive date), as Unix seconds; `argument` names it
/// in errors.
pub(crate) fn future_date(argument: &str, value: &str) -> Result<i64, HttpError> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");
    let when = time::OffsetDateTime::parse(value, &Rfc3339)
        .or_else(|_| time::PrimitiveDateTime::parse(value, naive).map(time::PrimitiveDateTime::assume_utc))
        .map_err(|_| {
            invalid(
                argument,
                Reason::Format,
                format!("`{value}` is not an RFC 3339 date such as 2030-01-02T00:00:00Z"),
            )
        })?;
    if when <= time::OffsetDateTime::now_utc() {
        return Err(invalid(argument, Reason::Constraint, "must be in the future"));
    }
    Ok(when.unix_timestamp())
}

/// Returns the token scope of application `id` as found, or says that no `kind` has it.
fn scoped(resolved: Option<Resolved>, kind: &str, id: String) -> Result<Scoped, HttpError> {
    let resolved = resolved.ok_or_else(|| HttpError::Api(ApiError::not_found(kind, &id)))?;
    Ok(Scoped {
        namespace_id: resolved.namespace_id,
        application_id: id,
    })
}
