//! `/namespaces`: Scaleway v1alpha2 namespaces over the namespaces gRPC service.

use crate::GatewayState;
use crate::error::{HttpError, invalid, required};
use crate::extract::{JsonBody, NamespaceId, QueryParams, Scope};
use crate::list::{ListJson, ListQuery, listed};
use crate::version::Version;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::error::Reason;
use nuage_core::{ApiError, Caller};
use nuage_proto::common::v1 as common;
use nuage_proto::namespaces::v1 as pb;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// `order_by` values and the service's, the default first.
const ORDERS: [(&str, pb::NamespaceOrder); 4] = [
    ("created_at_asc", pb::NamespaceOrder::CreatedAtAsc),
    ("created_at_desc", pb::NamespaceOrder::CreatedAtDesc),
    ("name_asc", pb::NamespaceOrder::NameAsc),
    ("name_desc", pb::NamespaceOrder::NameDesc),
];

pub(crate) fn routes<V: Version>() -> Router<GatewayState> {
    Router::new()
        .route("/namespaces", get(list::<V>).post(create::<V>))
        .route(
            "/namespaces/{namespace_id}",
            get(read::<V>).patch(update::<V>).delete(delete::<V>),
        )
}

/// The v1alpha2 `Namespace`, fields in the spec's order.
#[derive(Debug, Serialize)]
pub(crate) struct NamespaceJson {
    id: String,
    name: String,
    environment_variables: BTreeMap<String, String>,
    organization_id: String,
    status: &'static str,
    registry_namespace_id: String,
    error_message: String,
    registry_endpoint: String,
    description: String,
    region: String,
}

/// Returns the v1alpha2 name of a namespace status (whose zero value is `ready`).
pub(crate) fn status_name(status: pb::NamespaceStatus) -> &'static str {
    match status {
        pb::NamespaceStatus::Ready | pb::NamespaceStatus::Unspecified => "ready",
        pb::NamespaceStatus::Deleting => "deleting",
        pb::NamespaceStatus::Error => "error",
        pb::NamespaceStatus::Locked => "locked",
        pb::NamespaceStatus::Creating => "creating",
        pb::NamespaceStatus::Pending => "pending",
    }
}

impl From<pb::Namespace> for NamespaceJson {
    fn from(namespace: pb::Namespace) -> Self {
        let status = status_name(namespace.status());
        Self {
            id: namespace.id,
            name: namespace.name,
            environment_variables: namespace.environment_variables.into_iter().collect(),
            organization_id: namespace.organization_id,
            status,
            registry_namespace_id: namespace.registry_namespace_id,
            error_message: namespace.error_message,
            registry_endpoint: namespace.registry_endpoint,
            description: namespace.description,
            region: namespace.region,
        }
    }
}

fn answer<V: Version>(namespace: Option<pb::Namespace>) -> Result<Json<V::Namespace>, HttpError> {
    namespace
        .map(|namespace| Json(namespace.into()))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"namespaces service answered without a namespace")))
}

/// Checks that an `organization_id` or `project_id` a client sent is the caller's own.
pub(crate) fn own(argument: &str, sent: Option<&str>, mine: Uuid) -> Result<(), HttpError> {
    match sent.filter(|value| !value.is_empty()) {
        None => Ok(()),
        Some(value) if nuage_core::ids::parse_id(argument, value)? == mine => Ok(()),
        Some(_) => Err(ApiError::permission_denied(argument.trim_end_matches("_id"), "write").into()),
    }
}

fn environment(values: Option<HashMap<String, String>>) -> Option<pb::EnvironmentVariables> {
    values.map(|values| pb::EnvironmentVariables { values })
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    name: Option<String>,
    environment_variables: Option<HashMap<String, String>>,
    organization_id: Option<String>,
    project_id: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    secret_environment_variables: Option<SecretsJson>,
}

/// A secret environment variable as a request sets it: a key with no value removes it.
#[derive(Debug, Deserialize)]
pub(crate) struct SecretJson {
    key: String,
    value: Option<String>,
}

/// Secret environment variables as requests send them: `[{key, value}]` (v1beta1) or
/// `{key: value}` (containers v1); either way a key with no value (or `null`) removes it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum SecretsJson {
    /// v1beta1's list.
    List(Vec<SecretJson>),
    /// Containers v1's map.
    Map(std::collections::BTreeMap<String, Option<String>>),
}

/// Returns the secrets of a namespace body of version `V`: a map only where `V` takes one
/// (containers v1), else a list.
fn secrets_of<V: Version>(sent: Option<SecretsJson>) -> Result<Vec<common::SecretChange>, HttpError> {
    if let Some(SecretsJson::Map(_)) = &sent
        && !V::EMPTY_IS_UNCHANGED
    {
        return Err(invalid(
            "secret_environment_variables",
            Reason::Format,
            "must be a list of {\"key\", \"value\"} objects",
        ));
    }
    Ok(secrets(sent))
}

/// Returns the secret changes a body asks for (`null` and absent ask for none).
pub(crate) fn secrets(secrets: Option<SecretsJson>) -> Vec<common::SecretChange> {
    match secrets {
        None => Vec::new(),
        Some(SecretsJson::List(list)) => list
            .into_iter()
            .map(|secret| common::SecretChange {
                key: secret.key,
                value: secret.value,
            })
            .collect(),
        Some(SecretsJson::Map(map)) => map
            .into_iter()
            .map(|(key, value)| common::SecretChange { key, value })
            .collect(),
    }
}

fn tags(values: Option<Vec<String>>) -> Option<common::Tags> {
    values.map(|values| common::Tags { values })
}

async fn create<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<V::Namespace>, HttpError> {
    own(
        "organization_id",
        body.organization_id.as_deref(),
        scope.caller.organization_id,
    )?;
    own("project_id", body.project_id.as_deref(), scope.caller.project_id)?;
    let name = body
        .name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| required("name"))?;
    let request = pb::CreateNamespaceRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        name,
        description: body.description,
        environment_variables: environment(body.environment_variables),
        tags: tags(body.tags),
        secret_environment_variables: secrets_of::<V>(body.secret_environment_variables)?,
    };
    let response = state.namespaces().create_namespace(scope.grpc(request)).await?;
    answer::<V>(response.into_inner().namespace)
}

async fn read<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    NamespaceId(id): NamespaceId,
) -> Result<Json<V::Namespace>, HttpError> {
    let request = pb::GetNamespaceRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        namespace_id: id.to_string(),
        wait_ready_ms: 0,
    };
    let response = state.namespaces().get_namespace(scope.grpc(request)).await?;
    answer::<V>(response.into_inner().namespace)
}

pub(crate) fn is_other_tenant(query: &QueryParams, caller: &Caller) -> Result<bool, HttpError> {
    let other_organization = query
        .uuid("organization_id")?
        .is_some_and(|id| id != caller.organization_id);
    let other_project = query.uuid("project_id")?.is_some_and(|id| id != caller.project_id);
    Ok(other_organization || other_project)
}

async fn list<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson<V::Namespace>>, HttpError> {
    // `page` is checked before `order_by` here.
    let (page, page_size) = query.page()?;
    let list = ListQuery {
        page,
        page_size,
        order_by: query.order(&ORDERS)?,
    };
    // Filtering on another tenant matches nothing, exactly as if it had nothing.
    if is_other_tenant(&query, &scope.caller)? {
        return Ok(Json(ListJson::empty("namespaces")));
    }
    let request = pb::ListNamespacesRequest {
        name: query.get("name").filter(|name| !name.is_empty()).map(str::to_owned),
        ..scope.list_request(list)
    };
    let mut client = state.namespaces();
    let call = client.list_namespaces(scope.grpc(request));
    listed("namespaces", call, V::Namespace::from).await.map(Json)
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    environment_variables: Option<HashMap<String, String>>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    secret_environment_variables: Option<SecretsJson>,
}

async fn update<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    NamespaceId(id): NamespaceId,
    JsonBody(mut body): JsonBody<UpdateBody>,
) -> Result<Json<V::Namespace>, HttpError> {
    if V::EMPTY_IS_UNCHANGED {
        body.environment_variables = body.environment_variables.filter(|values| !values.is_empty());
        body.tags = body.tags.filter(|values| !values.is_empty());
    }
    let request = pb::UpdateNamespaceRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        namespace_id: id.to_string(),
        description: body.description,
        environment_variables: environment(body.environment_variables),
        tags: tags(body.tags),
        secret_environment_variables: secrets_of::<V>(body.secret_environment_variables)?,
    };
    let response = state.namespaces().update_namespace(scope.grpc(request)).await?;
    answer::<V>(response.into_inner().namespace)
}

async fn delete<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    NamespaceId(id): NamespaceId,
) -> Result<Json<V::Namespace>, HttpError> {
    let request = pb::DeleteNamespaceRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        namespace_id: id.to_string(),
    };
    let response = state.namespaces().delete_namespace(scope.grpc(request)).await?;
    answer::<V>(response.into_inner().namespace)
}
