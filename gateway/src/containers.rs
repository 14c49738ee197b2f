//! `/containers`: Scaleway v1alpha2 containers over the containers gRPC service, and
//! `/namespaces/{id}/containers`, which the Serverless plugin calls.

use crate::GatewayState;
use crate::applications::{ListParams, Timeout, privacy, privacy_name, status_name, timeout_ms};
use crate::error::{HttpError, invalid};
use crate::extract::{ContainerId, JsonBody, NamespaceId, QueryParams, Scope};
use crate::namespaces::is_other_tenant;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::common::v1 as common;
use nuage_proto::containers::v1 as pb;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

pub(crate) fn routes() -> Router<GatewayState> {
    Router::new()
        .route("/containers", get(list).post(create))
        .route("/containers/{container_id}", get(read).patch(update).delete(delete))
        .route("/containers/{container_id}/deploy", axum::routing::post(deploy))
        .route("/namespaces/{namespace_id}/containers", get(list_in_namespace))
}

/// The v1alpha2 `Container`, fields in the spec's order.
#[derive(Debug, Serialize)]
struct ContainerJson {
    id: String,
    name: String,
    namespace_id: String,
    status: &'static str,
    environment_variables: BTreeMap<String, String>,
    min_scale: u32,
    max_scale: u32,
    memory_limit: u32,
    cpu_limit: u32,
    endpoint: String,
    timeout: u64,
    error_message: String,
    privacy: &'static str,
    description: String,
    registry_image: String,
    region: String,
}

impl From<pb::Container> for ContainerJson {
    fn from(container: pb::Container) -> Self {
        Self {
            id: container.id,
            name: container.name,
            namespace_id: container.namespace_id,
            status: status_name(container.status),
            environment_variables: container.environment_variables.into_iter().collect(),
            min_scale: container.min_scale,
            max_scale: container.max_scale,
            memory_limit: container.memory_limit,
            cpu_limit: container.cpu_limit,
            endpoint: container.endpoint,
            timeout: container.timeout_ms,
            error_message: container.error_message,
            privacy: privacy_name(container.privacy),
            description: container.description,
            registry_image: container.registry_image,
            region: container.region,
        }
    }
}

#[derive(Debug, Serialize)]
struct ListJson {
    containers: Vec<ContainerJson>,
    total_count: u64,
}

fn answer(response: tonic::Response<pb::ContainerResponse>) -> Result<Json<ContainerJson>, HttpError> {
    response
        .into_inner()
        .container
        .map(|container| Json(container.into()))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"containers service answered without a container")))
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
    memory_limit: Option<u32>,
    timeout: Option<Timeout>,
    privacy: Option<String>,
    description: Option<String>,
    registry_image: Option<String>,
}

async fn create(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<ContainerJson>, HttpError> {
    let namespace_id = body
        .namespace_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("namespace_id", Reason::Required, "is required"))?;
    let request = pb::CreateContainerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        namespace_id,
        name: body.name.unwrap_or_default(),
        environment_variables: environment(body.environment_variables),
        min_scale: body.min_scale,
        max_scale: body.max_scale,
        memory_limit: body.memory_limit,
        timeout_ms: timeout_ms(body.timeout.as_ref())?,
        privacy: privacy(body.privacy.as_deref())?,
        description: body.description,
        registry_image: body.registry_image,
    };
    answer(
        state
            .clients()
            .containers
            .clone()
            .create_container(scope.grpc(request))
            .await?,
    )
}

async fn read(
    State(state): State<GatewayState>,
    scope: Scope,
    ContainerId(id): ContainerId,
) -> Result<Json<ContainerJson>, HttpError> {
    let request = pb::GetContainerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        container_id: id.to_string(),
    };
    answer(
        state
            .clients()
            .containers
            .clone()
            .get_container(scope.grpc(request))
            .await?,
    )
}

async fn list_containers(
    state: &GatewayState,
    scope: &Scope,
    query: &QueryParams,
    namespace_id: Option<Uuid>,
) -> Result<Json<ListJson>, HttpError> {
    let params = ListParams::read(query)?;
    // Filtering on another tenant matches nothing, exactly as if it had nothing.
    if is_other_tenant(query, &scope.caller)? {
        return Ok(Json(ListJson {
            containers: Vec::new(),
            total_count: 0,
        }));
    }
    let request = pb::ListContainersRequest {
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
        .containers
        .clone()
        .list_containers(scope.grpc(request))
        .await?
        .into_inner();
    Ok(Json(ListJson {
        containers: response.containers.into_iter().map(ContainerJson::from).collect(),
        total_count: response.total_count,
    }))
}

async fn list(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson>, HttpError> {
    let namespace_id = query.uuid("namespace_id")?;
    list_containers(&state, &scope, &query, namespace_id).await
}

async fn list_in_namespace(
    State(state): State<GatewayState>,
    scope: Scope,
    NamespaceId(namespace_id): NamespaceId,
    query: QueryParams,
) -> Result<Json<ListJson>, HttpError> {
    list_containers(&state, &scope, &query, Some(namespace_id)).await
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    environment_variables: Option<HashMap<String, String>>,
    min_scale: Option<u32>,
    max_scale: Option<u32>,
    memory_limit: Option<u32>,
    timeout: Option<Timeout>,
    redeploy: Option<bool>,
    privacy: Option<String>,
    description: Option<String>,
    registry_image: Option<String>,
    name: Option<serde_json::Value>,
    namespace_id: Option<serde_json::Value>,
}

async fn update(
    State(state): State<GatewayState>,
    scope: Scope,
    ContainerId(id): ContainerId,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<ContainerJson>, HttpError> {
    for (argument, sent) in [("name", &body.name), ("namespace_id", &body.namespace_id)] {
        if sent.is_some() {
            return Err(invalid(
                argument,
                Reason::Constraint,
                format!("cannot be changed; create a new container to use another {argument}"),
            ));
        }
    }
    let request = pb::UpdateContainerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        container_id: id.to_string(),
        environment_variables: environment(body.environment_variables),
        min_scale: body.min_scale,
        max_scale: body.max_scale,
        memory_limit: body.memory_limit,
        timeout_ms: timeout_ms(body.timeout.as_ref())?,
        redeploy: body.redeploy,
        privacy: privacy(body.privacy.as_deref())?,
        description: body.description,
        registry_image: body.registry_image,
    };
    answer(
        state
            .clients()
            .containers
            .clone()
            .update_container(scope.grpc(request))
            .await?,
    )
}

async fn delete(
    State(state): State<GatewayState>,
    scope: Scope,
    ContainerId(id): ContainerId,
) -> Result<Json<ContainerJson>, HttpError> {
    let request = pb::GetContainerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        container_id: id.to_string(),
    };
    answer(
        state
            .clients()
            .containers
            .clone()
            .delete_container(scope.grpc(request))
            .await?,
    )
}

async fn deploy(
    State(state): State<GatewayState>,
    scope: Scope,
    ContainerId(id): ContainerId,
    JsonBody(_body): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<ContainerJson>, HttpError> {
    let request = pb::GetContainerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        container_id: id.to_string(),
    };
    answer(
        state
            .clients()
            .containers
            .clone()
            .deploy_container(scope.grpc(request))
            .await?,
    )
}
