//! The RPCs the functions and containers services answer alike (their domains included), from
//! the shared wire messages (`nuage.applications.v1`) to the shared operations and back, so
//! that each service's implementation of them is one line.

use crate::domain_model::Domain;
use crate::model::{Application, Kind, Sandbox};
use crate::operations::{Applications, Changes, Requested, RouteStream, required};
use crate::reconciler::Leftovers;
use nuage_core::{ApiError, Caller, Page};
use nuage_proto::applications::v1 as wire;
use nuage_proto::common::v1 as common;
use tonic::{Request, Response, Status};

/// Returns the answer carrying `application`.
pub fn answer<K: Kind>(application: Application<K>) -> Response<wire::ApplicationResponse> {
    Response::new(wire::ApplicationResponse {
        application: Some(application.into_proto()),
    })
}

/// Returns the changes a request asks of secrets.
fn secret_changes(changes: &[common::SecretChange]) -> Vec<nuage_core::secrets::SecretChange> {
    changes
        .iter()
        .map(|change| (change.key.clone(), change.value.clone()))
        .collect()
}

/// Returns the common settings of an update request.
fn changes(request: &wire::UpdateApplicationRequest) -> Changes {
    Changes {
        environment_variables: request.environment_variables.clone(),
        min_scale: request.min_scale,
        max_scale: request.max_scale,
        memory_limit: request.memory_limit,
        timeout_ms: request.timeout_ms,
        privacy: request.privacy,
        description: request.description.clone(),
        redeploy: request.redeploy,
        tags: request.tags.clone().map(|tags| tags.values),
        secrets: secret_changes(&request.secret_environment_variables),
        sandbox: Sandbox::from_proto(request.sandbox),
    }
}

/// Returns the common settings of a create request, once its namespace and name are there.
pub fn requested(request: &wire::CreateApplicationRequest) -> Result<Requested, ApiError> {
    Ok(Requested {
        namespace_id: required(&request.namespace_id, &request.name)?,
        name: request.name.clone(),
        environment_variables: request.environment_variables.clone(),
        memory_limit: request.memory_limit,
        min_scale: request.min_scale,
        max_scale: request.max_scale,
        timeout_ms: request.timeout_ms,
        tags: request.tags.clone().map(|tags| tags.values),
        secrets: secret_changes(&request.secret_environment_variables),
        sandbox: Sandbox::from_proto(request.sandbox),
    })
}

impl<K: Kind, L: Leftovers> Applications<K, L> {
    /// `Get<Kind>`: one application of the caller, or NOT_FOUND.
    pub async fn get_rpc(
        &self,
        request: Request<wire::GetApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let application = self
            .get(&caller, &request.region, &request.application_id, false)
            .await?;
        Ok(answer(application))
    }

    /// `List<Kinds>`: one page of the caller's applications and the count of all matches.
    pub async fn list_rpc(
        &self,
        request: Request<wire::ListApplicationsRequest>,
    ) -> Result<Response<wire::ListApplicationsResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let page = Page::new(request.page, request.page_size)?;
        let (applications, total_count) = self
            .list(
                &caller,
                &request.region,
                (request.namespace_id, request.name),
                request.order_by,
                page,
            )
            .await?;
        Ok(Response::new(wire::ListApplicationsResponse {
            applications: applications.into_iter().map(Application::into_proto).collect(),
            total_count,
        }))
    }

    /// `Update<Kind>`: applies the request's common changes, and what `kind` changes of the
    /// kind's own, to one application of the caller. Returns the caller and the stored
    /// application, whose `redeploy_due` (and the request's `redeploy`) say whether to redeploy.
    pub async fn update_from(
        &self,
        request: &wire::UpdateApplicationRequest,
        kind: impl Fn(&mut K) -> Result<(), ApiError>,
    ) -> Result<(Caller, Application<K>), ApiError> {
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let stored = self
            .update(
                &caller,
                &request.region,
                &request.application_id,
                changes(request),
                kind,
            )
            .await?;
        Ok((caller, stored))
    }

    /// `List<Kind>Deployments`: one page of the deployments of one application of the
    /// caller, newest first.
    pub async fn list_deployments_rpc(
        &self,
        request: Request<wire::ListDeploymentsRequest>,
    ) -> Result<Response<wire::ListDeploymentsResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let page = Page::new(request.page, request.page_size)?;
        let (deployments, total_count, active) = self
            .list_deployments(&caller, &request.region, &request.application_id, page)
            .await?;
        Ok(Response::new(wire::ListDeploymentsResponse {
            deployments: deployments
                .into_iter()
                .map(|deployment| {
                    let serving = active == Some(deployment.id);
                    deployment.into_proto(serving)
                })
                .collect(),
            total_count,
        }))
    }

    /// `Rollback<Kind>`: rolls an earlier deployment of one application of the caller out again.
    pub async fn rollback_rpc(
        &self,
        request: Request<wire::RollbackRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let application = self
            .rollback(
                &caller,
                &request.region,
                &request.application_id,
                &request.deployment_id,
            )
            .await?;
        Ok(answer(application))
    }

    /// `Delete<Kind>`: marks one application of the caller `deleting`.
    pub async fn delete_rpc(
        &self,
        request: Request<wire::GetApplicationRequest>,
    ) -> Result<Response<wire::ApplicationResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let application = self.delete(&caller, &request.region, &request.application_id).await?;
        Ok(answer(application))
    }

    /// `DeleteNamespace<Kinds>`: the cascade from a deleted namespace.
    pub async fn delete_namespace_rpc(
        &self,
        request: Request<wire::DeleteNamespaceApplicationsRequest>,
    ) -> Result<Response<wire::DeleteNamespaceApplicationsResponse>, Status> {
        let request = request.into_inner();
        let remaining = self
            .delete_namespace(&request.organization_id, &request.namespace_id)
            .await?;
        Ok(Response::new(wire::DeleteNamespaceApplicationsResponse { remaining }))
    }

    /// `ListRoutes`: every application of every tenant, for a router's table.
    pub async fn list_routes_rpc(&self) -> Result<Response<common::ListRoutesResponse>, Status> {
        Ok(Response::new(self.routes().await?))
    }

    /// `WatchRoutes`: route changes from now on.
    pub fn watch_routes_rpc(&self) -> Result<Response<RouteStream>, Status> {
        Ok(Response::new(self.watch_routes()))
    }
}

/// Returns the answer carrying `domain`.
fn domain_answer(domain: Domain) -> Response<wire::DomainResponse> {
    Response::new(wire::DomainResponse {
        domain: Some(domain.into_proto()),
    })
}

impl<K: Kind, L: Leftovers> Applications<K, L> {
    /// `CreateDomain`: a `pending` domain of one of the caller's applications.
    pub async fn create_domain_rpc(
        &self,
        request: Request<wire::CreateDomainRequest>,
    ) -> Result<Response<wire::DomainResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let domain = self
            .domains()
            .create(
                &caller,
                &request.region,
                &request.application_id,
                &request.hostname,
                request.tags.map(|tags| tags.values).unwrap_or_default(),
            )
            .await?;
        Ok(domain_answer(domain))
    }

    /// `GetDomain`: one domain of the caller, or NOT_FOUND.
    pub async fn get_domain_rpc(
        &self,
        request: Request<wire::GetDomainRequest>,
    ) -> Result<Response<wire::DomainResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let domain = self.domains().get(&caller, &request.region, &request.domain_id).await?;
        Ok(domain_answer(domain))
    }

    /// `ListDomains`: one page of the domains of one of the caller's applications.
    pub async fn list_domains_rpc(
        &self,
        request: Request<wire::ListDomainsRequest>,
    ) -> Result<Response<wire::ListDomainsResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let page = Page::new(request.page, request.page_size)?;
        let (domains, total_count) = self
            .domains()
            .list(
                &caller,
                &request.region,
                (
                    &request.application_id,
                    request.namespace_id.as_deref(),
                    request.project_id.as_deref(),
                ),
                request.order_by,
                page,
            )
            .await?;
        Ok(Response::new(wire::ListDomainsResponse {
            domains: domains.into_iter().map(Domain::into_proto).collect(),
            total_count,
        }))
    }

    /// `UpdateDomain`: replaces the tags of one domain of the caller, when given.
    pub async fn update_domain_rpc(
        &self,
        request: Request<wire::UpdateDomainRequest>,
    ) -> Result<Response<wire::DomainResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let domains = self.domains();
        let domain = match request.tags {
            Some(tags) => {
                domains
                    .set_tags(&caller, &request.region, &request.domain_id, tags.values)
                    .await?
            }
            None => domains.get(&caller, &request.region, &request.domain_id).await?,
        };
        Ok(domain_answer(domain))
    }

    /// `DeleteDomain`: removes one domain of the caller, answered `deleting`.
    pub async fn delete_domain_rpc(
        &self,
        request: Request<wire::GetDomainRequest>,
    ) -> Result<Response<wire::DomainResponse>, Status> {
        let request = request.into_inner();
        let caller = Caller::in_region(request.caller.as_ref(), &request.region)?;
        let domain = self
            .domains()
            .delete(&caller, &request.region, &request.domain_id)
            .await?;
        Ok(domain_answer(domain))
    }
}
