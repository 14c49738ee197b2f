//! The JSON of Scaleway Functions v1beta1 (reference part B.3): namespaces, functions,
//! runtimes and crons, with RFC 3339 timestamps, `project_id`, tags, `timeout` as a duration string and
//! the enums' v1beta1 names.

use crate::applications::{privacy_name, status_name};
use crate::crons::args_json;
use crate::owner::Owner;
use crate::version::{FromApplication, FromCron, Version};
use nuage_proto::applications::v1 as wire;
use nuage_proto::common::v1::{self as common, Sandbox, StoredSecret};
use nuage_proto::crons::v1 as crons;
use nuage_proto::functions::v1 as functions;
use nuage_proto::namespaces::v1 as pb;
use serde::Serialize;
use std::collections::BTreeMap;

/// Scaleway Functions v1beta1: `/functions/v1beta1/regions/{region}`.
pub(crate) struct V1beta1;

impl Version for V1beta1 {
    const PREFIX: &'static str = "/functions/v1beta1/regions";
    const STRICT: bool = true;
    type Namespace = NamespaceJson;
    type Application = ApplicationJson;
    type Runtimes = RuntimesJson;
    type Cron = CronJson;
    const CRON_TARGET: &'static str = "function_id";
}

/// Scaleway Containers v1beta1: `/containers/v1beta1/regions/{region}` (reference B.6), over
/// the same namespaces, containers, crons and tokens.
pub(crate) struct ContainersV1beta1;

impl Version for ContainersV1beta1 {
    const PREFIX: &'static str = "/containers/v1beta1/regions";
    const STRICT: bool = true;
    type Namespace = NamespaceJson;
    type Application = ContainerJson;
    type Runtimes = RuntimesJson;
    type Cron = CronJson;
    const CRON_TARGET: &'static str = "container_id";
}

/// Returns Unix microseconds as RFC 3339 in UTC with microseconds (`2026-07-03T15:02:02.663407Z`),
/// `None` for 0 (never).
pub(crate) fn timestamp(micros: i64) -> Option<String> {
    use time::macros::format_description;
    if micros <= 0 {
        return None;
    }
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|at| at.format(format).ok())
}

/// Returns Unix seconds as RFC 3339 in UTC (`2026-07-04T16:49:39Z`), `None` for 0 (never).
pub(crate) fn seconds_timestamp(seconds: i64) -> Option<String> {
    use time::macros::format_description;
    if seconds <= 0 {
        return None;
    }
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|at| at.format(format).ok())
}

/// Returns milliseconds as a protobuf duration (`"300s"`, `"2.5s"`).
pub(crate) fn duration(millis: u64) -> String {
    let (seconds, rest) = (millis / 1000, millis % 1000);
    if rest == 0 {
        format!("{seconds}s")
    } else {
        let fraction = format!("{rest:03}");
        format!("{seconds}.{}s", fraction.trim_end_matches('0'))
    }
}

/// A secret's key and the hash of its value, as responses show secrets.
#[derive(Debug, Serialize)]
pub(crate) struct SecretHashedValue {
    key: String,
    hashed_value: String,
}

/// Returns what a tenant may see of secrets: their names and hashes (never the sealed values).
fn hashed(secrets: Vec<StoredSecret>) -> Vec<SecretHashedValue> {
    secrets
        .into_iter()
        .map(|secret| SecretHashedValue {
            key: secret.key,
            hashed_value: secret.hashed_value,
        })
        .collect()
}

/// The v1beta1 `Namespace`, fields in the spec's order.
#[derive(Debug, Serialize)]
pub(crate) struct NamespaceJson {
    id: String,
    name: String,
    environment_variables: BTreeMap<String, String>,
    organization_id: String,
    project_id: String,
    status: &'static str,
    registry_namespace_id: String,
    error_message: Option<String>,
    registry_endpoint: String,
    description: String,
    secret_environment_variables: Vec<SecretHashedValue>,
    region: String,
    tags: Vec<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    vpc_integration_activated: bool,
}

impl From<pb::Namespace> for NamespaceJson {
    fn from(namespace: pb::Namespace) -> Self {
        // v1beta1's zero value is `unknown`, v1alpha2's `ready`.
        let status = match namespace.status() {
            pb::NamespaceStatus::Unspecified => "unknown",
            status => crate::namespaces::status_name(status),
        };
        Self {
            id: namespace.id,
            name: namespace.name,
            environment_variables: namespace.environment_variables.into_iter().collect(),
            organization_id: namespace.organization_id,
            project_id: namespace.project_id,
            status,
            registry_namespace_id: namespace.registry_namespace_id,
            error_message: Some(namespace.error_message).filter(|message| !message.is_empty()),
            registry_endpoint: namespace.registry_endpoint,
            description: namespace.description,
            secret_environment_variables: hashed(namespace.secret_environment_variables),
            region: namespace.region,
            tags: namespace.tags,
            created_at: timestamp(namespace.created_at),
            updated_at: timestamp(namespace.updated_at),
            vpc_integration_activated: false,
        }
    }
}

/// The v1beta1 `Function` (fields in the spec's order); a container shows its image instead of
/// a runtime and handler.
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
    timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handler: Option<String>,
    error_message: Option<String>,
    build_message: Option<String>,
    privacy: &'static str,
    description: String,
    domain_name: String,
    secret_environment_variables: Vec<SecretHashedValue>,
    region: String,
    http_option: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_message: Option<String>,
    sandbox: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_image: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    ready_at: Option<String>,
    tags: Vec<String>,
    private_network_id: Option<String>,
}

impl FromApplication for ApplicationJson {
    fn from_application<O: Owner>(application: wire::Application, default_sandbox: &str) -> Self {
        let sandbox = sandbox_of(&application, default_sandbox);
        let (function, container) = if O::FUNCTION {
            (Some((application.runtime, application.handler)), None)
        } else {
            (None, Some(application.registry_image))
        };
        let (runtime, handler) = function.unzip();
        let domain_name = domain_name(&application.endpoint);
        Self {
            id: application.id,
            name: application.name,
            namespace_id: application.namespace_id,
            status: match application.status {
                0 => "unknown",
                status => status_name(status),
            },
            environment_variables: application.environment_variables.into_iter().collect(),
            min_scale: application.min_scale,
            max_scale: application.max_scale,
            runtime_message: runtime.as_ref().map(|_| String::new()),
            runtime,
            memory_limit: application.memory_limit,
            cpu_limit: application.cpu_limit,
            timeout: Some(duration(application.timeout_ms)),
            handler,
            error_message: Some(application.error_message).filter(|message| !message.is_empty()),
            build_message: None,
            privacy: privacy_name(application.privacy),
            description: application.description,
            domain_name,
            secret_environment_variables: hashed(application.secret_environment_variables),
            region: application.region,
            http_option: "enabled",
            sandbox,
            registry_image: container,
            created_at: timestamp(application.created_at),
            updated_at: timestamp(application.updated_at),
            ready_at: timestamp(application.ready_at),
            tags: application.tags,
            private_network_id: None,
        }
    }
}

/// Returns the sandbox `application` runs in: its own, or `default_sandbox`, the installation's.
pub(crate) fn sandbox_of(application: &wire::Application, default_sandbox: &str) -> String {
    match application.sandbox() {
        Sandbox::V1 => "v1",
        Sandbox::V2 => "v2",
        Sandbox::Unspecified => default_sandbox,
    }
    .to_owned()
}

/// Returns the host name of an endpoint alone, as Scaleway's `domain_name` is.
fn domain_name(endpoint: &str) -> String {
    endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_owned()
}

/// A container's `health_check`: `{failure_threshold, interval, http: {path} | tcp: {}}`.
#[derive(Debug, Serialize)]
struct HealthCheckJson {
    failure_threshold: u32,
    interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpCheckJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize)]
struct HttpCheckJson {
    path: String,
}

impl From<common::HealthCheck> for HealthCheckJson {
    fn from(check: common::HealthCheck) -> Self {
        let (http, tcp) = match check.http_path {
            Some(path) => (Some(HttpCheckJson { path }), None),
            None => (None, Some(serde_json::Map::new())),
        };
        Self {
            failure_threshold: check.failure_threshold,
            interval: duration(check.interval_ms),
            http,
            tcp,
        }
    }
}

/// A container's `scaling_option`: the one threshold it scales on.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ScalingJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrent_requests_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_usage_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_usage_threshold: Option<u32>,
}

impl From<Option<wire::ScalingOption>> for ScalingJson {
    fn from(option: Option<wire::ScalingOption>) -> Self {
        use wire::scaling_option::Rule;
        match option.and_then(|option| option.rule) {
            Some(Rule::ConcurrentRequestsThreshold(value)) => Self {
                concurrent_requests_threshold: Some(value),
                ..Self::default()
            },
            Some(Rule::CpuUsageThreshold(value)) => Self {
                cpu_usage_threshold: Some(value),
                ..Self::default()
            },
            Some(Rule::MemoryUsageThreshold(value)) => Self {
                memory_usage_threshold: Some(value),
                ..Self::default()
            },
            None => Self::default(),
        }
    }
}

/// The v1beta1 `Container` (reference B.6), fields in the order of Scaleway's answers.
#[derive(Debug, Serialize)]
pub(crate) struct ContainerJson {
    id: String,
    name: String,
    namespace_id: String,
    status: &'static str,
    environment_variables: BTreeMap<String, String>,
    min_scale: u32,
    max_scale: u32,
    memory_limit: u32,
    cpu_limit: u32,
    timeout: Option<String>,
    error_message: Option<String>,
    privacy: &'static str,
    description: String,
    registry_image: String,
    max_concurrency: u32,
    domain_name: String,
    protocol: String,
    port: u32,
    secret_environment_variables: Vec<SecretHashedValue>,
    http_option: &'static str,
    sandbox: String,
    local_storage_limit: u32,
    scaling_option: ScalingJson,
    health_check: Option<HealthCheckJson>,
    created_at: Option<String>,
    updated_at: Option<String>,
    ready_at: Option<String>,
    tags: Vec<String>,
    private_network_id: Option<String>,
    command: Vec<String>,
    args: Vec<String>,
    region: String,
}

impl FromApplication for ContainerJson {
    fn from_application<O: Owner>(mut application: wire::Application, default_sandbox: &str) -> Self {
        let sandbox = sandbox_of(&application, default_sandbox);
        let settings = application.container.take().unwrap_or_default();
        Self {
            id: application.id,
            name: application.name,
            namespace_id: application.namespace_id,
            status: match application.status {
                0 => "unknown",
                status => status_name(status),
            },
            environment_variables: application.environment_variables.into_iter().collect(),
            min_scale: application.min_scale,
            max_scale: application.max_scale,
            memory_limit: application.memory_limit,
            cpu_limit: application.cpu_limit,
            timeout: Some(duration(application.timeout_ms)),
            error_message: Some(application.error_message).filter(|message| !message.is_empty()),
            privacy: privacy_name(application.privacy),
            description: application.description,
            registry_image: application.registry_image,
            max_concurrency: settings.max_concurrency,
            domain_name: domain_name(&application.endpoint),
            protocol: settings.protocol,
            port: settings.port,
            secret_environment_variables: hashed(application.secret_environment_variables),
            http_option: "enabled",
            sandbox,
            local_storage_limit: settings.local_storage_limit,
            scaling_option: settings.scaling_option.into(),
            health_check: settings.health_check.map(HealthCheckJson::from),
            created_at: timestamp(application.created_at),
            updated_at: timestamp(application.updated_at),
            ready_at: timestamp(application.ready_at),
            tags: application.tags,
            private_network_id: None,
            command: settings.command,
            args: settings.args,
            region: application.region,
        }
    }
}

/// The v1beta1 `Runtime`; every field is a string.
#[derive(Debug, Serialize)]
struct RuntimeJson {
    name: String,
    language: String,
    version: String,
    default_handler: String,
    code_sample: String,
    status: &'static str,
    status_message: String,
    extension: String,
    implementation: String,
    logo_url: String,
}

/// The v1beta1 `ListFunctionRuntimesResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct RuntimesJson {
    runtimes: Vec<RuntimeJson>,
    total_count: u32,
}

impl From<functions::ListRuntimesResponse> for RuntimesJson {
    fn from(response: functions::ListRuntimesResponse) -> Self {
        let runtimes: Vec<RuntimeJson> = response
            .details
            .into_iter()
            .map(|runtime| RuntimeJson {
                name: runtime.name,
                language: runtime.language,
                version: runtime.version,
                default_handler: runtime.default_handler,
                code_sample: String::new(),
                status: "available",
                status_message: String::new(),
                extension: runtime.extension,
                implementation: String::new(),
                logo_url: String::new(),
            })
            .collect();
        Self {
            total_count: u32::try_from(runtimes.len()).unwrap_or(u32::MAX),
            runtimes,
        }
    }
}

/// The v1beta1 `Cron`, fields in the spec's order; its target is `function_id` (functions API)
/// or `container_id` (containers API).
#[derive(Debug, Serialize)]
pub(crate) struct CronJson {
    id: String,
    #[serde(flatten)]
    target: BTreeMap<&'static str, String>,
    schedule: String,
    args: serde_json::Value,
    status: &'static str,
    name: String,
}

impl FromCron for CronJson {
    fn from_cron(cron: crons::Cron, target: &'static str) -> Self {
        let status = match cron.status() {
            crons::CronStatus::Unspecified => "unknown",
            crons::CronStatus::Ready => "ready",
            crons::CronStatus::Deleting => "deleting",
            crons::CronStatus::Error => "error",
            crons::CronStatus::Locked => "locked",
            crons::CronStatus::Creating => "creating",
            crons::CronStatus::Pending => "pending",
        };
        Self {
            id: cron.id,
            target: BTreeMap::from([(target, cron.application_id)]),
            schedule: cron.schedule,
            args: args_json(&cron.args),
            status,
            name: cron.name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_durations_read_as_scaleway_writes_them() {
        assert_eq!(timestamp(0), None);
        assert_eq!(
            timestamp(1_783_090_922_663_407).as_deref(),
            Some("2026-07-03T15:02:02.663407Z")
        );
        assert_eq!(seconds_timestamp(0), None);
        assert_eq!(
            seconds_timestamp(1_783_183_779).as_deref(),
            Some("2026-07-04T16:49:39Z")
        );
        assert_eq!(duration(300_000), "300s");
        assert_eq!(duration(2_500), "2.5s");
        assert_eq!(duration(1_001), "1.001s");
    }
}
