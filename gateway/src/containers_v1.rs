//! Scaleway Containers v1 (`/containers/v1/regions/{region}`, the Python SDK's
//! `ContainerV1API`): namespaces and containers in v1's shapes, over the same services as the
//! other versions.
//!
//! A v1 body is read into the v1beta1 one (`image` is `registry_image`, sizes come in bytes,
//! `startup_probe` is the health check, secrets are a map) and goes through the same handlers.
//! v1's SDKs send every field of an update, unset ones as zeros, empty maps and lists and
//! `unknown_*`: those mean "unchanged". A v1 container is deployed when it is made, and every
//! change redeploys it (as v1 says); `redeploy` deploys it again as it is.

use crate::GatewayState;
use crate::applications::{self, ApplicationId, body_of};
use crate::containers::Containers;
use crate::error::{HttpError, invalid, required};
use crate::extract::{JsonBody, Scope};
use crate::v1beta1::{duration, timestamp};
use crate::version::{FromApplication, Version};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use nuage_core::error::Reason;
use nuage_proto::applications::v1 as wire;
use nuage_proto::common::v1 as common;
use nuage_proto::namespaces::v1 as pb;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Scaleway Containers v1: `/containers/v1/regions/{region}`
/// (`scaleway-containers-v1.openapi.yml`), over the same namespaces and containers.
pub(crate) struct ContainersV1;

impl Version for ContainersV1 {
    const PREFIX: &'static str = "/containers/v1/regions";
    const EMPTY_IS_UNCHANGED: bool = true;
    const STRICT: bool = false;
    type Namespace = NamespaceJson;
    type Application = ContainerJson;
    type Runtimes = crate::v1beta1::RuntimesJson;
    type Cron = crate::v1beta1::CronJson;
    const CRON_TARGET: &'static str = "container_id";
}

/// One MiB: v1 gives sizes in bytes, nuage keeps MB.
const MIB: u64 = 1 << 20;

/// The routes of containers v1, under its prefix and region.
pub(crate) fn routes() -> Router<GatewayState> {
    crate::namespaces::routes::<ContainersV1>()
        .route("/", get(service_info))
        .route(
            "/containers",
            get(applications::list::<Containers, ContainersV1>).post(create),
        )
        .route(
            "/containers/{container_id}",
            get(applications::read::<Containers, ContainersV1>)
                .patch(update)
                .delete(applications::delete::<Containers, ContainersV1>),
        )
        .route(
            "/containers/{container_id}/redeploy",
            post(applications::deploy::<Containers, ContainersV1>),
        )
        .merge(crate::deployments::routes::<Containers, ContainersV1>())
        .merge(crate::domains::routes::<Containers, V1Domains>())
        .merge(crate::containers_v1_triggers::routes())
}

/// Domains as containers v1 shows them: with tags and timestamps, changed by `PATCH`, listed
/// without naming a container.
pub(crate) struct V1Domains;

impl crate::domains::DomainView for V1Domains {
    const TARGET_REQUIRED: bool = false;
    const UPDATABLE: bool = true;
    type Json<O: crate::owner::Owner> = DomainJson;
}

/// The v1 `Domain`, fields in the spec's order.
#[derive(Debug, Serialize)]
pub(crate) struct DomainJson {
    id: String,
    container_id: String,
    hostname: String,
    status: &'static str,
    error_message: String,
    created_at: Option<String>,
    updated_at: Option<String>,
    tags: Vec<String>,
}

impl From<wire::Domain> for DomainJson {
    fn from(domain: wire::Domain) -> Self {
        let status = match domain.status() {
            wire::DomainStatus::Unspecified => "unknown_status",
            wire::DomainStatus::Ready => "ready",
            wire::DomainStatus::Deleting => "deleting",
            wire::DomainStatus::Error => "error",
            // v1 has no `pending`: a domain waiting for its check is being made.
            wire::DomainStatus::Creating | wire::DomainStatus::Pending => "creating",
        };
        Self {
            status,
            id: domain.id,
            container_id: domain.application_id,
            hostname: domain.hostname,
            error_message: domain.error_message,
            created_at: timestamp(domain.created_at),
            updated_at: timestamp(domain.updated_at),
            tags: domain.tags,
        }
    }
}

/// `scaleway.std.ServiceInfo`.
#[derive(Debug, Serialize)]
struct ServiceInfoJson {
    name: &'static str,
    description: &'static str,
    version: &'static str,
    documentation_url: Option<String>,
    built_at: Option<String>,
    git_commit: &'static str,
}

async fn service_info(_scope: Scope) -> Json<ServiceInfoJson> {
    Json(ServiceInfoJson {
        name: "containers",
        description: "nuage: Scaleway Serverless Containers v1",
        version: "v1",
        documentation_url: None,
        built_at: None,
        git_commit: "",
    })
}

/// Returns the v1 status of a namespace.
fn namespace_status(status: pb::NamespaceStatus) -> &'static str {
    match status {
        pb::NamespaceStatus::Unspecified => "unknown_status",
        pb::NamespaceStatus::Pending => "creating",
        status => crate::namespaces::status_name(status),
    }
}

/// Returns what a tenant may see of secrets in v1: their names and the hashes of their values.
fn hashed(secrets: Vec<common::StoredSecret>) -> BTreeMap<String, String> {
    secrets
        .into_iter()
        .map(|secret| (secret.key, secret.hashed_value))
        .collect()
}

/// The v1 `Namespace`, fields in the spec's order.
#[derive(Debug, Serialize)]
pub(crate) struct NamespaceJson {
    id: String,
    name: String,
    organization_id: String,
    project_id: String,
    description: String,
    status: &'static str,
    error_message: String,
    environment_variables: BTreeMap<String, String>,
    secret_environment_variables: BTreeMap<String, String>,
    tags: Vec<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    region: String,
}

impl From<pb::Namespace> for NamespaceJson {
    fn from(namespace: pb::Namespace) -> Self {
        Self {
            status: namespace_status(namespace.status()),
            id: namespace.id,
            name: namespace.name,
            organization_id: namespace.organization_id,
            project_id: namespace.project_id,
            description: namespace.description,
            error_message: namespace.error_message,
            environment_variables: namespace.environment_variables.into_iter().collect(),
            secret_environment_variables: hashed(namespace.secret_environment_variables),
            tags: namespace.tags,
            created_at: timestamp(namespace.created_at),
            updated_at: timestamp(namespace.updated_at),
            region: namespace.region,
        }
    }
}

/// A v1 probe: `{failure_threshold, interval, timeout, one of tcp: {} | http: {path}}`.
#[derive(Debug, Default, Serialize)]
struct ProbeJson {
    failure_threshold: u32,
    interval: Option<String>,
    timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpProbeJson>,
}

#[derive(Debug, Serialize)]
struct HttpProbeJson {
    path: String,
}

/// The v1 `Container`, fields in the spec's order.
#[derive(Debug, Serialize)]
pub(crate) struct ContainerJson {
    id: String,
    name: String,
    namespace_id: String,
    description: String,
    status: &'static str,
    error_message: String,
    created_at: Option<String>,
    updated_at: Option<String>,
    environment_variables: BTreeMap<String, String>,
    secret_environment_variables: BTreeMap<String, String>,
    min_scale: u32,
    max_scale: u32,
    memory_limit_bytes: u64,
    mvcpu_limit: u32,
    local_storage_limit_bytes: u64,
    timeout: Option<String>,
    privacy: &'static str,
    image: String,
    protocol: String,
    port: u32,
    https_connections_only: bool,
    sandbox: String,
    scaling_option: Value,
    /// No liveness probe runs here: its threshold is 0 and it names no check.
    liveness_probe: ProbeJson,
    startup_probe: ProbeJson,
    tags: Vec<String>,
    private_network_id: String,
    command: Vec<String>,
    args: Vec<String>,
    public_endpoint: String,
    region: String,
}

impl FromApplication for ContainerJson {
    fn from_application<O: crate::owner::Owner>(mut application: wire::Application, default_sandbox: &str) -> Self {
        let sandbox = crate::v1beta1::sandbox_of(&application, default_sandbox);
        let settings = application.container.take().unwrap_or_default();
        let status = match common::ApplicationStatus::try_from(application.status) {
            Ok(common::ApplicationStatus::Ready) => "ready",
            Ok(common::ApplicationStatus::Error) => "error",
            Ok(common::ApplicationStatus::Deleting) => "deleting",
            Ok(common::ApplicationStatus::Locked) => "locked",
            // v1 has no `created` or `pending`: a container is being made until its first
            // deploy ends, and updating during a later one.
            Ok(common::ApplicationStatus::Pending) if application.ready_at > 0 => "updating",
            Ok(
                common::ApplicationStatus::Pending
                | common::ApplicationStatus::Created
                | common::ApplicationStatus::Creating,
            ) => "creating",
            _ => "unknown_status",
        };
        let startup_probe = settings.health_check.map_or_else(ProbeJson::default, |check| {
            let interval = duration(check.interval_ms);
            let (tcp, http) = match check.http_path {
                Some(path) => (None, Some(HttpProbeJson { path })),
                None => (Some(Map::new()), None),
            };
            ProbeJson {
                failure_threshold: check.failure_threshold,
                // Each try is given the interval to answer.
                timeout: Some(interval.clone()),
                interval: Some(interval),
                tcp,
                http,
            }
        });
        let scaling_option =
            serde_json::to_value(crate::v1beta1::ScalingJson::from(settings.scaling_option)).unwrap_or_default();
        Self {
            id: application.id,
            name: application.name,
            namespace_id: application.namespace_id,
            description: application.description,
            status,
            error_message: application.error_message,
            created_at: timestamp(application.created_at),
            updated_at: timestamp(application.updated_at),
            environment_variables: application.environment_variables.into_iter().collect(),
            secret_environment_variables: hashed(application.secret_environment_variables),
            min_scale: application.min_scale,
            max_scale: application.max_scale,
            memory_limit_bytes: u64::from(application.memory_limit) * MIB,
            mvcpu_limit: application.cpu_limit,
            local_storage_limit_bytes: u64::from(settings.local_storage_limit) * MIB,
            timeout: Some(duration(application.timeout_ms)),
            privacy: crate::applications::privacy_name(application.privacy),
            image: application.registry_image,
            protocol: settings.protocol,
            port: settings.port,
            https_connections_only: false,
            sandbox,
            scaling_option,
            liveness_probe: ProbeJson::default(),
            startup_probe,
            tags: application.tags,
            private_network_id: String::new(),
            command: settings.command,
            args: settings.args,
            public_endpoint: application.endpoint,
            region: application.region,
        }
    }
}

/// Returns a v1 create or update body as the v1beta1 one the shared handlers read.
fn as_beta(body: Map<String, Value>, update: bool) -> Result<Value, HttpError> {
    let mut beta = Map::new();
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        let empty = match &value {
            Value::Object(map) => map.is_empty(),
            Value::Array(list) => list.is_empty(),
            Value::Number(number) => number.as_u64() == Some(0),
            Value::String(text) => text.starts_with("unknown_"),
            Value::Bool(flag) => !flag,
            Value::Null => true,
        };
        // What the SDKs send for every field left unset.
        if empty && (update || key != "min_scale") {
            continue;
        }
        let (key, value) = match key.as_str() {
            "image" => ("registry_image".to_owned(), value),
            "memory_limit_bytes" => ("memory_limit".to_owned(), Value::from(megabytes(&key, &value)?)),
            "local_storage_limit_bytes" => ("local_storage_limit".to_owned(), Value::from(megabytes(&key, &value)?)),
            "mvcpu_limit" => ("cpu_limit".to_owned(), value),
            "startup_probe" => ("health_check".to_owned(), probe(value)?),
            "liveness_probe" => {
                return Err(invalid(
                    "liveness_probe",
                    Reason::Constraint,
                    "liveness probes are not run by this installation; a startup_probe holds an instance \
                     back until it answers",
                ));
            }
            "https_connections_only" | "https_connection_only" => {
                return Err(invalid(
                    &key,
                    Reason::Constraint,
                    "this installation serves containers as the operator's front end forwards them; \
                     HTTPS is that front end's to enforce",
                ));
            }
            "secret_environment_variables" => {
                let Value::Object(map) = value else {
                    return Err(invalid(&key, Reason::Format, "must be an object of names and values"));
                };
                let list: Vec<Value> = map
                    .into_iter()
                    .map(|(name, value)| serde_json::json!({"key": name, "value": value}))
                    .collect();
                (key, Value::Array(list))
            }
            _ => (key, value),
        };
        beta.insert(key, value);
    }
    Ok(Value::Object(beta))
}

/// Returns a size sent in bytes as MB; it must be a whole number of them.
fn megabytes(argument: &str, value: &Value) -> Result<u64, HttpError> {
    let bytes = value
        .as_u64()
        .ok_or_else(|| invalid(argument, Reason::Format, "must be a number of bytes"))?;
    if bytes % MIB == 0 {
        Ok(bytes / MIB)
    } else if bytes % 1_000_000 == 0 {
        Ok(bytes / 1_000_000)
    } else {
        Err(invalid(
            argument,
            Reason::Constraint,
            format!("must be a whole number of MB (of 1048576 or 1000000 bytes), got {bytes}"),
        ))
    }
}

/// Returns a v1 startup probe as a v1beta1 health check; its `timeout` is its interval here.
fn probe(value: Value) -> Result<Value, HttpError> {
    let Value::Object(mut probe) = value else {
        return Err(invalid("startup_probe", Reason::Format, "must be an object"));
    };
    probe.remove("timeout");
    if probe.get("tcp").is_some_and(Value::is_null) {
        probe.remove("tcp");
    }
    if probe.get("http").is_some_and(Value::is_null) {
        probe.remove("http");
    }
    Ok(Value::Object(probe))
}

/// Names v1's arguments where the v1beta1 body they became names its own.
fn v1_names(error: HttpError) -> HttpError {
    let HttpError::Api(mut error) = error else { return error };
    for violation in &mut error.violations {
        let renamed = match violation.argument_name.as_str() {
            "registry_image" => "image",
            "memory_limit" => "memory_limit_bytes",
            "local_storage_limit" => "local_storage_limit_bytes",
            "cpu_limit" => "mvcpu_limit",
            name if name.starts_with("health_check") => {
                violation.argument_name = name.replacen("health_check", "startup_probe", 1);
                continue;
            }
            _ => continue,
        };
        violation.argument_name = renamed.to_owned();
    }
    HttpError::Api(error)
}

async fn create(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<ContainerJson>, HttpError> {
    if body
        .get("image")
        .is_none_or(|image| image.as_str().is_none_or(str::is_empty))
    {
        return Err(required("image"));
    }
    let made = async {
        let body = body_of(as_beta(body, false)?)?;
        applications::create_from::<Containers, ContainersV1>(&state, &scope, body).await
    }
    .await
    .map_err(v1_names)?;
    // v1 deploys what it makes.
    let id = made
        .0
        .id
        .parse()
        .map_err(|_| invalid("container_id", Reason::Format, "not a UUID"))?;
    applications::deploy::<Containers, ContainersV1>(
        State(state),
        scope,
        ApplicationId(id, std::marker::PhantomData),
        JsonBody(Map::new()),
    )
    .await
}

async fn update(
    State(state): State<GatewayState>,
    scope: Scope,
    ApplicationId(id, _): ApplicationId<Containers>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<ContainerJson>, HttpError> {
    let body = body_of(as_beta(body, true).map_err(v1_names)?).map_err(v1_names)?;
    applications::update_from::<Containers, ContainersV1>(&state, &scope, id, body)
        .await
        .map_err(v1_names)
}
