//! The tenant a request acts for.

use crate::error::ApiError;
use crate::ids::parse_id;
use nuage_proto::common::v1 as pb;
use uuid::Uuid;

/// The organization (tenant) and project a request acts for, as resolved by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The tenant. Every tenant-owned row carries it and every query filters by it.
    pub organization_id: Uuid,
    /// The tenant's default project.
    pub project_id: Uuid,
}

impl Caller {
    /// Returns the caller of a gRPC request, which must be present and well formed.
    pub fn from_proto(caller: Option<&pb::Caller>) -> Result<Self, ApiError> {
        let caller = caller.ok_or_else(ApiError::unauthenticated)?;
        Ok(Self {
            organization_id: parse_id("organization_id", &caller.organization_id)?,
            project_id: parse_id("project_id", &caller.project_id)?,
        })
    }

    /// Returns the caller of a gRPC request together with the region it names, which must
    /// not be empty: what every tenant-facing RPC starts with.
    pub fn in_region(caller: Option<&pb::Caller>, region: &str) -> Result<Self, ApiError> {
        let caller = Self::from_proto(caller)?;
        crate::validate::required("region", region)?;
        Ok(caller)
    }

    /// Returns the caller as a proto message.
    pub fn to_proto(&self) -> pb::Caller {
        pb::Caller {
            organization_id: self.organization_id.to_string(),
            project_id: self.project_id.to_string(),
        }
    }
}
