//! Scaleway Functions v1alpha2, the first API nuage answered: which JSON it renders (each kept
//! beside its handlers) and what it asks of a request.

use crate::version::Version;

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
