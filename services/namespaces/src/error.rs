//! Errors of the namespaces service.

use nuage_core::{ApiError, ErrorCode};

/// Everything that can go wrong in namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NamespacesError {
    /// A request value breaks a rule.
    #[error(transparent)]
    Invalid(ApiError),
    /// No such namespace for this caller.
    #[error("namespace `{0}` not found")]
    NotFound(String),
    /// The name is taken in this organization and region.
    #[error("a namespace named `{name}` already exists")]
    NameTaken {
        /// The name.
        name: String,
        /// The namespace that has it.
        existing_id: String,
    },
    /// The organization has as many namespaces as it may.
    #[error("namespace quota of {limit} reached")]
    QuotaExceeded {
        /// The quota.
        limit: u64,
        /// How many exist.
        current: u64,
    },
    /// The organization has as many namespaces waiting to be provisioned as it may.
    #[error("{limit} namespaces are already being created")]
    Backlog {
        /// How many may wait.
        limit: u64,
    },
    /// The namespace is being deleted and cannot change.
    #[error("namespace `{0}` is being deleted")]
    Deleting(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A service this one calls failed.
    #[error("peer service: {0}")]
    Peer(ApiError),
    /// A stored row does not decode.
    #[error("corrupt namespace row: {0}")]
    Corrupt(String),
}

impl NamespacesError {
    /// Returns the error class.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(error) => error.code,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::NameTaken { .. } => ErrorCode::AlreadyExists,
            Self::QuotaExceeded { .. } | Self::Backlog { .. } => ErrorCode::ResourceExhausted,
            Self::Deleting(_) => ErrorCode::FailedPrecondition,
            Self::Database(_) | Self::Corrupt(_) => ErrorCode::Internal,
            Self::Peer(error) => error.code,
        }
    }
}

impl From<ApiError> for NamespacesError {
    fn from(error: ApiError) -> Self {
        Self::Invalid(error)
    }
}

impl From<NamespacesError> for ApiError {
    fn from(error: NamespacesError) -> Self {
        match error {
            NamespacesError::Invalid(error) => error,
            NamespacesError::NotFound(id) => ApiError::not_found("namespace", id),
            NamespacesError::Peer(error) => error,
            NamespacesError::NameTaken { name, existing_id } => ApiError::already_exists(
                "namespace",
                existing_id,
                format!("a namespace named `{name}` already exists in this region"),
            ),
            NamespacesError::QuotaExceeded { limit, current } => ApiError::quota_exceeded("namespaces", limit, current),
            // A full backlog passes as its namespaces become ready: Scaleway's 429
            // (`too_many_requests`), not the 403 of a quota that only a deletion frees.
            error @ NamespacesError::Backlog { .. } => ApiError {
                help_message: Some("retry once one of them is ready".to_owned()),
                ..ApiError::new(ErrorCode::ResourceExhausted, error.to_string())
            },
            NamespacesError::Deleting(id) => ApiError::transient_state("namespace", id, "deleting"),
            error @ (NamespacesError::Database(_) | NamespacesError::Corrupt(_)) => ApiError::internal(&error),
        }
    }
}

impl From<NamespacesError> for tonic::Status {
    fn from(error: NamespacesError) -> Self {
        ApiError::from(error).to_status()
    }
}

/// Returns an `InvalidArgument` error for a missing argument.
pub(crate) fn required(argument: &str) -> NamespacesError {
    NamespacesError::Invalid(ApiError::required(argument))
}
