//! What functions and containers ask of other services: the services themselves
//! ([`Peers`]), a namespace once it is ready, and the environment an application runs with.

use crate::config::ApplicationsConfig;
use crate::model::{Application, Kind, Privacy};
use nuage_core::transport::Authed;
use nuage_core::{ApiError, Caller};
use nuage_proto::common::v1::StoredSecret;
use nuage_proto::crons::v1::crons_client::CronsClient;
use nuage_proto::logs::v1::logs_client::LogsClient;
use nuage_proto::namespaces::v1::namespaces_client::NamespacesClient;
use nuage_proto::namespaces::v1::{GetNamespaceRequest, ListNamespacesRequest, Namespace, NamespaceStatus};
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::tokens::v1::KeyPairRequest;
use nuage_proto::tokens::v1::tokens_client::TokensClient;
use nuage_proto::triggers::v1::triggers_client::TriggersClient;
use std::collections::HashMap;
use uuid::Uuid;

/// The services functions and containers call.
#[derive(Debug, Clone)]
pub struct Peers {
    /// To check that a namespace exists, is the caller's and is ready, and to read its variables.
    pub namespaces: NamespacesClient<Authed>,
    /// To delete a deleted application's crons.
    pub crons: CronsClient<Authed>,
    /// To delete a deleted application's triggers.
    pub triggers: TriggersClient<Authed>,
    /// To run deployed applications and stop deleted ones.
    pub runner: RunnerClient<Authed>,
    /// To give them their namespace's public key.
    pub tokens: TokensClient<Authed>,
    /// To delete a deleted application's logs.
    pub logs: LogsClient<Authed>,
}

impl Peers {
    /// Returns `caller`'s namespace `namespace_id` once it is ready, so that applications of
    /// kind `K` can be created or deployed in it. A `pending` or `creating` namespace is waited
    /// for, up to `config.namespace_wait_ms`: the namespaces service answers when it changes.
    /// Any other state is a transient-state error.
    pub async fn ready_namespace<K: Kind>(
        &self,
        config: &ApplicationsConfig,
        caller: &Caller,
        region: &str,
        namespace_id: &str,
    ) -> Result<Namespace, ApiError> {
        let mut request = tonic::Request::new(GetNamespaceRequest {
            caller: Some(caller.to_proto()),
            region: region.to_owned(),
            namespace_id: namespace_id.to_owned(),
            wait_ready_ms: config.namespace_wait_ms,
        });
        // It waits by design: as long as it was asked to, and then a little to answer.
        request.set_timeout(std::time::Duration::from_millis(config.namespace_wait_ms + 10_000));
        let namespace = self
            .namespaces
            .clone()
            .get_namespace(request)
            .await
            .map_err(|status| ApiError::from_peer("namespaces", &status))?
            .into_inner()
            .namespace
            .ok_or_else(|| ApiError::internal(&"namespaces answered without a namespace"))?;
        let status = namespace.status();
        if status == NamespaceStatus::Ready {
            return Ok(namespace);
        }
        let state = status
            .as_str_name()
            .trim_start_matches("NAMESPACE_STATUS_")
            .to_lowercase();
        Err(ApiError {
            help_message: Some(format!(
                "namespace `{}` is {state}; {}s can be created and deployed once it is ready",
                namespace.name,
                K::NOUN
            )),
            ..ApiError::transient_state("namespace", namespace_id, &state)
        })
    }

    /// Returns whether `owner` has a namespace in `region` whose registry repository is
    /// `repository` (`host/funcscw<name>-<8 hex>`, as the namespaces service names them).
    pub async fn owns_repository(&self, owner: &Caller, region: &str, repository: &str) -> Result<bool, ApiError> {
        let name = repository
            .rsplit('/')
            .next()
            .and_then(|segment| segment.strip_prefix("funcscw"))
            .and_then(|rest| rest.rsplit_once('-'))
            .map(|(name, _)| name);
        let Some(name) = name.filter(|name| !name.is_empty()) else {
            return Ok(false);
        };
        // Names are unique in a project and region: one page holds the match, if any.
        let request = ListNamespacesRequest {
            caller: Some(owner.to_proto()),
            region: region.to_owned(),
            page: 1,
            page_size: 100,
            order_by: 0,
            name: Some(name.to_owned()),
        };
        let namespaces = self
            .namespaces
            .clone()
            .list_namespaces(request)
            .await
            .map_err(|status| ApiError::from_peer("namespaces", &status))?
            .into_inner()
            .namespaces;
        Ok(namespaces
            .iter()
            .any(|namespace| namespace.registry_endpoint == repository))
    }

    /// Returns the namespace `namespace_id` of `owner`, or `None` once it is gone.
    pub async fn namespace_of(
        &self,
        owner: &Caller,
        region: &str,
        namespace_id: Uuid,
    ) -> Result<Option<Namespace>, ApiError> {
        match self.get_namespace(owner, region, namespace_id).await {
            Ok(namespace) => Ok(namespace),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(ApiError::from_peer("namespaces", &status)),
        }
    }

    async fn get_namespace(
        &self,
        owner: &Caller,
        region: &str,
        namespace_id: Uuid,
    ) -> Result<Option<Namespace>, tonic::Status> {
        let request = GetNamespaceRequest {
            caller: Some(owner.to_proto()),
            region: region.to_owned(),
            namespace_id: namespace_id.to_string(),
            wait_ready_ms: 0,
        };
        Ok(self
            .namespaces
            .clone()
            .get_namespace(request)
            .await?
            .into_inner()
            .namespace)
    }

    /// Returns the environment `application` runs with as version `version`: the variables of
    /// `namespace` (read if not given), overridden by its own, overridden by the platform's
    /// `SCW_*`; and the secrets, sealed, of the namespace then its own, which the runner opens
    /// and which override the variables.
    pub async fn runtime_environment<K: Kind>(
        &self,
        application: &Application<K>,
        namespace: Option<Namespace>,
        version: &str,
    ) -> Result<(HashMap<String, String>, Vec<StoredSecret>), ApiError> {
        let namespace = match namespace {
            Some(namespace) => Some(namespace),
            None => {
                let owner = Caller {
                    organization_id: application.organization_id,
                    project_id: application.project_id,
                };
                self.get_namespace(&owner, &application.region, application.namespace_id)
                    .await
                    .map_err(|status| {
                        ApiError::unavailable(format!("its namespace could not be read: {}", status.message()))
                    })?
            }
        };
        let (mut environment, mut secrets): (HashMap<String, String>, Vec<StoredSecret>) = namespace
            .map(|namespace| (namespace.environment_variables, namespace.secret_environment_variables))
            .unwrap_or_default();
        environment.extend(application.environment_variables.clone());
        secrets.extend(application.secrets.to_proto(&application.id.to_string()));
        // The namespace's public key, so that code that checks tokens itself keeps working.
        let public_key = self
            .tokens
            .clone()
            .get_public_key(KeyPairRequest {
                namespace_id: application.namespace_id.to_string(),
            })
            .await
            .map_err(|status| {
                ApiError::unavailable(format!("its namespace's key could not be read: {}", status.message()))
            })?
            .into_inner()
            .pem;
        environment.extend(platform_environment(&Platform {
            public: application.privacy == Privacy::Public,
            public_key: &public_key,
            namespace_id: application.namespace_id,
            application_id: application.id,
            name: &application.name,
            memory_limit: application.memory_limit,
            version,
        }));
        Ok((environment, secrets))
    }
}

/// What the platform tells an application about itself.
#[derive(Debug, Clone)]
struct Platform<'a> {
    /// Whether anyone may call it.
    public: bool,
    /// Its namespace's public key (PKCS#1 PEM), to check tokens itself.
    public_key: &'a str,
    /// Its namespace.
    namespace_id: Uuid,
    /// Its id.
    application_id: Uuid,
    /// Its name.
    name: &'a str,
    /// Its memory (MB).
    memory_limit: u32,
    /// The deployment running.
    version: &'a str,
}

/// Returns the `SCW_*` variables an application receives, as Scaleway sets them; they override
/// the namespace's and the application's own (`PORT` is the runner's).
fn platform_environment(platform: &Platform<'_>) -> Vec<(String, String)> {
    [
        ("SCW_PUBLIC", platform.public.to_string()),
        ("SCW_PUBLIC_KEY", platform.public_key.to_owned()),
        ("SCW_NAMESPACE_ID", platform.namespace_id.to_string()),
        ("SCW_APPLICATION_ID", platform.application_id.to_string()),
        ("SCW_APPLICATION_NAME", platform.name.to_owned()),
        ("SCW_APPLICATION_MEMORY", platform.memory_limit.to_string()),
        ("SCW_APPLICATION_VERSION", platform.version.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}
