//! Resource ids: UUID v4 strings on the wire.

use crate::error::{ApiError, Reason};
use uuid::Uuid;

/// Returns a fresh random id.
pub fn new_id() -> Uuid {
    Uuid::new_v4()
}

/// Returns the UUID in `value`, or an `InvalidArgument` error naming `argument`.
pub fn parse_id(argument: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(value)
        .map_err(|_| ApiError::invalid_argument(argument, Reason::Format, format!("`{value}` is not a valid UUID")))
}
