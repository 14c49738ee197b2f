//! `/domains`: a tenant's own host names for its functions or containers, written once over
//! an [`Owner`], the service whose applications they lead to, and a [`DomainView`], the
//! version's shape of them. The owner's `ID_PARAM` names the target in bodies, queries and
//! answers: `function_id` under `/functions/v1beta1` (`routes::<Functions, Beta>()`),
//! `container_id` under `/containers/v1beta1` and `/containers/v1`
//! (`routes::<Containers, Beta>()`, `routes::<Containers, ContainersV1Domains>()`).

use crate::GatewayState;
use crate::error::{HttpError, required};
use crate::extract::{DomainId, JsonBody, QueryParams, Scope};
use crate::list::{ListJson, listed};
use crate::owner::Owner;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use nuage_core::ApiError;
use nuage_proto::applications::v1 as wire;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

/// `order_by` values and the service's, the default first.
const ORDERS: [(&str, wire::DomainOrder); 4] = [
    ("created_at_asc", wire::DomainOrder::CreatedAtAsc),
    ("created_at_desc", wire::DomainOrder::CreatedAtDesc),
    ("hostname_asc", wire::DomainOrder::HostnameAsc),
    ("hostname_desc", wire::DomainOrder::HostnameDesc),
];

/// How one API version shows domains, and what it asks of requests.
pub(crate) trait DomainView: Send + Sync + 'static {
    /// Whether a list must name its application (v1beta1); without, it lists every domain
    /// of the caller's applications of the kind, narrowed by `namespace_id` and `project_id`.
    const TARGET_REQUIRED: bool;
    /// Whether `PATCH /domains/{id}` changes its tags (containers v1).
    const UPDATABLE: bool;
    /// Its `Domain`.
    type Json<O: Owner>: Serialize + From<wire::Domain> + Send;
}

/// The v1beta1 shape (functions and containers).
pub(crate) struct Beta;

impl DomainView for Beta {
    const TARGET_REQUIRED: bool = true;
    const UPDATABLE: bool = false;
    type Json<O: Owner> = DomainJson<O>;
}

/// Returns the routes of the domains of `O`'s applications, shown as `W` shows them.
pub(crate) fn routes<O: Owner, W: DomainView>() -> Router<GatewayState> {
    let one = get(read::<O, W>).delete(delete::<O, W>);
    let one = if W::UPDATABLE { one.patch(update::<O, W>) } else { one };
    Router::new()
        .route("/domains", get(list::<O, W>).post(create::<O, W>))
        .route("/domains/{domain_id}", one)
}

/// The v1beta1 `Domain`, fields in the spec's order; its target is `function_id` or
/// `container_id` as `O` names it.
pub(crate) struct DomainJson<O> {
    domain: wire::Domain,
    owner: PhantomData<O>,
}

impl<O> From<wire::Domain> for DomainJson<O> {
    fn from(domain: wire::Domain) -> Self {
        Self {
            domain,
            owner: PhantomData,
        }
    }
}

impl<O: Owner> Serialize for DomainJson<O> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let domain = &self.domain;
        let status = match domain.status() {
            wire::DomainStatus::Unspecified => "unknown",
            wire::DomainStatus::Ready => "ready",
            wire::DomainStatus::Deleting => "deleting",
            wire::DomainStatus::Error => "error",
            wire::DomainStatus::Creating => "creating",
            wire::DomainStatus::Pending => "pending",
        };
        let mut json = serializer.serialize_struct("Domain", 6)?;
        json.serialize_field("id", &domain.id)?;
        json.serialize_field("hostname", &domain.hostname)?;
        json.serialize_field(O::ID_PARAM, &domain.application_id)?;
        json.serialize_field("url", &domain.url)?;
        json.serialize_field("status", status)?;
        json.serialize_field(
            "error_message",
            &Some(&domain.error_message).filter(|message| !message.is_empty()),
        )?;
        json.end()
    }
}

type Answer<O, W> = Result<Json<<W as DomainView>::Json<O>>, HttpError>;

fn answer<O: Owner, W: DomainView>(response: tonic::Response<wire::DomainResponse>) -> Answer<O, W> {
    response
        .into_inner()
        .domain
        .map(|domain| Json(domain.into()))
        .ok_or_else(|| {
            let detail = format!("{} service answered without a domain", O::PLURAL);
            HttpError::Api(ApiError::internal(&detail))
        })
}

/// A create body: `hostname`, the target, under `function_id` or `container_id`, and tags
/// (containers v1).
#[derive(Debug, Deserialize)]
struct CreateBody {
    hostname: Option<String>,
    function_id: Option<String>,
    container_id: Option<String>,
    tags: Option<Vec<String>>,
}

async fn create<O: Owner, W: DomainView>(
    State(state): State<GatewayState>,
    scope: Scope,
    JsonBody(body): JsonBody<CreateBody>,
) -> Answer<O, W> {
    let target = if O::FUNCTION {
        body.function_id
    } else {
        body.container_id
    };
    let application_id = target
        .filter(|id| !id.is_empty())
        .ok_or_else(|| required(O::ID_PARAM))?;
    let application_id = nuage_core::ids::parse_id(O::ID_PARAM, &application_id)?.to_string();
    let hostname = body
        .hostname
        .filter(|hostname| !hostname.trim().is_empty())
        .ok_or_else(|| required("hostname"))?;
    let request = wire::CreateDomainRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        application_id,
        hostname,
        tags: body.tags.map(|values| nuage_proto::common::v1::Tags { values }),
    };
    answer::<O, W>(O::create_domain(O::client(&state), scope.grpc(request)).await?)
}

async fn read<O: Owner, W: DomainView>(
    State(state): State<GatewayState>,
    scope: Scope,
    DomainId(id): DomainId,
) -> Answer<O, W> {
    answer::<O, W>(O::get_domain(O::client(&state), one(&scope, id)).await?)
}

/// An update body (containers v1): the tags, replaced when given (null: unchanged).
#[derive(Debug, Deserialize)]
struct UpdateBody {
    tags: Option<Vec<String>>,
}

async fn update<O: Owner, W: DomainView>(
    State(state): State<GatewayState>,
    scope: Scope,
    DomainId(id): DomainId,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Answer<O, W> {
    let request = wire::UpdateDomainRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        domain_id: id.to_string(),
        tags: body.tags.map(|values| nuage_proto::common::v1::Tags { values }),
    };
    answer::<O, W>(O::update_domain(O::client(&state), scope.grpc(request)).await?)
}

async fn list<O: Owner, W: DomainView>(
    State(state): State<GatewayState>,
    scope: Scope,
    query: QueryParams,
) -> Result<Json<ListJson<W::Json<O>>>, HttpError> {
    let application_id = query.uuid(O::ID_PARAM)?;
    if W::TARGET_REQUIRED && application_id.is_none() {
        return Err(required(O::ID_PARAM));
    }
    // Another organization's domains are none of the caller's.
    let organization_id = query.uuid("organization_id")?;
    let others = organization_id.is_some_and(|id| id != scope.caller.organization_id);
    let list = query.list(&ORDERS)?;
    let request = wire::ListDomainsRequest {
        application_id: application_id.map(|id| id.to_string()).unwrap_or_default(),
        namespace_id: query.uuid("namespace_id")?.map(|id| id.to_string()),
        project_id: query.uuid("project_id")?.map(|id| id.to_string()),
        ..scope.list_request(list)
    };
    if others {
        return Ok(Json(ListJson::empty("domains")));
    }
    let call = O::list_domains(O::client(&state), scope.grpc(request));
    listed("domains", call, Into::into).await.map(Json)
}

async fn delete<O: Owner, W: DomainView>(
    State(state): State<GatewayState>,
    scope: Scope,
    DomainId(id): DomainId,
) -> Answer<O, W> {
    answer::<O, W>(O::delete_domain(O::client(&state), one(&scope, id)).await?)
}

/// The request naming one domain of the caller.
fn one(scope: &Scope, id: uuid::Uuid) -> tonic::Request<wire::GetDomainRequest> {
    scope.grpc(wire::GetDomainRequest {
        caller: Some(scope.caller.to_proto()),
        region: scope.region.clone(),
        domain_id: id.to_string(),
    })
}
