//! `/functions` (with their upload and download URLs) and `/runtimes`: Scaleway v1alpha2
//! functions over the functions gRPC service, and `/namespaces/{id}/functions`, which the
//! Serverless plugin calls.

use crate::GatewayState;
use crate::applications::{ListParams, Timeout, privacy, privacy_name, status_name, timeout_ms};
use crate::error::{HttpError, invalid};
use crate::extract::{FunctionId, JsonBody, NamespaceId, QueryParams, Scope};
use crate::namespaces::is_other_tenant;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::common::v1 as common;
use nuage_proto::functions::v1 as pb;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

pub(crate) fn routes() -> Router<GatewayState> {
    Router::new()
        .route("/functions", get(list).post(create))
        .route("/functions/{function_id}", get(read).patch(update).delete(delete))
        .route("/functions/{function_id}/deploy", axum::routing::post(deploy))
        .route("/functions/{function_id}/upload-url", get(upload_url))
        .route("/functions/{function_id}/download-url", get(download_url))
        .route("/namespaces/{namespace_id}/functions", get(list_in_namespace))
        .route("/runtimes", get(runtimes))
}

/// The v1alpha2 `Function`, fields in the spec's order.
#[derive(Debug, Serialize)]
struct FunctionJson {
    id: String,
    name: String,
    namespace_id: String,
    status: &'static str,
    environment_variables: BTreeMap<String, String>,
    min_scale: u32,
    max_scale: u32,
    runtime: String,
    memory_limit: u32,
    cpu_limit: u32,
    endpoint: String,
    timeout: u64,
    handler: String,
    error_message: String,
    privacy: &'static str,
    description: String,
    region: String,
}

impl From<pb::Function> for FunctionJson {
    fn from(function: pb::Function) -> Self {
        Self {
            id: function.id,
            name: function.name,
            namespace_id: function.namespace_id,
            status: status_name(function.status),
            environment_variables: function.environment_variables.into_iter().collect(),
            min_scale: function.min_scale,
            max_scale: function.max_scale,
            runtime: function.runtime,
            memory_limit: function.memory_limit,
            cpu_limit: function.cpu_limit,
            endpoint: function.endpoint,
            timeout: function.timeout_ms,
            handler: function.handler,
            error_message: function.error_message,
            privacy: privacy_name(function.privacy),
            description: function.description,
            region: function.region,
        }
    }
}

#[derive(Debug, Serialize)]
struct ListJson {
    functions: Vec<FunctionJson>,
    total_count: u64,
}

fn answer(response: tonic::Response<pb::FunctionResponse>) -> Result<Json<FunctionJson>, HttpError> {
    response
        .into_inner()
        .function
        .map(|function| Json(function.into()))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"functions service answered without a function")))
}

fn environment(values: Option<HashMap<String, String>>) -> Option<common::Environment> {
    values.map(|values| common::Environment { values })
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    namespace_id: Option<String>,
    name: Option<String>,
    environment_variables: Option<HashMap<String, String>>,
    min_scale: Option<u32>,
    max_scale: Option<u32>,
    runtime: Option<String>,
    memory_limit: Option<u32>,
    timeout: Option<Timeout>,
    handler: Option<String>,
    privacy: Option<String>,
    description: Option<String>,
}

async fn create(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<FunctionJson>, HttpError> {
    let namespace_id = body
        .namespace_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("namespace_id", Reason::Required, "is required"))?;
    let request = pb::CreateFunctionRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        namespace_id,
        name: body.name.unwrap_or_default(),
        environment_variables: environment(body.environment_variables),
        min_scale: body.min_scale,
        max_scale: body.max_scale,
        runtime: body.runtime.unwrap_or_default(),
        memory_limit: body.memory_limit,
        timeout_ms: timeout_ms(body.timeout.as_ref())?,
        handler: body.handler,
        privacy: privacy(body.privacy.as_deref())?,
        description: body.description,
    };
    answer(
        state
            .clients()
            .functions
            .clone()
            .create_function(scope.grpc(request))
            .await?,
    )
}

async fn read(
    State(state): State<GatewayState>,
    scope: Scope,
    FunctionId(id): FunctionId,
) -> Result<Json<FunctionJson>, HttpError> {
    let request = pb::GetFunctionRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        function_id: id.to_string(),
    };
    answer(
        state
            .clients()
            .functions
            .clone()
            .get_function(scope.grpc(request))
            .await?,
    )
}

async fn list_functions(
    state: &GatewayState,
    scope: &Scope,
    query: &QueryParams,
    namespace_id: Option<Uuid>,
) -> Result<Json<ListJson>, HttpError> {
    let params = ListParams::read(query)?;
    // Filtering on another tenant matches nothing, exactly as if it had nothing.
    if is_other_tenant(query, &scope.caller)? {
        return Ok(Json(ListJson {
            functions: Vec::new(),
            total_count: 0,
        }));
    }
    let request = pb::ListFunctionsRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        page: params.page,
        page_size: params.page_size,
        order_by: params.order_by,
        namespace_id: namespace_id.map(|id| id.to_string()),
        name: query.get("name").filter(|name| !name.is_empty()).map(str::to_owned),
    };
    let response = state
        .clients()
        .functions
        .clone()
        .list_functions(scope.grpc(request))
        .await?
        .into_inner();
    Ok(Json(ListJson {
        functions: response.functions.into_iter().map(FunctionJson::from).collect(),
        total_count: response.total_count,
    }))
}

async fn list(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson>, HttpError> {
    let namespace_id = query.uuid("namespace_id")?;
    list_functions(&state, &scope, &query, namespace_id).await
}

async fn list_in_namespace(
    State(state): State<GatewayState>,
    scope: Scope,
    NamespaceId(namespace_id): NamespaceId,
    query: QueryParams,
) -> Result<Json<ListJson>, HttpError> {
    list_functions(&state, &scope, &query, Some(namespace_id)).await
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    environment_variables: Option<HashMap<String, String>>,
    min_scale: Option<u32>,
    max_scale: Option<u32>,
    memory_limit: Option<u32>,
    timeout: Option<Timeout>,
    redeploy: Option<bool>,
    handler: Option<String>,
    privacy: Option<String>,
    description: Option<String>,
    name: Option<serde_json::Value>,
    namespace_id: Option<serde_json::Value>,
    runtime: Option<serde_json::Value>,
}

async fn update(
    State(state): State<GatewayState>,
    scope: Scope,
    FunctionId(id): FunctionId,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<FunctionJson>, HttpError> {
    for (argument, sent) in [
        ("name", &body.name),
        ("namespace_id", &body.namespace_id),
        ("runtime", &body.runtime),
    ] {
        if sent.is_some() {
            return Err(invalid(
                argument,
                Reason::Constraint,
                format!("cannot be changed; create a new function to use another {argument}"),
            ));
        }
    }
    let request = pb::UpdateFunctionRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        function_id: id.to_string(),
        environment_variables: environment(body.environment_variables),
        min_scale: body.min_scale,
        max_scale: body.max_scale,
        memory_limit: body.memory_limit,
        timeout_ms: timeout_ms(body.timeout.as_ref())?,
        redeploy: body.redeploy,
        handler: body.handler,
        privacy: privacy(body.privacy.as_deref())?,
        description: body.description,
    };
    answer(
        state
            .clients()
            .functions
            .clone()
            .update_function(scope.grpc(request))
            .await?,
    )
}

async fn delete(
    State(state): State<GatewayState>,
    scope: Scope,
    FunctionId(id): FunctionId,
) -> Result<Json<FunctionJson>, HttpError> {
    let request = pb::GetFunctionRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        function_id: id.to_string(),
    };
    answer(
        state
            .clients()
            .functions
            .clone()
            .delete_function(scope.grpc(request))
            .await?,
    )
}

async fn deploy(
    State(state): State<GatewayState>,
    scope: Scope,
    FunctionId(id): FunctionId,
    JsonBody(_body): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<FunctionJson>, HttpError> {
    let request = pb::GetFunctionRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        function_id: id.to_string(),
    };
    answer(
        state
            .clients()
            .functions
            .clone()
            .deploy_function(scope.grpc(request))
            .await?,
    )
}

#[derive(Debug, Serialize)]
struct RuntimesJson {
    runtimes: Vec<String>,
}

async fn runtimes(State(state): State<GatewayState>, scope: Scope) -> Result<Json<RuntimesJson>, HttpError> {
    let response = state
        .clients()
        .functions
        .clone()
        .list_runtimes(scope.grpc(pb::ListRuntimesRequest {}))
        .await?
        .into_inner();
    Ok(Json(RuntimesJson {
        runtimes: response.runtimes,
    }))
}

/// The v1alpha2 `UploadURL` and `DownloadURL`: a URL and the headers to send with it, each a
/// list of values.
#[derive(Debug, Serialize)]
struct PresignedJson {
    url: String,
    headers: BTreeMap<String, Vec<String>>,
}

impl From<pb::PresignedUrl> for PresignedJson {
    fn from(presigned: pb::PresignedUrl) -> Self {
        Self {
            url: presigned.url,
            headers: presigned
                .headers
                .into_iter()
                .map(|(name, value)| (name, vec![value]))
                .collect(),
        }
    }
}

async fn upload_url(
    State(state): State<GatewayState>,
    scope: Scope,
    FunctionId(id): FunctionId,
    query: QueryParams,
) -> Result<Json<PresignedJson>, HttpError> {
    let content_length = match query.get("content_length").filter(|raw| !raw.is_empty()) {
        None => 0,
        Some(raw) => match raw.parse::<u64>() {
            Ok(0) => {
                return Err(invalid("content_length", Reason::Constraint, "must be at least 1 byte"));
            }
            Ok(length) => length,
            Err(_) => {
                return Err(invalid(
                    "content_length",
                    Reason::Format,
                    format!("`{raw}` is not a positive whole number of bytes"),
                ));
            }
        },
    };
    let request = pb::GetUploadUrlRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        function_id: id.to_string(),
        content_length,
    };
    let response = state
        .clients()
        .functions
        .clone()
        .get_upload_url(scope.grpc(request))
        .await?;
    Ok(Json(response.into_inner().into()))
}

async fn download_url(
    State(state): State<GatewayState>,
    scope: Scope,
    FunctionId(id): FunctionId,
) -> Result<Json<PresignedJson>, HttpError> {
    let request = pb::GetFunctionRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        function_id: id.to_string(),
    };
    let response = state
        .clients()
        .functions
        .clone()
        .get_download_url(scope.grpc(request))
        .await?;
    Ok(Json(response.into_inner().into()))
}
