//! `/triggers`: Scaleway triggers over the triggers gRPC service, written once over a
//! [`Version`]: the target is named `V::TRIGGER_TARGET` in bodies, queries and answers
//! (`function_id` here, `container_id` where a containers version mounts them). A NATS trigger
//! (`scw_nats_config`) delivers each message on its subject to its application as a POST; SQS
//! triggers are refused by the service, which has no SQS endpoint to read them from.

use crate::GatewayState;
use crate::error::{HttpError, invalid, required};
use crate::extract::{JsonBody, QueryParams, Scope, TriggerId};
use crate::list::{ListJson, listed};
use crate::version::Version;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::triggers::v1 as pb;
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

/// `order_by` values and the service's, the default first.
const ORDERS: [(&str, pb::TriggerOrder); 2] = [
    ("created_at_asc", pb::TriggerOrder::CreatedAtAsc),
    ("created_at_desc", pb::TriggerOrder::CreatedAtDesc),
];

pub(crate) fn routes<V: Version>() -> Router<GatewayState> {
    Router::new()
        .route("/triggers", get(list::<V>).post(create::<V>))
        .route(
            "/triggers/{trigger_id}",
            get(read::<V>).patch(update::<V>).delete(delete::<V>),
        )
}

/// `scw_nats_config` as answers show it; no credentials are made per trigger, so
/// `mnq_credential_id` stays null.
#[derive(Debug, Serialize)]
struct NatsConfigJson {
    subject: String,
    mnq_nats_account_id: String,
    mnq_project_id: String,
    mnq_region: String,
    mnq_credential_id: Option<String>,
}

/// A v1beta1 `Trigger`, fields in the spec's order, its target named as `V` names it; of the
/// one-of configs, only the trigger's own is present.
#[derive(Debug)]
struct TriggerJson<V> {
    trigger: pb::Trigger,
    version: PhantomData<V>,
}

impl<V: Version> Serialize for TriggerJson<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let trigger = &self.trigger;
        let status = match trigger.status() {
            pb::TriggerStatus::Unspecified => "unknown_status",
            pb::TriggerStatus::Ready => "ready",
            pb::TriggerStatus::Deleting => "deleting",
            pb::TriggerStatus::Error => "error",
            pb::TriggerStatus::Creating => "creating",
            pb::TriggerStatus::Pending => "pending",
        };
        let input_type = match trigger.input_type() {
            pb::TriggerInputType::Unspecified => "unknown_input_type",
            pb::TriggerInputType::Sqs => "sqs",
            pb::TriggerInputType::ScwSqs => "scw_sqs",
            pb::TriggerInputType::Nats => "nats",
            pb::TriggerInputType::ScwNats => "scw_nats",
        };
        let mut json = serializer.serialize_struct("Trigger", 8)?;
        json.serialize_field("id", &trigger.id)?;
        json.serialize_field("name", &trigger.name)?;
        json.serialize_field("description", &trigger.description)?;
        json.serialize_field(V::TRIGGER_TARGET, &trigger.application_id)?;
        json.serialize_field("input_type", input_type)?;
        json.serialize_field("status", status)?;
        json.serialize_field("error_message", &trigger.error_message)?;
        if let Some(nats) = &trigger.nats {
            let config = NatsConfigJson {
                subject: nats.subject.clone(),
                mnq_nats_account_id: nats.account_id.clone(),
                mnq_project_id: nats.mnq_project_id.clone(),
                mnq_region: nats.mnq_region.clone(),
                mnq_credential_id: None,
            };
            json.serialize_field("scw_nats_config", &config)?;
        }
        json.end()
    }
}

impl<V> From<pb::Trigger> for TriggerJson<V> {
    fn from(trigger: pb::Trigger) -> Self {
        Self {
            trigger,
            version: PhantomData,
        }
    }
}

fn answer<V: Version>(response: tonic::Response<pb::TriggerResponse>) -> Result<Json<TriggerJson<V>>, HttpError> {
    response
        .into_inner()
        .trigger
        .map(|trigger| Json(trigger.into()))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"triggers service answered without a trigger")))
}

/// `scw_nats_config` as a create body gives it.
#[derive(Debug, Deserialize)]
struct NatsConfigBody {
    subject: Option<String>,
    mnq_nats_account_id: Option<String>,
    mnq_project_id: Option<String>,
    mnq_region: Option<String>,
}

/// A create body: the target under the name `V` gives it, and one of the three configs (null
/// meaning not given, as the SDKs send it).
#[derive(Debug, Deserialize)]
struct CreateBody {
    name: Option<String>,
    function_id: Option<String>,
    container_id: Option<String>,
    description: Option<String>,
    scw_nats_config: Option<NatsConfigBody>,
    scw_sqs_config: Option<serde_json::Value>,
    sqs_config: Option<serde_json::Value>,
}

impl CreateBody {
    /// Returns the id of the trigger's target, as `V` names it, checked to be a UUID.
    fn target<V: Version>(&self) -> Result<String, HttpError> {
        let target = match V::TRIGGER_TARGET {
            "container_id" => &self.container_id,
            _ => &self.function_id,
        };
        match target.as_deref().filter(|id| !id.is_empty()) {
            None => Err(required(V::TRIGGER_TARGET)),
            Some(id) => Ok(nuage_core::ids::parse_id(V::TRIGGER_TARGET, id)?.to_string()),
        }
    }

    /// Returns which input the body gives, and its NATS config if that is it.
    fn input(&mut self, regions: &[String]) -> Result<(pb::TriggerInputType, Option<pb::NatsInput>), HttpError> {
        let given = |value: &Option<serde_json::Value>| value.as_ref().is_some_and(|value| !value.is_null());
        let mut inputs = Vec::new();
        if self.scw_nats_config.is_some() {
            inputs.push(("scw_nats_config", pb::TriggerInputType::ScwNats));
        }
        if given(&self.scw_sqs_config) {
            inputs.push(("scw_sqs_config", pb::TriggerInputType::ScwSqs));
        }
        if given(&self.sqs_config) {
            inputs.push(("sqs_config", pb::TriggerInputType::Sqs));
        }
        let input_type = match inputs.as_slice() {
            [] => {
                return Err(invalid(
                    "scw_nats_config",
                    Reason::Required,
                    "give the source of the trigger's messages: one of scw_nats_config, scw_sqs_config and sqs_config",
                ));
            }
            [(_, input_type)] => *input_type,
            [_, (second, _), ..] => {
                return Err(invalid(
                    second,
                    Reason::Constraint,
                    "give only one of scw_nats_config, scw_sqs_config and sqs_config",
                ));
            }
        };
        let Some(nats) = self.scw_nats_config.take() else {
            return Ok((input_type, None));
        };
        let mnq_region = nats.mnq_region.unwrap_or_default();
        if !mnq_region.is_empty() && !regions.contains(&mnq_region) {
            return Err(invalid(
                "scw_nats_config.mnq_region",
                Reason::Constraint,
                format!(
                    "unknown region `{mnq_region}`; valid regions are {}",
                    regions.join(", ")
                ),
            ));
        }
        let nats = pb::NatsInput {
            subject: nats.subject.unwrap_or_default(),
            account_id: nats.mnq_nats_account_id.unwrap_or_default(),
            mnq_project_id: nats.mnq_project_id.unwrap_or_default(),
            mnq_region,
            ..pb::NatsInput::default()
        };
        Ok((input_type, Some(nats)))
    }
}

async fn create<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(mut body): JsonBody<CreateBody>,
) -> Result<Json<TriggerJson<V>>, HttpError> {
    let application_id = body.target::<V>()?;
    let (input_type, nats) = body.input(&state.config().regions)?;
    let request = pb::CreateTriggerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id,
        name: body.name.unwrap_or_default(),
        description: body.description,
        input_type: input_type as i32,
        nats,
        destination: None,
        tags: None,
    };
    answer::<V>(
        state
            .clients()
            .triggers
            .clone()
            .create_trigger(scope.grpc(request))
            .await?,
    )
}

async fn read<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    TriggerId(id): TriggerId,
) -> Result<Json<TriggerJson<V>>, HttpError> {
    answer::<V>(state.clients().triggers.clone().get_trigger(one(&scope, id)).await?)
}

async fn list<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson<TriggerJson<V>>>, HttpError> {
    let list = query.list(&ORDERS)?;
    let request = pb::ListTriggersRequest {
        application_id: query.uuid(V::TRIGGER_TARGET)?.map(|id| id.to_string()),
        namespace_id: query.uuid("namespace_id")?.map(|id| id.to_string()),
        project_id: query.uuid("project_id")?.map(|id| id.to_string()),
        ..scope.list_request(list)
    };
    let mut client = state.clients().triggers.clone();
    let page = listed("triggers", client.list_triggers(scope.grpc(request)), TriggerJson::from).await?;
    // v1beta1's `ListTriggersResponse` shows its count first.
    Ok(Json(page.count_first()))
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    name: Option<String>,
    description: Option<String>,
    sqs_config: Option<serde_json::Value>,
}

async fn update<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    TriggerId(id): TriggerId,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<TriggerJson<V>>, HttpError> {
    let request = pb::UpdateTriggerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        trigger_id: id.to_string(),
        name: body.name,
        description: body.description,
        sqs_config: body.sqs_config.is_some_and(|value| !value.is_null()),
        ..pb::UpdateTriggerRequest::default()
    };
    answer::<V>(
        state
            .clients()
            .triggers
            .clone()
            .update_trigger(scope.grpc(request))
            .await?,
    )
}

async fn delete<V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    TriggerId(id): TriggerId,
) -> Result<Json<TriggerJson<V>>, HttpError> {
    answer::<V>(state.clients().triggers.clone().delete_trigger(one(&scope, id)).await?)
}

/// The request naming one trigger of the caller.
fn one(scope: &Scope, id: uuid::Uuid) -> tonic::Request<pb::GetTriggerRequest> {
    scope.grpc(pb::GetTriggerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        trigger_id: id.to_string(),
    })
}
