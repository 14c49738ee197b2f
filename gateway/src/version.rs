//! The API versions the gateway answers, functions `v1alpha2` and `v1beta1` and containers
//! `v1beta1` and `v1`, over the same services: the handlers are written once over a
//! [`Version`], which says how each renders resources and what each requires of a request. A
//! resource made through one version is the same resource seen through the other. Each
//! version's impl stands beside its JSON (`v1alpha2`, `v1beta1`, `containers_v1`), so that
//! this file names no handler and the handlers' files import it, never the other way round.

use crate::GatewayConfig;
use crate::owner::Owner;
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
