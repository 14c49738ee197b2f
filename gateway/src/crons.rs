//! `/crons`: Scaleway crons over the crons gRPC service, written once over a [`Version`]: a
//! v1alpha2 cron names its function or container `application_id`, a v1beta1 one
//! `function_id`, and v1beta1 crons have a `name`. Either way it is the same cron.

use crate::GatewayState;
use crate::error::{HttpError, invalid, required};
use crate::extract::{CronId, JsonBody, QueryParams, Scope};
use crate::list::{ListJson, listed};
use crate::version::{FromCron, Version};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::crons::v1 as pb;
use serde::{Deserialize, Serialize};

/// `order_by` values and the service's, the default first.
const ORDERS: [(&str, pb::CronOrder); 2] = [
    ("created_at_asc", pb::CronOrder::CreatedAtAsc),
    ("created_at_desc", pb::CronOrder::CreatedAtDesc),
];

pub(crate) fn routes<V: Version>() -> Router<GatewayState> {
    Router::new().route("/crons", get(list::<V>).post(create::<V>)).route(
        "/crons/{cron_id}",
        get(read::<V>).patch(update::<V>).delete(delete::<V>),
    )
}

/// Returns a cron's `args` (stored as JSON text) as the JSON object it is.
pub(crate) fn args_json(args: &str) -> serde_json::Value {
    serde_json::from_str(args).unwrap_or_else(|_| serde_json::json!({}))
}

/// The v1alpha2 `Cron`, fields in the spec's order; `args` is the plain JSON object.
#[derive(Debug, Serialize)]
pub(crate) struct CronJson {
    id: String,
    application_id: String,
    schedule: String,
    args: serde_json::Value,
    status: &'static str,
}

/// v1alpha2 names every cron's target `application_id`.
impl FromCron for CronJson {
    fn from_cron(cron: pb::Cron, _target: &'static str) -> Self {
        let status = match cron.status() {
            pb::CronStatus::Ready | pb::CronStatus::Unspecified => "ready",
            pb::CronStatus::Deleting => "deleting",
            pb::CronStatus::Error => "error",
            pb::CronStatus::Locked => "locked",
            pb::CronStatus::Creating => "creating",
            pb::CronStatus::Pending => "pending",
        };
        Self {
            id: cron.id,
            application_id: cron.application_id,
            schedule: cron.schedule,
            args: args_json(&cron.args),
            status,
        }
    }
}

fn answer<V: Version>(response: tonic::Response<pb::CronResponse>) -> Result<Json<V::Cron>, HttpError> {
    response
        .into_inner()
        .cron
        .map(|cron| Json(V::cron(cron)))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"crons service answered without a cron")))
}

/// Returns `args` as JSON text; it must be an object (or null, meaning none).
fn args(value: Option<serde_json::Value>) -> Result<Option<String>, HttpError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(object @ serde_json::Value::Object(_)) => Ok(Some(object.to_string())),
        Some(_) => Err(invalid("args", Reason::Format, "must be a JSON object")),
    }
}

/// A create or update body of either version: `application_id` (v1alpha2) or `function_id`
/// (v1beta1) names the target; the other version's name is not read.
#[derive(Debug, Deserialize)]
struct CronBody {
    application_id: Option<String>,
    function_id: Option<String>,
    container_id: Option<String>,
    schedule: Option<String>,
    args: Option<serde_json::Value>,
    name: Option<String>,
}

impl CronBody {
    /// Returns the id of the cron's target, as `V` names it, checked to be a UUID.
    fn target<V: Version>(&self) -> Result<Option<String>, HttpError> {
        let target = match V::CRON_TARGET {
            "function_id" => &self.function_id,
            "container_id" => &self.container_id,
            _ => &self.application_id,
        };
        match target.as_deref().filter(|id| !id.is_empty()) {
            None => Ok(None),
            Some(id) => Ok(Some(nuage_core::ids::parse_id(V::CRON_TARGET, id)?.to_string())),
        }
    }
}

async fn create<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CronBody>,
) -> Result<Json<V::Cron>, HttpError> {
    let application_id = body.target::<V>()?.ok_or_else(|| required(V::CRON_TARGET))?;
    let request = pb::CreateCronRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id,
        schedule: body.schedule.unwrap_or_default(),
        args: args(body.args)?,
        name: body.name,
        delivery: None,
    };
    answer::<V>(state.clients().crons.clone().create_cron(scope.grpc(request)).await?)
}

async fn read<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    CronId(id): CronId,
) -> Result<Json<V::Cron>, HttpError> {
    answer::<V>(state.clients().crons.clone().get_cron(one(&scope, id)).await?)
}

async fn list<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson<V::Cron>>, HttpError> {
    let application_id = query.uuid(V::CRON_TARGET)?;
    if V::STRICT && application_id.is_none() {
        return Err(required(V::CRON_TARGET));
    }
    let list = query.list(&ORDERS)?;
    let request = pb::ListCronsRequest {
        application_id: application_id.map(|id| id.to_string()),
        ..scope.list_request(list)
    };
    let mut client = state.clients().crons.clone();
    let call = client.list_crons(scope.grpc(request));
    listed("crons", call, V::cron).await.map(Json)
}

async fn update<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    CronId(id): CronId,
    JsonBody(body): JsonBody<CronBody>,
) -> Result<Json<V::Cron>, HttpError> {
    let request = pb::UpdateCronRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        cron_id: id.to_string(),
        application_id: body.target::<V>()?,
        schedule: body.schedule,
        args: args(body.args)?,
        name: body.name,
        delivery: None,
    };
    answer::<V>(state.clients().crons.clone().update_cron(scope.grpc(request)).await?)
}

async fn delete<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    CronId(id): CronId,
) -> Result<Json<V::Cron>, HttpError> {
    answer::<V>(state.clients().crons.clone().delete_cron(one(&scope, id)).await?)
}

/// The request naming one cron of the caller.
fn one(scope: &Scope, id: uuid::Uuid) -> tonic::Request<pb::GetCronRequest> {
    scope.grpc(pb::GetCronRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        cron_id: id.to_string(),
    })
}
