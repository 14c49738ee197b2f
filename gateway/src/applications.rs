//! The handlers of functions and containers, written once over an [`Owner`] (the functions or
//! the containers service): create, read, list, update, delete and deploy, with the v1alpha2
//! JSON of each; and what they share with others: status and privacy names, timeouts that
//! arrive as milliseconds or as a duration string, list parameters, and finding which kind an
//! application id is.

use crate::error::{HttpError, invalid, required};
use crate::extract::{JsonBody, NamespaceId, QueryParams, Scope, path_param};
use crate::list::{ListJson, listed};
use crate::namespaces::is_other_tenant;
use crate::owner::Owner;
use crate::version::{FromApplication, Version};
use crate::{GatewayConfig, GatewayState};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use nuage_applications::{Lookup, Owners, Resolved};
use nuage_core::ApiError;
use nuage_core::error::Reason;
use nuage_proto::applications::v1 as wire;
use nuage_proto::common::v1 as common;
use serde::Deserialize;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use tonic::{Request, Response};
use uuid::Uuid;

/// Returns the caller's function or container `id`, `None` when it has neither.
pub(crate) async fn resolve(state: &GatewayState, scope: &Scope, id: &str) -> Result<Option<Resolved>, HttpError> {
    Ok(owners(state).resolve(scope.lookup(id)).await?)
}

/// Returns the services that own functions and containers.
pub(crate) fn owners(state: &GatewayState) -> Owners {
    let clients = state.clients();
    Owners {
        functions: clients.functions.clone(),
        containers: clients.containers.clone(),
    }
}

impl Scope {
    /// Returns a lookup of application `id` for this request's caller.
    pub(crate) fn lookup<'a>(&'a self, id: &'a str) -> Lookup<'a> {
        Lookup {
            caller: &self.caller,
            region: &self.region,
            id,
            request_id: &self.request_id,
        }
    }
}

/// `order_by` values of function and container lists and the services', the default first.
const ORDERS: [(&str, common::ApplicationOrder); 4] = [
    ("created_at_asc", common::ApplicationOrder::CreatedAtAsc),
    ("created_at_desc", common::ApplicationOrder::CreatedAtDesc),
    ("name_asc", common::ApplicationOrder::NameAsc),
    ("name_desc", common::ApplicationOrder::NameDesc),
];

/// Returns the v1alpha2 name of an application status.
pub(crate) fn status_name(status: i32) -> &'static str {
    match common::ApplicationStatus::try_from(status).unwrap_or(common::ApplicationStatus::Unspecified) {
        common::ApplicationStatus::Ready | common::ApplicationStatus::Unspecified => "ready",
        common::ApplicationStatus::Deleting => "deleting",
        common::ApplicationStatus::Error => "error",
        common::ApplicationStatus::Locked => "locked",
        common::ApplicationStatus::Creating => "creating",
        common::ApplicationStatus::Pending => "pending",
        common::ApplicationStatus::Created => "created",
    }
}

/// Returns the v1alpha2 name of a privacy.
pub(crate) fn privacy_name(privacy: i32) -> &'static str {
    match common::Privacy::try_from(privacy).unwrap_or(common::Privacy::Unspecified) {
        common::Privacy::Public => "public",
        common::Privacy::Private => "private",
        common::Privacy::Unspecified => "unknown",
    }
}

/// Returns the privacy a body asks for; absent or `unknown` leaves it to the service.
pub(crate) fn privacy(value: Option<&str>) -> Result<i32, HttpError> {
    Ok(match value.unwrap_or_default() {
        "" | "unknown" | "unknown_privacy" => common::Privacy::Unspecified,
        "public" => common::Privacy::Public,
        "private" => common::Privacy::Private,
        other => {
            return Err(invalid(
                "privacy",
                Reason::Constraint,
                format!("`{other}` is not one of public, private"),
            ));
        }
    } as i32)
}

/// A timeout as clients send it: milliseconds (v1alpha2), or a duration string such as
/// `"300s"` or `"1500ms"` (what the Serverless plugin passes on from its yml).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Timeout {
    /// Milliseconds.
    Millis(u64),
    /// `<number>s` or `<number>ms`.
    Text(String),
}

impl Timeout {
    /// Returns the timeout in milliseconds.
    pub(crate) fn millis(&self) -> Result<u64, HttpError> {
        self.millis_of("timeout")
    }

    /// Returns the duration sent as `argument` in milliseconds.
    pub(crate) fn millis_of(&self, argument: &str) -> Result<u64, HttpError> {
        let text = match self {
            Self::Millis(millis) => return Ok(*millis),
            Self::Text(text) => text.trim(),
        };
        let refuse = || {
            invalid(
                argument,
                Reason::Format,
                format!("`{text}` is neither milliseconds nor a duration such as `300s` or `1500ms`"),
            )
        };
        let (number, scale) = if let Some(number) = text.strip_suffix("ms") {
            (number, 1.0)
        } else if let Some(number) = text.strip_suffix('s') {
            (number, 1000.0)
        } else {
            (text, 1.0)
        };
        let value: f64 = number.trim().parse().map_err(|_| refuse())?;
        if !value.is_finite() || value < 0.0 {
            return Err(refuse());
        }
        // Bounded by the finite check; the service refuses values out of range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok((value * scale).round().min(u64::MAX as f64) as u64)
    }
}

/// Returns the millisecond form of an optional timeout.
pub(crate) fn timeout_ms(timeout: Option<&Timeout>) -> Result<Option<u64>, HttpError> {
    timeout.map(Timeout::millis).transpose()
}

/// Returns the routes of `O`'s applications: `/<kind>s`, `/<kind>s/{id}`, its deploy, and
/// `/namespaces/{id}/<kind>s`, which the Serverless plugin calls.
pub(crate) fn routes<O: Owner, V: Version>() -> Router<GatewayState> {
    let plural = O::PLURAL;
    let one = format!("/{plural}/{{{}}}", O::ID_PARAM);
    Router::new()
        .route(&format!("/{plural}"), get(list::<O, V>).post(create::<O, V>))
        .route(&one, get(read::<O, V>).patch(update::<O, V>).delete(delete::<O, V>))
        .route(&format!("{one}/deploy"), post(deploy::<O, V>))
        .route(
            &format!("/namespaces/{{namespace_id}}/{plural}"),
            get(list_in_namespace::<O, V>),
        )
}

/// The `{function_id}` or `{container_id}` path parameter; a malformed one is a 400 naming it.
pub(crate) struct ApplicationId<O>(pub Uuid, pub PhantomData<O>);

impl<O: Owner> FromRequestParts<GatewayState> for ApplicationId<O> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> Result<Self, Self::Rejection> {
        let value = path_param(parts, state, O::ID_PARAM).await?;
        Ok(Self(nuage_core::ids::parse_id(O::ID_PARAM, &value)?, PhantomData))
    }
}

/// The v1alpha2 `Function` or `Container`, fields in the spec's order; the fields of the
/// other kind are left out.
#[derive(Debug, Serialize)]
pub(crate) struct ApplicationJson {
    id: String,
    name: String,
    namespace_id: String,
    status: &'static str,
    environment_variables: BTreeMap<String, String>,
    min_scale: u32,
    max_scale: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<String>,
    memory_limit: u32,
    cpu_limit: u32,
    endpoint: String,
    timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    handler: Option<String>,
    error_message: String,
    privacy: &'static str,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_image: Option<String>,
    region: String,
}

/// v1alpha2 shows no sandbox.
impl FromApplication for ApplicationJson {
    fn from_application<O: Owner>(application: wire::Application, _default_sandbox: &str) -> Self {
        let (function, container) = if O::FUNCTION {
            (Some((application.runtime, application.handler)), None)
        } else {
            (None, Some(application.registry_image))
        };
        let (runtime, handler) = function.unzip();
        Self {
            id: application.id,
            name: application.name,
            namespace_id: application.namespace_id,
            status: status_name(application.status),
            environment_variables: application.environment_variables.into_iter().collect(),
            min_scale: application.min_scale,
            max_scale: application.max_scale,
            runtime,
            memory_limit: application.memory_limit,
            cpu_limit: application.cpu_limit,
            endpoint: application.endpoint,
            timeout: application.timeout_ms,
            handler,
            error_message: application.error_message,
            privacy: privacy_name(application.privacy),
            description: application.description,
            registry_image: container,
            region: application.region,
        }
    }
}

/// Returns the JSON of the application a response carries, in version `V`.
pub(crate) fn answer<O: Owner, V: Version>(
    state: &GatewayState,
    response: Response<wire::ApplicationResponse>,
) -> Result<Json<V::Application>, HttpError> {
    response
        .into_inner()
        .application
        .map(|application| Json(V::application::<O>(application, state.config())))
        .ok_or_else(|| {
            let detail = format!("{} service answered without a {}", O::PLURAL, O::NOUN);
            HttpError::Api(ApiError::internal(&detail))
        })
}

fn environment(values: Option<HashMap<String, String>>) -> Option<common::Environment> {
    values.map(|values| common::Environment { values })
}

/// Returns a text field of one kind only, sent as `value`: checked as text for `O`'s kind
/// when it is `O`'s (`function_field` says whose), ignored (as any unknown field) for the
/// other.
fn own_text<O: Owner>(
    function_field: bool,
    argument: &str,
    value: Option<serde_json::Value>,
) -> Result<Option<String>, HttpError> {
    match value {
        Some(value) if function_field == O::FUNCTION => serde_json::from_value(value)
            .map(Some)
            .map_err(|error| invalid(argument, Reason::Format, error.to_string())),
        _ => Ok(None),
    }
}

/// The fields v1beta1 adds to function and container bodies. v1alpha2 clients do not send
/// them; when they come, they mean the same through either version. Flattened into the
/// bodies, where serde no longer tracks paths: each is read as JSON here and typed in
/// [`BetaFields::check`], so that an error still names the argument.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BetaFields {
    /// `null` (what Go clients send on PATCH) leaves them as they are.
    tags: Option<serde_json::Value>,
    http_option: Option<serde_json::Value>,
    sandbox: Option<serde_json::Value>,
    secret_environment_variables: Option<serde_json::Value>,
    private_network_id: Option<serde_json::Value>,
}

/// Returns `value` as a `T`, or an error naming `argument` (and where inside it).
fn typed<T: serde::de::DeserializeOwned>(
    argument: &str,
    value: Option<serde_json::Value>,
) -> Result<Option<T>, HttpError> {
    let Some(value) = value else { return Ok(None) };
    serde_path_to_error::deserialize(value).map(Some).map_err(|error| {
        let path = error.path().to_string();
        let argument = match path.as_str() {
            "." | "" => argument.to_owned(),
            inner if inner.starts_with('[') => format!("{argument}{inner}"),
            inner => format!("{argument}.{inner}"),
        };
        invalid(&argument, Reason::Format, error.into_inner().to_string())
    })
}

/// Returns `value`, a whole request body, as a `T`, or an error naming the argument at fault.
pub(crate) fn body_of<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, HttpError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let argument = if path == "." { "body".to_owned() } else { path };
        invalid(&argument, Reason::Format, error.into_inner().to_string())
    })
}

/// What [`BetaFields`] set: tags (all of them, when given), secret changes and the sandbox
/// (unspecified: the default on create, unchanged on update).
pub(crate) struct BetaChanges {
    tags: Option<common::Tags>,
    secrets: Vec<common::SecretChange>,
    sandbox: common::Sandbox,
}

/// Returns the sandbox a body names, once this installation is known to offer it.
fn sandbox(value: Option<&str>, config: &GatewayConfig) -> Result<common::Sandbox, HttpError> {
    let (chosen, what) = match value.unwrap_or_default() {
        "" | "unknown_sandbox" => return Ok(common::Sandbox::Unspecified),
        "v1" => (common::Sandbox::V1, "v1"),
        "v2" => (common::Sandbox::V2, "v2"),
        other => {
            return Err(invalid(
                "sandbox",
                Reason::Constraint,
                format!("`{other}` is not one of v1, v2"),
            ));
        }
    };
    if config.sandboxes.iter().any(|offered| offered == what) {
        return Ok(chosen);
    }
    let offered = match config.sandboxes.as_slice() {
        [] => format!(
            "it offers no sandbox to choose: leave `sandbox` unset to run in its default, `{}`",
            config.sandbox
        ),
        offered => format!("it offers {}", offered.join(", ")),
    };
    // Never a weaker sandbox instead of the one asked for.
    Err(invalid(
        "sandbox",
        Reason::Constraint,
        format!(
            "`{what}` ({}) is not offered by this installation: {offered}",
            sandbox_program(what)
        ),
    ))
}

/// Returns what runs a sandbox of v1beta1 name `name`.
fn sandbox_program(name: &str) -> &'static str {
    if name == "v2" { "gVisor" } else { "bubblewrap" }
}

impl BetaFields {
    /// Checks what this installation offers and returns the tags and secrets to set. Each
    /// enum's `unknown_*` zero value means "the default" on create and "unchanged" on update.
    pub(crate) fn check(self, config: &GatewayConfig) -> Result<BetaChanges, HttpError> {
        let tags: Option<Vec<String>> = typed("tags", self.tags)?;
        // A list here: containers v1 sends a map, which it turns into this list first.
        let secrets: Option<Vec<crate::namespaces::SecretJson>> =
            typed("secret_environment_variables", self.secret_environment_variables)?;
        let http_option: Option<String> = typed("http_option", self.http_option)?;
        let sandbox_name: Option<String> = typed("sandbox", self.sandbox)?;
        let private_network_id: Option<String> = typed("private_network_id", self.private_network_id)?;
        match http_option.as_deref().unwrap_or_default() {
            "" | "unknown_http_option" | "enabled" => {}
            "redirected" => {
                return Err(invalid(
                    "http_option",
                    Reason::Constraint,
                    "`redirected` is not offered by this installation, which serves functions as the \
                     operator's front end forwards them; use `enabled`",
                ));
            }
            other => {
                return Err(invalid(
                    "http_option",
                    Reason::Constraint,
                    format!("`{other}` is not one of enabled, redirected"),
                ));
            }
        }
        let sandbox = sandbox(sandbox_name.as_deref(), config)?;
        if private_network_id.is_some_and(|id| !id.is_empty()) {
            return Err(invalid(
                "private_network_id",
                Reason::Constraint,
                "private networks are not offered by this installation",
            ));
        }
        Ok(BetaChanges {
            tags: tags.map(|values| common::Tags { values }),
            secrets: crate::namespaces::secrets(secrets.map(crate::namespaces::SecretsJson::List)),
            sandbox,
        })
    }
}

/// The fields v1beta1 gives containers alone (reference B.6). Read as JSON and typed in
/// [`ContainerFields::check`], as [`BetaFields`] are; a function's body may carry them, unread.
/// Go clients send zeros and `unknown_protocol` on PATCH meaning "unchanged".
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ContainerFields {
    max_concurrency: Option<serde_json::Value>,
    protocol: Option<serde_json::Value>,
    port: Option<serde_json::Value>,
    local_storage_limit: Option<serde_json::Value>,
    scaling_option: Option<serde_json::Value>,
    health_check: Option<serde_json::Value>,
    command: Option<serde_json::Value>,
    args: Option<serde_json::Value>,
    cpu_limit: Option<serde_json::Value>,
}

/// `ContainerHealthCheckSpec`: `{failure_threshold, interval, one of http: {path} | tcp: {}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckJson {
    failure_threshold: Option<u32>,
    interval: Option<Timeout>,
    http: Option<HttpCheckJson>,
    tcp: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpCheckJson {
    path: Option<String>,
}

/// `ContainerScalingOption`: one of three thresholds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScalingJson {
    concurrent_requests_threshold: Option<u32>,
    cpu_usage_threshold: Option<u32>,
    memory_usage_threshold: Option<u32>,
}

impl ContainerFields {
    /// Returns the container settings a body sets, `None` when it sets none (or is a
    /// function's).
    pub(crate) fn check<O: Owner>(self) -> Result<Option<wire::ContainerChanges>, HttpError> {
        if O::FUNCTION {
            return Ok(None);
        }
        let number = |argument: &str, value| -> Result<Option<u32>, HttpError> {
            Ok(typed::<u32>(argument, value)?.filter(|number| *number != 0))
        };
        let words = |argument: &str, value| -> Result<Option<wire::Strings>, HttpError> {
            Ok(typed::<Vec<String>>(argument, value)?.map(|values| wire::Strings { values }))
        };
        let protocol = typed::<String>("protocol", self.protocol)?
            .filter(|protocol| !protocol.is_empty() && protocol != "unknown_protocol");
        let changes = wire::ContainerChanges {
            port: number("port", self.port)?,
            max_concurrency: number("max_concurrency", self.max_concurrency)?,
            protocol,
            local_storage_limit: number("local_storage_limit", self.local_storage_limit)?,
            command: words("command", self.command)?,
            args: words("args", self.args)?,
            health_check: typed::<HealthCheckJson>("health_check", self.health_check)?
                .map(HealthCheckJson::check)
                .transpose()?,
            scaling_option: typed::<ScalingJson>("scaling_option", self.scaling_option)?
                .map(ScalingJson::check)
                .transpose()?
                .flatten(),
            cpu_limit: number("cpu_limit", self.cpu_limit)?,
        };
        Ok((changes != wire::ContainerChanges::default()).then_some(changes))
    }
}

impl HealthCheckJson {
    fn check(self) -> Result<common::HealthCheck, HttpError> {
        let http_path = match (self.http, self.tcp.filter(|tcp| !tcp.is_null())) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "health_check",
                    Reason::Constraint,
                    "give one of http and tcp, not both",
                ));
            }
            (Some(http), None) => Some(http.path.filter(|path| !path.is_empty()).ok_or_else(|| {
                invalid(
                    "health_check.http.path",
                    Reason::Required,
                    "is required with an http check",
                )
            })?),
            (None, _) => None,
        };
        Ok(common::HealthCheck {
            // 0: the default (the containers service's).
            failure_threshold: self.failure_threshold.unwrap_or_default(),
            interval_ms: self
                .interval
                .map(|interval| interval.millis_of("health_check.interval"))
                .transpose()?
                .unwrap_or_default(),
            http_path,
        })
    }
}

impl ScalingJson {
    fn check(self) -> Result<Option<wire::ScalingOption>, HttpError> {
        use wire::scaling_option::Rule;
        let rules: Vec<Rule> = [
            self.concurrent_requests_threshold
                .map(Rule::ConcurrentRequestsThreshold),
            self.cpu_usage_threshold.map(Rule::CpuUsageThreshold),
            self.memory_usage_threshold.map(Rule::MemoryUsageThreshold),
        ]
        .into_iter()
        .flatten()
        .collect();
        match rules.as_slice() {
            [] => Ok(None),
            [rule] => Ok(Some(wire::ScalingOption { rule: Some(*rule) })),
            _ => Err(invalid(
                "scaling_option",
                Reason::Constraint,
                "give one of concurrent_requests_threshold, cpu_usage_threshold and memory_usage_threshold",
            )),
        }
    }
}

/// A create body of either kind; the other kind's fields are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateBody {
    namespace_id: Option<String>,
    name: Option<String>,
    environment_variables: Option<HashMap<String, String>>,
    min_scale: Option<u32>,
    max_scale: Option<u32>,
    runtime: Option<serde_json::Value>,
    memory_limit: Option<u32>,
    timeout: Option<Timeout>,
    handler: Option<serde_json::Value>,
    privacy: Option<String>,
    description: Option<String>,
    registry_image: Option<serde_json::Value>,
    #[serde(flatten)]
    beta: BetaFields,
    #[serde(flatten)]
    container: ContainerFields,
}

async fn create<O: Owner, V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<V::Application>, HttpError> {
    create_from::<O, V>(&state, &scope, body).await
}

/// Creates the application `body` describes.
pub(crate) async fn create_from<O: Owner, V: Version>(
    state: &GatewayState,
    scope: &Scope,
    body: CreateBody,
) -> Result<Json<V::Application>, HttpError> {
    let runtime = own_text::<O>(true, "runtime", body.runtime)?.filter(|runtime| runtime != "unknown_runtime");
    let handler = own_text::<O>(true, "handler", body.handler)?;
    let registry_image = own_text::<O>(false, "registry_image", body.registry_image)?;
    let beta = body.beta.check(state.config())?;
    let container = body.container.check::<O>()?;
    let namespace_id = body
        .namespace_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| required("namespace_id"))?;
    let request = wire::CreateApplicationRequest {
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
        runtime: runtime.unwrap_or_default(),
        handler,
        registry_image,
        tags: beta.tags,
        secret_environment_variables: beta.secrets,
        container,
        sandbox: beta.sandbox.into(),
    };
    answer::<O, V>(state, O::create(O::client(state), scope.grpc(request)).await?)
}

/// The request naming one application of the caller.
fn one(scope: &Scope, id: Uuid) -> Request<wire::GetApplicationRequest> {
    scope.grpc(wire::GetApplicationRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id: id.to_string(),
    })
}

/// Returns the caller's application `id` of `O`'s kind; another tenant's, or one of the
/// other kind, is not found.
pub(crate) async fn fetch<O: Owner>(
    state: &GatewayState,
    scope: &Scope,
    id: Uuid,
) -> Result<Response<wire::ApplicationResponse>, HttpError> {
    Ok(O::get(O::client(state), one(scope, id)).await?)
}

pub(crate) async fn read<O: Owner, V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<O>,
) -> Result<Json<V::Application>, HttpError> {
    answer::<O, V>(&state, fetch::<O>(&state, &scope, id).await?)
}

pub(crate) async fn delete<O: Owner, V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<O>,
) -> Result<Json<V::Application>, HttpError> {
    answer::<O, V>(&state, O::delete(O::client(&state), one(&scope, id)).await?)
}

pub(crate) async fn deploy<O: Owner, V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<O>,
    JsonBody(_body): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<V::Application>, HttpError> {
    answer::<O, V>(&state, O::deploy(O::client(&state), one(&scope, id)).await?)
}

async fn list_page<O: Owner, V: Version>(
    state: &GatewayState,
    scope: &Scope,
    query: &QueryParams,
    namespace_id: Option<Uuid>,
) -> Result<Json<ListJson<V::Application>>, HttpError> {
    let list = query.list(&ORDERS)?;
    // Filtering on another tenant matches nothing, exactly as if it had nothing.
    if is_other_tenant(query, &scope.caller)? {
        return Ok(Json(ListJson::empty(O::PLURAL)));
    }
    let request = wire::ListApplicationsRequest {
        namespace_id: namespace_id.map(|id| id.to_string()),
        name: query.get("name").filter(|name| !name.is_empty()).map(str::to_owned),
        ..scope.list_request(list)
    };
    let call = O::list(O::client(state), scope.grpc(request));
    let json = |application| V::application::<O>(application, state.config());
    listed(O::PLURAL, call, json).await.map(Json)
}

pub(crate) async fn list<O: Owner, V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson<V::Application>>, HttpError> {
    let namespace_id = query.uuid("namespace_id")?;
    if V::STRICT && namespace_id.is_none() {
        return Err(required("namespace_id"));
    }
    list_page::<O, V>(&state, &scope, &query, namespace_id).await
}

async fn list_in_namespace<O: Owner, V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    NamespaceId(namespace_id): NamespaceId,
    query: QueryParams,
) -> Result<Json<ListJson<V::Application>>, HttpError> {
    list_page::<O, V>(&state, &scope, &query, Some(namespace_id)).await
}

/// An update body of either kind; the other kind's fields are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateBody {
    environment_variables: Option<HashMap<String, String>>,
    min_scale: Option<u32>,
    max_scale: Option<u32>,
    memory_limit: Option<u32>,
    timeout: Option<Timeout>,
    redeploy: Option<bool>,
    handler: Option<serde_json::Value>,
    privacy: Option<String>,
    description: Option<String>,
    registry_image: Option<serde_json::Value>,
    name: Option<serde_json::Value>,
    namespace_id: Option<serde_json::Value>,
    runtime: Option<serde_json::Value>,
    #[serde(flatten)]
    beta: BetaFields,
    #[serde(flatten)]
    container: ContainerFields,
}

async fn update<O: Owner, V: Version>(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<O>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<V::Application>, HttpError> {
    update_from::<O, V>(&state, &scope, id, body).await
}

/// Applies the changes `body` asks for to application `id`.
pub(crate) async fn update_from<O: Owner, V: Version>(
    state: &GatewayState,
    scope: &Scope,
    id: Uuid,
    body: UpdateBody,
) -> Result<Json<V::Application>, HttpError> {
    let handler = own_text::<O>(true, "handler", body.handler)?;
    let registry_image = own_text::<O>(false, "registry_image", body.registry_image)?;
    // A function's runtime is fixed too; a container has none, so it is ignored there. Go
    // clients send the zero value `unknown_runtime`, and the Serverless plugin (0.4 and later)
    // the function's own runtime, both meaning "unchanged".
    let runtime = match body
        .runtime
        .filter(|runtime| O::FUNCTION && runtime.as_str() != Some("unknown_runtime"))
    {
        Some(sent) if is_own_runtime::<O>(state, scope, id, &sent).await? => None,
        other => other,
    };
    let beta = body.beta.check(state.config())?;
    let container = body.container.check::<O>()?;
    for (argument, sent) in [
        ("name", &body.name),
        ("namespace_id", &body.namespace_id),
        ("runtime", &runtime),
    ] {
        if sent.is_some() {
            return Err(invalid(
                argument,
                Reason::Constraint,
                format!("cannot be changed; create a new {} to use another {argument}", O::NOUN),
            ));
        }
    }
    let request = wire::UpdateApplicationRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id: id.to_string(),
        environment_variables: environment(body.environment_variables),
        min_scale: body.min_scale,
        max_scale: body.max_scale,
        memory_limit: body.memory_limit,
        timeout_ms: timeout_ms(body.timeout.as_ref())?,
        redeploy: body.redeploy,
        privacy: privacy(body.privacy.as_deref())?,
        description: body.description,
        handler,
        registry_image,
        tags: beta.tags,
        secret_environment_variables: beta.secrets,
        container,
        sandbox: beta.sandbox.into(),
    };
    answer::<O, V>(state, O::update(O::client(state), scope.grpc(request)).await?)
}

/// Returns whether `sent` names the runtime application `id` already has.
async fn is_own_runtime<O: Owner>(
    state: &GatewayState,
    scope: &Scope,
    id: Uuid,
    sent: &serde_json::Value,
) -> Result<bool, HttpError> {
    let Some(sent) = sent.as_str() else { return Ok(false) };
    let current = fetch::<O>(state, scope, id).await?.into_inner().application;
    Ok(current.is_some_and(|application| application.runtime == sent))
}

#[cfg(test)]
mod tests {
    use super::Timeout;

    #[test]
    fn timeouts_read_as_milliseconds_or_durations() {
        assert_eq!(Timeout::Millis(1500).millis().unwrap(), 1500);
        assert_eq!(Timeout::Text("300s".into()).millis().unwrap(), 300_000);
        assert_eq!(Timeout::Text("1.5s".into()).millis().unwrap(), 1500);
        assert_eq!(Timeout::Text("250ms".into()).millis().unwrap(), 250);
        assert!(Timeout::Text("soon".into()).millis().is_err());
        assert!(Timeout::Text("-1s".into()).millis().is_err());
    }
}
