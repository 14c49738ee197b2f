//! `/crons`: Scaleway v1alpha2 crons over the crons gRPC service.

use crate::GatewayState;
use crate::error::{HttpError, invalid};
use crate::extract::{CronId, JsonBody, QueryParams, Scope};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_core::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use nuage_proto::crons::v1 as pb;
use serde::{Deserialize, Serialize};

/// `order_by` values, the default first.
const ORDERS: [&str; 2] = ["created_at_asc", "created_at_desc"];

pub(crate) fn routes() -> Router<GatewayState> {
    Router::new()
        .route("/crons", get(list).post(create))
        .route("/crons/{cron_id}", get(read).patch(update).delete(delete))
}

/// The v1alpha2 `Cron`, fields in the spec's order; `args` is the plain JSON object.
#[derive(Debug, Serialize)]
struct CronJson {
    id: String,
    application_id: String,
    schedule: String,
    args: serde_json::Value,
    status: &'static str,
}

impl From<pb::Cron> for CronJson {
    fn from(cron: pb::Cron) -> Self {
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
            args: serde_json::from_str(&cron.args).unwrap_or_else(|_| serde_json::json!({})),
            status,
        }
    }
}

#[derive(Debug, Serialize)]
struct ListJson {
    crons: Vec<CronJson>,
    total_count: u64,
}

fn answer(response: tonic::Response<pb::CronResponse>) -> Result<Json<CronJson>, HttpError> {
    response
        .into_inner()
        .cron
        .map(|cron| Json(cron.into()))
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

#[derive(Debug, Deserialize)]
struct CreateBody {
    application_id: Option<String>,
    schedule: Option<String>,
    args: Option<serde_json::Value>,
}

async fn create(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<CronJson>, HttpError> {
    let request = pb::CreateCronRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id: body.application_id.unwrap_or_default(),
        schedule: body.schedule.unwrap_or_default(),
        args: args(body.args)?,
    };
    answer(state.clients().crons.clone().create_cron(scope.grpc(request)).await?)
}

async fn read(
    State(state): State<GatewayState>,
    scope: Scope,
    CronId(id): CronId,
) -> Result<Json<CronJson>, HttpError> {
    answer(state.clients().crons.clone().get_cron(one(&scope, id)).await?)
}

async fn list(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson>, HttpError> {
    let order_by = match query.choice("order_by", &ORDERS)? {
        "created_at_desc" => pb::CronOrder::CreatedAtDesc,
        _ => pb::CronOrder::CreatedAtAsc,
    };
    let request = pb::ListCronsRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        page: query.number("page", 1, 1, u32::MAX)?,
        page_size: query.number("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)?,
        order_by: order_by as i32,
        application_id: query.uuid("application_id")?.map(|id| id.to_string()),
    };
    let response = state
        .clients()
        .crons
        .clone()
        .list_crons(scope.grpc(request))
        .await?
        .into_inner();
    Ok(Json(ListJson {
        crons: response.crons.into_iter().map(CronJson::from).collect(),
        total_count: response.total_count,
    }))
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    application_id: Option<String>,
    schedule: Option<String>,
    args: Option<serde_json::Value>,
}

async fn update(
    State(state): State<GatewayState>,
    scope: Scope,
    CronId(id): CronId,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<CronJson>, HttpError> {
    let request = pb::UpdateCronRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        cron_id: id.to_string(),
        application_id: body.application_id,
        schedule: body.schedule,
        args: args(body.args)?,
    };
    answer(state.clients().crons.clone().update_cron(scope.grpc(request)).await?)
}

async fn delete(
    State(state): State<GatewayState>,
    scope: Scope,
    CronId(id): CronId,
) -> Result<Json<CronJson>, HttpError> {
    answer(state.clients().crons.clone().delete_cron(one(&scope, id)).await?)
}

/// The request naming one cron of the caller.
fn one(scope: &Scope, id: uuid::Uuid) -> tonic::Request<pb::GetCronRequest> {
    scope.grpc(pb::GetCronRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        cron_id: id.to_string(),
    })
}
