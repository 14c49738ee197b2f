//! Errors of the iam service.

use nuage_core::{ApiError, ErrorCode};

/// Everything that can go wrong in iam.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The secret is unknown, malformed or revoked.
    #[error("authentication is denied")]
    Unauthenticated,
    /// No organization with that id.
    #[error("organization `{0}` not found")]
    OrganizationNotFound(String),
    /// No API key with that access key.
    #[error("api key `{0}` not found")]
    KeyNotFound(String),
    /// A tenant name that cannot be used.
    #[error("invalid tenant name: {0}")]
    InvalidName(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
}

impl IamError {
    /// Returns the error class.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::OrganizationNotFound(_) | Self::KeyNotFound(_) => ErrorCode::NotFound,
            Self::InvalidName(_) => ErrorCode::InvalidArgument,
            Self::Database(_) | Self::Hash(_) => ErrorCode::Internal,
        }
    }
}

impl From<IamError> for ApiError {
    fn from(error: IamError) -> Self {
        match &error {
            IamError::Unauthenticated => ApiError::unauthenticated(),
            IamError::OrganizationNotFound(id) => ApiError::not_found("organization", id.clone()),
            IamError::KeyNotFound(id) => ApiError::not_found("api_key", id.clone()),
            IamError::InvalidName(_) => ApiError::new(error.code(), error.to_string()),
            IamError::Database(_) | IamError::Hash(_) => ApiError::internal(&error),
        }
    }
}
