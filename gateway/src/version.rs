//! The API versions the gateway answers, functions `v1alpha2` and `v1beta1` and containers
//! `v1beta1`, over the same services:
//! the handlers are written once over a [`Version`], which says how each renders resources and
//! what each requires of a request. A resource made through one version is the same resource
//! seen through the other.

use crate::GatewayConfig;
use crate::applications::Owner;
use nuage_proto::applications::v1 as wire;
use nuage_proto::crons::v1 as crons;
use nuage_proto::functions::v1 as functions;
use nuage_proto::namespaces::v1 as namespaces;
use serde::Serialize;

/// One version of the REST API.
pub(crate) trait Version: Send + Sync + 'static {
    /// Its path prefix, before the region.
    const PREFIX: &'static str;
    /// Whether an update's empty maps and lists, zeros and `unknown_*` values mean "unchanged"
    /// (containers v1, whose SDKs send them for every field not set).
    const EMPTY_IS_UNCHANGED: bool = false;
    /// Whether lists of functions and containers need `namespace_id`, and upload URLs their
    /// `content_length` (v1beta1).
    const STRICT: bool;
    /// Its `Namespace`.
    type Namespace: Serialize + From<namespaces::Namespace> + Send;
    /// Its `Function` and `Container`.
    type Application: FromApplication;
    /// Its `ListFunctionRuntimesResponse`.
    type Runtimes: Serialize + From<functions::ListRuntimesResponse> + Send;
    /// Its `Cron`.
    type Cron: FromCron;
    /// The body field and query parameter that name the target of a cron (and of a token, a
    /// domain, a trigger): `application_id` (v1alpha2: a function or a container),
    /// `function_id` (functions v1beta1) or `container_id` (containers v1beta1).
    const CRON_TARGET: &'static str;
    /// The body field, query parameter and answer field that name a trigger's target:
    /// `function_id` (functions v1beta1) or `container_id` (containers), as for crons.
    const TRIGGER_TARGET: &'static str = Self::CRON_TARGET;

    /// Returns the JSON of an application of `O`'s kind, which runs in the installation's
    /// sandbox when it names none.
    fn application<O: Owner>(application: wire::Application, config: &GatewayConfig) -> Self::Application {
        Self::Application::from_application::<O>(application, &config.sandbox)
    }

    /// Returns the JSON of a cron, its target named `CRON_TARGET`.
    fn cron(cron: crons::Cron) -> Self::Cron {
        Self::Cron::from_cron(cron, Self::CRON_TARGET)
    }
}

/// A version's `Function` and `Container` JSON.
pub(crate) trait FromApplication: Serialize + Send {
    /// Returns the JSON of `application`, of `O`'s kind, which runs in `default_sandbox`
    /// when it names none.
    fn from_application<O: Owner>(application: wire::Application, default_sandbox: &str) -> Self;
}

/// A version's `Cron` JSON.
pub(crate) trait FromCron: Serialize + Send {
    /// Returns the JSON of `cron`, whose target is named `target`.
    fn from_cron(cron: crons::Cron, target: &'static str) -> Self;
}

/// Scaleway Functions v1alpha2: `/functions/v1alpha2/regions/{region}`.
pub(crate) struct V1alpha2;

impl Version for V1alpha2 {
    const PREFIX: &'static str = "/functions/v1alpha2/regions";
    const STRICT: bool = false;
    type Namespace = crate::namespaces::NamespaceJson;
    type Application = crate::applications::ApplicationJson;
    type Runtimes = crate::functions::RuntimesJson;
    type Cron = crate::crons::CronJson;
    const CRON_TARGET: &'static str = "application_id";
}

/// Scaleway Functions v1beta1: `/functions/v1beta1/regions/{region}`.
pub(crate) struct V1beta1;

impl Version for V1beta1 {
    const PREFIX: &'static str = "/functions/v1beta1/regions";
    const STRICT: bool = true;
    type Namespace = crate::v1beta1::NamespaceJson;
    type Application = crate::v1beta1::ApplicationJson;
    type Runtimes = crate::v1beta1::RuntimesJson;
    type Cron = crate::v1beta1::CronJson;
    const CRON_TARGET: &'static str = "function_id";
}

/// Scaleway Containers v1: `/containers/v1/regions/{region}`
/// (`scaleway-containers-v1.openapi.yml`), over the same namespaces and containers.
pub(crate) struct ContainersV1;

impl Version for ContainersV1 {
    const PREFIX: &'static str = "/containers/v1/regions";
    const EMPTY_IS_UNCHANGED: bool = true;
    const STRICT: bool = false;
    type Namespace = crate::containers_v1::NamespaceJson;
    type Application = crate::containers_v1::ContainerJson;
    type Runtimes = crate::v1beta1::RuntimesJson;
    type Cron = crate::v1beta1::CronJson;
    const CRON_TARGET: &'static str = "container_id";
}

/// Scaleway Containers v1beta1: `/containers/v1beta1/regions/{region}` (reference B.6), over
/// the same namespaces, containers, crons and tokens.
pub(crate) struct ContainersV1beta1;

impl Version for ContainersV1beta1 {
    const PREFIX: &'static str = "/containers/v1beta1/regions";
    const STRICT: bool = true;
    type Namespace = crate::v1beta1::NamespaceJson;
    type Application = crate::v1beta1::ContainerJson;
    type Runtimes = crate::v1beta1::RuntimesJson;
    type Cron = crate::v1beta1::CronJson;
    const CRON_TARGET: &'static str = "container_id";
}
