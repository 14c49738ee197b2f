//! "Is this id a function or a container of the caller?", asked of the two services that own
//! them, for what names an application by id alone (logs, tokens, crons, triggers).

use nuage_core::ids::{parse_id, required_id};
use nuage_core::internal::REQUEST_ID_HEADER;
use nuage_core::transport::Authed;
use nuage_core::{ApiError, Caller};
use nuage_proto::applications::v1::{Application, GetApplicationRequest};
use nuage_proto::common::v1::ApplicationStatus;
use nuage_proto::containers::v1::containers_client::ContainersClient;
use nuage_proto::functions::v1::functions_client::FunctionsClient;
use uuid::Uuid;

/// The services that own applications.
#[derive(Debug, Clone)]
pub struct Owners {
    /// Owns functions.
    pub functions: FunctionsClient<Authed>,
    /// Owns containers.
    pub containers: ContainersClient<Authed>,
}

/// Who asks about which id: the caller, its region, and the request id to pass on.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The tenant asking; another tenant's application is missing.
    pub caller: &'a Caller,
    /// The region asked about.
    pub region: &'a str,
    /// The id, as sent.
    pub id: &'a str,
    /// The request id to log the calls under, or empty.
    pub request_id: &'a str,
}

/// An application of the caller that is not being deleted, its ids parsed (what a cron or a
/// trigger may be attached to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// The application.
    pub id: Uuid,
    /// Its namespace.
    pub namespace_id: Uuid,
    /// Its project: the caller's for applications made before projects were recorded.
    pub project_id: Uuid,
}

/// An application of the caller, found by id.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Its namespace.
    pub namespace_id: String,
    /// Its project.
    pub project_id: String,
    /// Where it is in its life.
    pub status: ApplicationStatus,
}

impl<'a> Lookup<'a> {
    fn request(&self) -> tonic::Request<GetApplicationRequest> {
        let mut request = tonic::Request::new(GetApplicationRequest {
            caller: Some(self.caller.to_proto()),
            region: self.region.to_owned(),
            application_id: self.id.to_owned(),
        });
        if let Ok(value) = self.request_id.parse() {
            request.metadata_mut().insert(REQUEST_ID_HEADER, value);
        }
        request
    }
}

impl Owners {
    /// Returns the caller's function or container `lookup.id`, `None` when it has neither
    /// (another tenant's is missing too).
    pub async fn resolve(&self, lookup: Lookup<'_>) -> Result<Option<Resolved>, tonic::Status> {
        match self.function(lookup).await? {
            Some(resolved) => Ok(Some(resolved)),
            None => self.container(lookup).await,
        }
    }

    /// Returns the caller's function or container `application_id` (the argument so named)
    /// if it is not being deleted: missing or another tenant's is NOT_FOUND, one being deleted
    /// is a transient state.
    pub async fn live(&self, caller: &Caller, region: &str, application_id: &str) -> Result<Live, ApiError> {
        let id = required_id("application_id", application_id)?;
        let lookup = Lookup {
            caller,
            region,
            id: application_id,
            request_id: "",
        };
        let resolved = self
            .resolve(lookup)
            .await
            .map_err(|status| ApiError::from_status(&status))?
            .ok_or_else(|| ApiError {
                help_message: Some("no function or container of yours has this id".to_owned()),
                ..ApiError::not_found("application", application_id)
            })?;
        if resolved.status == ApplicationStatus::Deleting {
            return Err(ApiError::transient_state("application", application_id, "deleting"));
        }
        Ok(Live {
            id,
            namespace_id: parse_id("namespace_id", &resolved.namespace_id)?,
            project_id: Uuid::try_parse(&resolved.project_id).unwrap_or(caller.project_id),
        })
    }

    /// Returns the caller's function `lookup.id`, `None` when it has none.
    pub async fn function(&self, lookup: Lookup<'_>) -> Result<Option<Resolved>, tonic::Status> {
        let found = self.functions.clone().get_function(lookup.request()).await;
        found_as(found)
    }

    /// Returns the caller's container `lookup.id`, `None` when it has none.
    pub async fn container(&self, lookup: Lookup<'_>) -> Result<Option<Resolved>, tonic::Status> {
        let found = self.containers.clone().get_container(lookup.request()).await;
        found_as(found)
    }
}

/// Returns what a get found: `None` for NOT_FOUND.
fn found_as(
    found: Result<tonic::Response<nuage_proto::applications::v1::ApplicationResponse>, tonic::Status>,
) -> Result<Option<Resolved>, tonic::Status> {
    match found {
        Ok(response) => Ok(response
            .into_inner()
            .application
            .map(|application: Application| Resolved {
                status: application.status(),
                namespace_id: application.namespace_id,
                project_id: application.project_id,
            })),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(status),
    }
}
