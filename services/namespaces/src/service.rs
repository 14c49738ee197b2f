//! The namespaces gRPC service: each RPC validates, calls the store, maps.

use crate::config::NamespacesConfig;
use crate::convert::{namespace_to_proto, order_from_proto};
use crate::error::{NamespacesError, required};
use crate::model::{Description, EnvironmentVariables, Namespace, NamespaceName, NamespaceStatus};
use crate::reconciler::Reconciler;
use crate::store::{Limits, NamespaceChanges, NamespaceStore, NewNamespace};
use nuage_core::ids::parse_id;
use nuage_core::secrets::{SealedChanges, SecretChange, SecretVariables};
use nuage_core::validate::Tags;
use nuage_core::{ApiError, Caller, Page};
use nuage_proto::common::v1 as common;
use nuage_proto::namespaces::v1::{self as pb, namespaces_server::Namespaces};
use std::time::Duration;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Serves `nuage.namespaces.v1.Namespaces`.
#[derive(Debug, Clone)]
pub struct NamespacesService {
    store: NamespaceStore,
    reconciler: Reconciler,
    config: NamespacesConfig,
    /// Seals secret environment variables (see [`nuage_core::secrets`]).
    sealing: [u8; 32],
}

impl NamespacesService {
    /// Returns a service over `store` that wakes `reconciler` when work appears and seals
    /// secrets under `sealing`.
    pub fn new(store: NamespaceStore, reconciler: Reconciler, config: NamespacesConfig, sealing: [u8; 32]) -> Self {
        Self {
            store,
            reconciler,
            config,
            sealing,
        }
    }
}

/// How many times an update merging secrets reads the namespace again when it was written
/// meanwhile.
const MERGE_ATTEMPTS: usize = 16;

/// Returns the changes a request asks of secrets.
fn secret_changes(changes: Vec<common::SecretChange>) -> Vec<SecretChange> {
    changes.into_iter().map(|change| (change.key, change.value)).collect()
}

impl NamespacesService {
    /// Returns how many namespaces an organization may have, and have pending.
    fn limits(&self) -> Limits {
        Limits {
            namespaces: self.config.max_per_organization,
            pending: self.config.max_pending_per_organization,
        }
    }

    /// Returns the caller's namespace `id`; one still `pending` is waited for, up to `wait`,
    /// until it is made ready or fails. This process's reconciler says when it made one
    /// ready; another replica's is seen by reading again every [`RECHECK`].
    async fn get_when_settled(
        &self,
        caller: &Caller,
        region: &str,
        id: Uuid,
        wait: Duration,
    ) -> Result<Namespace, NamespacesError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut readied = self.reconciler.readied();
        loop {
            let namespace = self.store.get(caller, region, id).await?;
            let now = tokio::time::Instant::now();
            if namespace.status != NamespaceStatus::Pending || now >= deadline {
                return Ok(namespace);
            }
            let next = deadline.min(now + RECHECK);
            // A closed channel (the reconciler gone) leaves the periodic read, not a busy loop.
            if let Ok(Err(_closed)) = tokio::time::timeout_at(next, readied.changed()).await {
                tokio::time::sleep_until(next).await;
            }
        }
    }
}

/// How often a caller waiting for a pending namespace reads it again, in case another
/// replica made it ready.
const RECHECK: Duration = Duration::from_secs(1);

/// Returns the caller and region every request carries.
fn scope(caller: Option<&common::Caller>, region: &str) -> Result<(Caller, String), NamespacesError> {
    let caller = Caller::from_proto(caller)?;
    if region.is_empty() {
        return Err(required("region"));
    }
    Ok((caller, region.to_owned()))
}

fn environment(variables: Option<pb::EnvironmentVariables>) -> Result<Option<EnvironmentVariables>, NamespacesError> {
    variables.map(|v| EnvironmentVariables::parse(v.values)).transpose()
}

fn tags(tags: Option<common::Tags>) -> Result<Option<Tags>, ApiError> {
    tags.map(|tags| Tags::parse("tags", tags.values)).transpose()
}

#[tonic::async_trait]
impl Namespaces for NamespacesService {
    async fn create_namespace(
        &self,
        request: Request<pb::CreateNamespaceRequest>,
    ) -> Result<Response<pb::CreateNamespaceResponse>, Status> {
        let request = request.into_inner();
        let (caller, region) = scope(request.caller.as_ref(), &request.region)?;
        let id = Uuid::new_v4();
        let changes = SealedChanges::prepare(
            self.sealing,
            id.to_string(),
            secret_changes(request.secret_environment_variables),
        )
        .await?;
        let mut secrets = SecretVariables::default();
        secrets.merge(&changes)?;
        let new = NewNamespace {
            id,
            secrets,
            name: NamespaceName::parse(&request.name)?,
            description: Description::parse(request.description.as_deref().unwrap_or_default())?,
            environment_variables: environment(request.environment_variables)?.unwrap_or_default(),
            tags: tags(request.tags)?.unwrap_or_default(),
        };
        let namespace = self.store.insert(&caller, &region, new, self.limits()).await?;
        self.reconciler.wake();
        Ok(Response::new(pb::CreateNamespaceResponse {
            namespace: Some(namespace_to_proto(namespace)),
        }))
    }

    async fn get_namespace(
        &self,
        request: Request<pb::GetNamespaceRequest>,
    ) -> Result<Response<pb::GetNamespaceResponse>, Status> {
        let request = request.into_inner();
        let (caller, region) = scope(request.caller.as_ref(), &request.region)?;
        let id = parse_id("namespace_id", &request.namespace_id)?;
        let namespace = self
            .get_when_settled(&caller, &region, id, Duration::from_millis(request.wait_ready_ms))
            .await?;
        Ok(Response::new(pb::GetNamespaceResponse {
            namespace: Some(namespace_to_proto(namespace)),
        }))
    }

    async fn list_namespaces(
        &self,
        request: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        let request = request.into_inner();
        let (caller, region) = scope(request.caller.as_ref(), &request.region)?;
        let page = Page::new(request.page, request.page_size)?;
        let order = order_from_proto(request.order_by);
        let (namespaces, total_count) = self
            .store
            .list(&caller, &region, request.name.as_deref(), order, page)
            .await?;
        Ok(Response::new(pb::ListNamespacesResponse {
            namespaces: namespaces.into_iter().map(namespace_to_proto).collect(),
            total_count,
        }))
    }

    async fn update_namespace(
        &self,
        request: Request<pb::UpdateNamespaceRequest>,
    ) -> Result<Response<pb::UpdateNamespaceResponse>, Status> {
        let request = request.into_inner();
        let (caller, region) = scope(request.caller.as_ref(), &request.region)?;
        let id = parse_id("namespace_id", &request.namespace_id)?;
        let description = request.description.as_deref().map(Description::parse).transpose()?;
        let environment_variables = environment(request.environment_variables)?;
        let tags = tags(request.tags)?;
        let secret_changes = SealedChanges::prepare(
            self.sealing,
            id.to_string(),
            secret_changes(request.secret_environment_variables),
        )
        .await?;
        // Secrets merge into the current ones (set where a value is given, removed where not),
        // written only if nobody changed the namespace since they were read.
        let mut namespace = None;
        for _ in 0..MERGE_ATTEMPTS {
            let (secrets, read_at) = if secret_changes.is_empty() {
                (None, None)
            } else {
                let mut current = self.store.get(&caller, &region, id).await?;
                current.secrets.merge(&secret_changes)?;
                (Some(current.secrets), Some(current.updated_at))
            };
            let changes = NamespaceChanges {
                description: description.clone(),
                environment_variables: environment_variables.clone(),
                tags: tags.clone(),
                secrets,
            };
            namespace = self.store.update(&caller, &region, id, changes, read_at).await?;
            if namespace.is_some() {
                break;
            }
        }
        let namespace = namespace.ok_or_else(|| ApiError::transient_state("namespace", id.to_string(), "updating"))?;
        Ok(Response::new(pb::UpdateNamespaceResponse {
            namespace: Some(namespace_to_proto(namespace)),
        }))
    }

    async fn delete_namespace(
        &self,
        request: Request<pb::DeleteNamespaceRequest>,
    ) -> Result<Response<pb::DeleteNamespaceResponse>, Status> {
        let request = request.into_inner();
        let (caller, region) = scope(request.caller.as_ref(), &request.region)?;
        let id = parse_id("namespace_id", &request.namespace_id)?;
        let namespace = self.store.mark_deleting(&caller, &region, id).await?;
        self.reconciler.wake();
        Ok(Response::new(pb::DeleteNamespaceResponse {
            namespace: Some(namespace_to_proto(namespace)),
        }))
    }
}
