//! Deployment history and rollback, an extension of Scaleway's API for functions and
//! containers alike, in every version that serves them: `GET /<kind>s/{id}/deployments` lists
//! an application's deployments (Scaleway's paging, `page` and `page_size`, newest first, with
//! `total_count`), and `POST /<kind>s/{id}/rollback` with a `deployment_id` rolls one of them
//! out again, with no rebuild, answering the application (`pending` until it serves).

use crate::GatewayState;
use crate::applications::{ApplicationId, answer};
use crate::error::{HttpError, invalid};
use crate::extract::{JsonBody, QueryParams, Scope};
use crate::list::{ListJson, listed};
use crate::owner::Owner;
use crate::version::Version;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use nuage_core::error::Reason;
use nuage_proto::applications::v1 as wire;
use serde_json::{Map, Value, json};

/// Returns the routes of `O`'s deployment history in version `V`.
pub(crate) fn routes<O: Owner, V: Version>() -> Router<GatewayState> {
    let one = format!("/{}/{{{}}}", O::PLURAL, O::ID_PARAM);
    Router::new()
        .route(&format!("{one}/deployments"), get(list::<O>))
        .route(&format!("{one}/rollback"), post(rollback::<O, V>))
}

/// Returns the JSON of a deployment of one of `O`'s applications.
fn deployment_json<O: Owner>(deployment: wire::Deployment) -> Value {
    json!({
        "id": deployment.id,
        O::ID_PARAM: deployment.application_id,
        "created_at": crate::v1beta1::timestamp(deployment.created_at),
        "status": deployment.status,
        "error_message": deployment.error_message,
        "archive_digest": deployment.archive_digest,
        "image_reference": deployment.image_reference,
        "image_digest": deployment.image_digest,
        "active": deployment.active,
    })
}

/// `GET /<kind>s/{id}/deployments`: `{"deployments": [...], "total_count": n}`.
async fn list<O: Owner>(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<O>,
    query: QueryParams,
) -> Result<Json<ListJson<Value>>, HttpError> {
    let (page, page_size) = query.page()?;
    let request = wire::ListDeploymentsRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id: id.to_string(),
        page,
        page_size,
    };
    let call = O::list_deployments(O::client(&state), scope.grpc(request));
    listed("deployments", call, deployment_json::<O>).await.map(Json)
}

/// `POST /<kind>s/{id}/rollback` with `{"deployment_id": "..."}`.
async fn rollback<O: Owner, V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<O>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<V::Application>, HttpError> {
    let deployment_id = match body.get("deployment_id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(invalid(
                "deployment_id",
                Reason::Format,
                format!("must be a deployment id (a string), got `{other}`"),
            ));
        }
    };
    let request = wire::RollbackRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id: id.to_string(),
        deployment_id,
    };
    answer::<O, V>(&state, O::rollback(O::client(&state), scope.grpc(request)).await?)
}
