//! Containers v1 `/triggers`: one resource over two services. A trigger whose source is a
//! `cron_config` is a cron of the crons service (with the delivery v1 gives it: body, headers,
//! path, method); one whose source is a `nats_config` (the tenant's own servers, as many as the
//! operator allows) is a trigger of the triggers service; `sqs_config` is refused, as no SQS
//! endpoint can be configured. Crons and NATS triggers made through v1beta1 are seen here too,
//! as the cron and NATS triggers they are. Lists merge both, the caller's containers' only.

use crate::GatewayState;
use crate::error::{HttpError, invalid, required};
use crate::extract::{JsonBody, QueryParams, Scope, TriggerId};
use crate::list::{ListJson, every_page};
use crate::v1beta1::timestamp;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::applications::v1 as wire;
use nuage_proto::common::v1::Tags;
use nuage_proto::crons::v1 as crons;
use nuage_proto::triggers::v1 as triggers;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// `order_by` values, the default first.
const ORDERS: [&str; 4] = ["created_at_asc", "created_at_desc", "name_asc", "name_desc"];

pub(crate) fn routes() -> Router<GatewayState> {
    Router::new()
        .route("/triggers", get(list).post(create))
        .route("/triggers/{trigger_id}", get(read).patch(update).delete(delete))
}

#[derive(Debug, Serialize)]
struct DestinationJson {
    http_path: String,
    http_method: String,
}

#[derive(Debug, Serialize)]
struct CronConfigJson {
    schedule: String,
    timezone: String,
    body: String,
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct NatsConfigJson {
    server_urls: Vec<String>,
    subject: String,
}

/// The v1 `Trigger`, fields in the spec's order; of the one-of sources, only its own.
#[derive(Debug, Serialize)]
struct TriggerJson {
    id: String,
    name: String,
    description: String,
    tags: Vec<String>,
    status: &'static str,
    error_message: String,
    container_id: String,
    destination_config: DestinationJson,
    source_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cron_config: Option<CronConfigJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nats_config: Option<NatsConfigJson>,
    created_at: Option<String>,
    updated_at: Option<String>,
    /// For sorting merged lists.
    #[serde(skip)]
    created_micros: i64,
}

impl From<triggers::Trigger> for TriggerJson {
    fn from(trigger: triggers::Trigger) -> Self {
        let status = match trigger.status() {
            triggers::TriggerStatus::Unspecified => "unknown_status",
            triggers::TriggerStatus::Ready => "ready",
            triggers::TriggerStatus::Deleting => "deleting",
            triggers::TriggerStatus::Error => "error",
            triggers::TriggerStatus::Creating | triggers::TriggerStatus::Pending => "creating",
        };
        let destination = trigger.destination.unwrap_or_default();
        let nats = trigger.nats.unwrap_or_default();
        Self {
            id: trigger.id,
            name: trigger.name,
            description: trigger.description,
            tags: trigger.tags,
            status,
            error_message: trigger.error_message.unwrap_or_default(),
            container_id: trigger.application_id,
            destination_config: DestinationJson {
                http_path: Some(destination.http_path)
                    .filter(|path| !path.is_empty())
                    .unwrap_or_else(|| "/".into()),
                http_method: Some(destination.http_method)
                    .filter(|method| !method.is_empty())
                    .unwrap_or_else(|| "post".into()),
            },
            source_type: "nats",
            cron_config: None,
            nats_config: Some(NatsConfigJson {
                server_urls: nats.server_urls,
                subject: nats.subject,
            }),
            created_at: timestamp(trigger.created_at),
            updated_at: timestamp(trigger.updated_at),
            created_micros: trigger.created_at,
        }
    }
}

impl From<crons::Cron> for TriggerJson {
    fn from(cron: crons::Cron) -> Self {
        let status = match cron.status() {
            crons::CronStatus::Unspecified => "unknown_status",
            crons::CronStatus::Ready => "ready",
            crons::CronStatus::Deleting => "deleting",
            crons::CronStatus::Error => "error",
            crons::CronStatus::Locked => "locked",
            crons::CronStatus::Creating | crons::CronStatus::Pending => "creating",
        };
        // A cron made through v1beta1 sends its `args` to `/` with a POST.
        let delivery = cron.delivery.unwrap_or_else(|| crons::CronDelivery {
            body: cron.args.clone(),
            headers: HashMap::from([("Content-Type".to_owned(), "application/json".to_owned())]),
            http_path: "/".to_owned(),
            http_method: "post".to_owned(),
            timezone: "UTC".to_owned(),
            ..crons::CronDelivery::default()
        });
        Self {
            id: cron.id,
            name: cron.name,
            description: delivery.description,
            tags: delivery.tags,
            status,
            error_message: String::new(),
            container_id: cron.application_id,
            destination_config: DestinationJson {
                http_path: delivery.http_path,
                http_method: delivery.http_method,
            },
            source_type: "cron",
            cron_config: Some(CronConfigJson {
                schedule: cron.schedule,
                timezone: delivery.timezone,
                body: delivery.body,
                headers: delivery.headers.into_iter().collect(),
            }),
            nats_config: None,
            created_at: timestamp(cron.created_at),
            updated_at: timestamp(cron.updated_at),
            created_micros: cron.created_at,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct DestinationBody {
    http_path: Option<String>,
    http_method: Option<String>,
}

impl DestinationBody {
    /// Returns the method given, unless it is Go's zero value.
    fn method(&self) -> Option<&str> {
        self.http_method
            .as_deref()
            .filter(|method| !method.is_empty() && *method != "unknown_http_method")
    }
}

#[derive(Debug, Deserialize)]
struct CronConfigBody {
    schedule: Option<String>,
    timezone: Option<String>,
    body: Option<String>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct NatsConfigBody {
    server_urls: Option<Vec<String>>,
    subject: Option<String>,
    credentials_file_content: Option<String>,
}

/// A create body (null meaning not given, as the SDKs send it).
#[derive(Debug, Deserialize)]
struct CreateBody {
    container_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    destination_config: Option<DestinationBody>,
    cron_config: Option<CronConfigBody>,
    sqs_config: Option<Value>,
    nats_config: Option<NatsConfigBody>,
}

/// What a v1 SQS source gets here.
const NO_SQS: &str = "no SQS endpoint is configured on this installation: give a cron_config or a nats_config";

/// Returns the one source a body gives, as its argument's name.
fn source(cron: bool, sqs: bool, nats: bool) -> Result<&'static str, HttpError> {
    let given: Vec<&str> = [("cron_config", cron), ("sqs_config", sqs), ("nats_config", nats)]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
    match given.as_slice() {
        [] => Err(invalid(
            "cron_config",
            Reason::Required,
            "give the trigger's source: one of cron_config, sqs_config and nats_config",
        )),
        [one] => Ok(one),
        [_, second, ..] => Err(invalid(
            second,
            Reason::Constraint,
            "give only one of cron_config, sqs_config and nats_config",
        )),
    }
}

/// Names v1's arguments where the crons and triggers services name their own.
fn trigger_names(error: HttpError) -> HttpError {
    let HttpError::Api(mut error) = error else { return error };
    for violation in &mut error.violations {
        match violation.argument_name.as_str() {
            "schedule" => violation.argument_name = "cron_config.schedule".to_owned(),
            "application_id" => violation.argument_name = "container_id".to_owned(),
            _ => {}
        }
    }
    HttpError::Api(error)
}

/// Returns the delivery of a new cron trigger.
fn delivery(body: &CreateBody, cron: &CronConfigBody) -> crons::CronDelivery {
    let destination = body.destination_config.as_ref();
    crons::CronDelivery {
        body: cron.body.clone().unwrap_or_default(),
        headers: cron.headers.clone().unwrap_or_default().into_iter().collect(),
        http_path: destination
            .and_then(|destination| destination.http_path.clone())
            .unwrap_or_else(|| "/".to_owned()),
        http_method: destination
            .map(|destination| destination.http_method.clone().unwrap_or_default())
            .unwrap_or_else(|| "post".to_owned()),
        timezone: cron
            .timezone
            .clone()
            .filter(|timezone| !timezone.is_empty())
            .unwrap_or_else(|| "UTC".to_owned()),
        description: body.description.clone().unwrap_or_default(),
        tags: body.tags.clone().unwrap_or_default(),
    }
}

async fn create(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<TriggerJson>, HttpError> {
    let container_id = body
        .container_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| required("container_id"))?;
    let container_id = nuage_core::ids::parse_id("container_id", container_id)?.to_string();
    let name = body
        .name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| required("name"))?;
    let sqs = body.sqs_config.as_ref().is_some_and(|value| !value.is_null());
    match source(body.cron_config.is_some(), sqs, body.nats_config.is_some())? {
        "cron_config" => {
            let cron = body.cron_config.as_ref().expect("given");
            let request = crons::CreateCronRequest {
                caller: Some(scope.caller.to_proto()),
                region: scope.region.clone(),
                application_id: container_id,
                schedule: cron.schedule.clone().unwrap_or_default(),
                args: None,
                name: Some(name),
                delivery: Some(delivery(&body, cron)),
            };
            let made = state.clients().crons.clone().create_cron(scope.grpc(request)).await;
            cron_answer(made.map_err(|status| trigger_names(status.into()))?)
        }
        "sqs_config" => Err(invalid("sqs_config", Reason::Constraint, NO_SQS)),
        _ => {
            let nats = body.nats_config.as_ref().expect("given");
            let destination = body.destination_config.as_ref();
            let request = triggers::CreateTriggerRequest {
                caller: Some(scope.caller.to_proto()),
                region: scope.region.clone(),
                application_id: container_id,
                name,
                description: body.description.clone(),
                input_type: triggers::TriggerInputType::Nats as i32,
                nats: Some(triggers::NatsInput {
                    subject: nats.subject.clone().unwrap_or_default(),
                    server_urls: nats.server_urls.clone().unwrap_or_default(),
                    credentials: nats.credentials_file_content.clone().unwrap_or_default(),
                    ..triggers::NatsInput::default()
                }),
                destination: destination.map(|destination| triggers::Destination {
                    http_path: destination.http_path.clone().unwrap_or_default(),
                    http_method: destination.http_method.clone().unwrap_or_default(),
                }),
                tags: body.tags.clone().map(|values| Tags { values }),
            };
            let made = state
                .clients()
                .triggers
                .clone()
                .create_trigger(scope.grpc(request))
                .await;
            trigger_answer(made.map_err(|status| trigger_names(status.into()))?)
        }
    }
}

fn cron_answer(response: tonic::Response<crons::CronResponse>) -> Result<Json<TriggerJson>, HttpError> {
    response
        .into_inner()
        .cron
        .map(|cron| Json(cron.into()))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"crons service answered without a cron")))
}

fn trigger_answer(response: tonic::Response<triggers::TriggerResponse>) -> Result<Json<TriggerJson>, HttpError> {
    response
        .into_inner()
        .trigger
        .map(|trigger| Json(trigger.into()))
        .ok_or_else(|| HttpError::Api(ApiError::internal(&"triggers service answered without a trigger")))
}

/// Which service holds trigger `id` of the caller: its cron or its NATS trigger, or NOT_FOUND
/// as the triggers service says it.
enum Held {
    Cron(crons::Cron),
    Nats(triggers::Trigger),
}

async fn held(state: &GatewayState, scope: &Scope, id: Uuid) -> Result<Held, HttpError> {
    let request = triggers::GetTriggerRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        trigger_id: id.to_string(),
    };
    let missing = match state.clients().triggers.clone().get_trigger(scope.grpc(request)).await {
        Ok(found) => {
            let trigger = found.into_inner().trigger;
            return trigger
                .map(Held::Nats)
                .ok_or_else(|| HttpError::Api(ApiError::internal(&"triggers service answered without a trigger")));
        }
        Err(status) if status.code() == tonic::Code::NotFound => status,
        Err(status) => return Err(status.into()),
    };
    let request = crons::GetCronRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        cron_id: id.to_string(),
    };
    match state.clients().crons.clone().get_cron(scope.grpc(request)).await {
        Ok(found) => found
            .into_inner()
            .cron
            .map(Held::Cron)
            .ok_or_else(|| HttpError::Api(ApiError::internal(&"crons service answered without a cron"))),
        Err(status) if status.code() == tonic::Code::NotFound => Err(missing.into()),
        Err(status) => Err(status.into()),
    }
}

async fn read(
    State(state): State<GatewayState>,
    scope: Scope,
    TriggerId(id): TriggerId,
) -> Result<Json<TriggerJson>, HttpError> {
    Ok(Json(match held(&state, &scope, id).await? {
        Held::Cron(cron) => cron.into(),
        Held::Nats(trigger) => trigger.into(),
    }))
}

/// An update body: only what is given changes; the source type cannot.
#[derive(Debug, Deserialize)]
struct UpdateBody {
    name: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    destination_config: Option<DestinationBody>,
    cron_config: Option<CronConfigBody>,
    sqs_config: Option<Value>,
    nats_config: Option<NatsConfigBody>,
}

async fn update(
    State(state): State<GatewayState>,
    scope: Scope,
    TriggerId(id): TriggerId,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<TriggerJson>, HttpError> {
    let held = held(&state, &scope, id).await?;
    let (own, other) = match held {
        Held::Cron(_) => ("cron_config", ["sqs_config", "nats_config"]),
        Held::Nats(_) => ("nats_config", ["cron_config", "sqs_config"]),
    };
    let given = [
        ("cron_config", body.cron_config.is_some()),
        (
            "sqs_config",
            body.sqs_config.as_ref().is_some_and(|value| !value.is_null()),
        ),
        ("nats_config", body.nats_config.is_some()),
    ];
    if let Some((name, _)) = given.iter().find(|(name, given)| *given && other.contains(name)) {
        return Err(invalid(
            name,
            Reason::Constraint,
            format!("this trigger's source is its {own}: a trigger's source type cannot change"),
        ));
    }
    match held {
        Held::Cron(cron) => update_cron(&state, &scope, cron, body).await,
        Held::Nats(_) => {
            let destination = body.destination_config.as_ref();
            let request = triggers::UpdateTriggerRequest {
                caller: Some(scope.caller.to_proto()),
                region: scope.region.clone(),
                trigger_id: id.to_string(),
                name: body.name,
                description: body.description,
                sqs_config: false,
                destination: destination.map(|destination| triggers::Destination {
                    http_path: destination.http_path.clone().unwrap_or_default(),
                    http_method: destination.method().unwrap_or_default().to_owned(),
                }),
                tags: body.tags.map(|values| Tags { values }),
                nats: body.nats_config.map(|nats| triggers::NatsChanges {
                    subject: nats.subject,
                    // An empty list (what the SDKs send when not given) means unchanged.
                    server_urls: nats
                        .server_urls
                        .filter(|urls| !urls.is_empty())
                        .map(|values| triggers::ServerUrls { values }),
                    credentials: nats.credentials_file_content,
                }),
            };
            let changed = state
                .clients()
                .triggers
                .clone()
                .update_trigger(scope.grpc(request))
                .await;
            trigger_answer(changed?)
        }
    }
}

/// Changes a cron trigger: what the body gives replaces what it had.
async fn update_cron(
    state: &GatewayState,
    scope: &Scope,
    cron: crons::Cron,
    body: UpdateBody,
) -> Result<Json<TriggerJson>, HttpError> {
    let shown = TriggerJson::from(cron.clone());
    let config = shown.cron_config.unwrap_or(CronConfigJson {
        schedule: String::new(),
        timezone: "UTC".to_owned(),
        body: String::new(),
        headers: BTreeMap::new(),
    });
    let given = body.cron_config;
    let mut delivery = crons::CronDelivery {
        body: config.body,
        headers: config.headers.into_iter().collect(),
        http_path: shown.destination_config.http_path,
        http_method: shown.destination_config.http_method,
        timezone: config.timezone,
        description: body.description.unwrap_or(shown.description),
        tags: body.tags.unwrap_or(shown.tags),
    };
    if let Some(destination) = &body.destination_config {
        if let Some(path) = destination.http_path.clone().filter(|path| !path.is_empty()) {
            delivery.http_path = path;
        }
        if let Some(method) = destination.method() {
            method.clone_into(&mut delivery.http_method);
        }
    }
    let mut schedule = None;
    if let Some(given) = given {
        schedule = given.schedule.filter(|schedule| !schedule.is_empty());
        if let Some(timezone) = given.timezone.filter(|timezone| !timezone.is_empty()) {
            delivery.timezone = timezone;
        }
        if let Some(text) = given.body {
            delivery.body = text;
        }
        // v1's SDKs send `{}` for headers not given: it means unchanged.
        if let Some(headers) = given.headers.filter(|headers| !headers.is_empty()) {
            delivery.headers = headers.into_iter().collect();
        }
    }
    let request = crons::UpdateCronRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        cron_id: cron.id,
        application_id: None,
        schedule,
        args: None,
        name: body.name,
        delivery: Some(delivery),
    };
    let changed = state.clients().crons.clone().update_cron(scope.grpc(request)).await;
    cron_answer(changed.map_err(|status| trigger_names(status.into()))?)
}

async fn delete(
    State(state): State<GatewayState>,
    scope: Scope,
    TriggerId(id): TriggerId,
) -> Result<Json<TriggerJson>, HttpError> {
    let held = held(&state, &scope, id).await?;
    match held {
        Held::Cron(cron) => {
            let request = crons::GetCronRequest {
                caller: Some(scope.caller.to_proto()),
                region: scope.region.clone(),
                cron_id: cron.id,
            };
            cron_answer(state.clients().crons.clone().delete_cron(scope.grpc(request)).await?)
        }
        Held::Nats(trigger) => {
            let request = triggers::GetTriggerRequest {
                caller: Some(scope.caller.to_proto()),
                region: scope.region.clone(),
                trigger_id: trigger.id,
            };
            trigger_answer(
                state
                    .clients()
                    .triggers
                    .clone()
                    .delete_trigger(scope.grpc(request))
                    .await?,
            )
        }
    }
}

/// Returns the caller's containers in the region (of namespace `namespace_id` when given),
/// with their projects.
async fn containers(
    state: &GatewayState,
    scope: &Scope,
    namespace_id: Option<Uuid>,
) -> Result<HashMap<String, String>, HttpError> {
    let in_namespace = |request| wire::ListApplicationsRequest {
        namespace_id: namespace_id.map(|id| id.to_string()),
        ..request
    };
    let client = state.clients().containers.clone();
    let containers = every_page(scope, in_namespace, client, |mut client, request| async move {
        client.list_containers(request).await
    })
    .await?;
    Ok(containers
        .into_iter()
        .map(|container| (container.id, container.project_id))
        .collect())
}

async fn list(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson<TriggerJson>>, HttpError> {
    let order = query.choice("order_by", &ORDERS)?;
    let (page, page_size) = query.page()?;
    let container_id = query.uuid("container_id")?.map(|id| id.to_string());
    let namespace_id = query.uuid("namespace_id")?;
    let project_id = query.uuid("project_id")?.map(|id| id.to_string());
    // Another organization's triggers are none of the caller's.
    if query
        .uuid("organization_id")?
        .is_some_and(|id| id != scope.caller.organization_id)
    {
        return Ok(Json(ListJson::empty("triggers")));
    }
    let owned = containers(&state, &scope, namespace_id).await?;
    let kept = |application_id: &str| {
        owned.get(application_id).is_some_and(|project| {
            container_id.as_deref().is_none_or(|id| id == application_id)
                && project_id.as_deref().is_none_or(|id| id == project)
        })
    };
    let of_container = |request| crons::ListCronsRequest {
        application_id: container_id.clone(),
        ..request
    };
    let client = state.clients().crons.clone();
    let crons = every_page(&scope, of_container, client, |mut client, request| async move {
        client.list_crons(request).await
    })
    .await?;
    let of_container = |request| triggers::ListTriggersRequest {
        application_id: container_id.clone(),
        ..request
    };
    let client = state.clients().triggers.clone();
    let nats = every_page(&scope, of_container, client, |mut client, request| async move {
        client.list_triggers(request).await
    })
    .await?;
    let mut all: Vec<TriggerJson> = crons
        .into_iter()
        .filter(|cron| kept(&cron.application_id))
        .map(TriggerJson::from)
        .chain(
            nats.into_iter()
                .filter(|trigger| kept(&trigger.application_id))
                .map(TriggerJson::from),
        )
        .collect();
    match order {
        "created_at_desc" => all.sort_by(|a, b| (b.created_micros, &b.id).cmp(&(a.created_micros, &a.id))),
        "name_asc" => all.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id))),
        "name_desc" => all.sort_by(|a, b| (&b.name, &b.id).cmp(&(&a.name, &a.id))),
        _ => all.sort_by(|a, b| (a.created_micros, &a.id).cmp(&(b.created_micros, &b.id))),
    }
    let total_count = all.len() as u64;
    let start = (page as usize - 1).saturating_mul(page_size as usize);
    let triggers = all.into_iter().skip(start).take(page_size as usize).collect();
    Ok(Json(ListJson::new("triggers", triggers, total_count)))
}
