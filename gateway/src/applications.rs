//! JSON pieces that functions and containers share: status and privacy names, timeouts that
//! arrive as milliseconds or as a duration string, and list parameters.

use crate::error::{HttpError, invalid};
use crate::extract::QueryParams;
use nuage_core::error::Reason;
use nuage_core::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use nuage_proto::common::v1 as common;
use serde::Deserialize;

/// `order_by` values of function and container lists, the default first.
const ORDERS: [&str; 4] = ["created_at_asc", "created_at_desc", "name_asc", "name_desc"];

/// Returns the v1alpha2 name of an application status.
pub(crate) fn status_name(status: i32) -> &'static str {
    match common::ApplicationStatus::try_from(status).unwrap_or(common::ApplicationStatus::Unspecified) {
        common::ApplicationStatus::Ready | common::ApplicationStatus::Unspecified => "ready",
        common::ApplicationStatus::Deleting => "deleting",
        common::ApplicationStatus::Error => "error",
        common::ApplicationStatus::Locked => "locked",
        common::ApplicationStatus::Creating => "creating",
        common::ApplicationStatus::Pending => "pending",
        common::ApplicationStatus::Created => "created",
    }
}

/// Returns the v1alpha2 name of a privacy.
pub(crate) fn privacy_name(privacy: i32) -> &'static str {
    match common::Privacy::try_from(privacy).unwrap_or(common::Privacy::Unspecified) {
        common::Privacy::Public => "public",
        common::Privacy::Private => "private",
        common::Privacy::Unspecified => "unknown",
    }
}

/// Returns the privacy a body asks for; absent or `unknown` leaves it to the service.
pub(crate) fn privacy(value: Option<&str>) -> Result<i32, HttpError> {
    Ok(match value.unwrap_or_default() {
        "" | "unknown" => common::Privacy::Unspecified,
        "public" => common::Privacy::Public,
        "private" => common::Privacy::Private,
        other => {
            return Err(invalid(
                "privacy",
                Reason::Constraint,
                format!("`{other}` is not one of public, private"),
            ));
        }
    } as i32)
}

/// A timeout as clients send it: milliseconds (v1alpha2), or a duration string such as
/// `"300s"` or `"1500ms"` (what the Serverless plugin passes on from its yml).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Timeout {
    /// Milliseconds.
    Millis(u64),
    /// `<number>s` or `<number>ms`.
    Text(String),
}

impl Timeout {
    /// Returns the timeout in milliseconds.
    pub(crate) fn millis(&self) -> Result<u64, HttpError> {
        let text = match self {
            Self::Millis(millis) => return Ok(*millis),
            Self::Text(text) => text.trim(),
        };
        let refuse = || {
            invalid(
                "timeout",
                Reason::Format,
                format!("`{text}` is neither milliseconds nor a duration such as `300s` or `1500ms`"),
            )
        };
        let (number, scale) = if let Some(number) = text.strip_suffix("ms") {
            (number, 1.0)
        } else if let Some(number) = text.strip_suffix('s') {
            (number, 1000.0)
        } else {
            (text, 1.0)
        };
        let value: f64 = number.trim().parse().map_err(|_| refuse())?;
        if !value.is_finite() || value < 0.0 {
            return Err(refuse());
        }
        // Bounded by the finite check; the service refuses values out of range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok((value * scale).round().min(u64::MAX as f64) as u64)
    }
}

/// Returns the millisecond form of an optional timeout.
pub(crate) fn timeout_ms(timeout: Option<&Timeout>) -> Result<Option<u64>, HttpError> {
    timeout.map(Timeout::millis).transpose()
}

/// The paging and sorting parameters of a function or container list.
pub(crate) struct ListParams {
    pub page: u32,
    pub page_size: u32,
    pub order_by: i32,
}

impl ListParams {
    /// Reads `page`, `page_size` and `order_by`.
    pub(crate) fn read(query: &QueryParams) -> Result<Self, HttpError> {
        let order_by = match query.choice("order_by", &ORDERS)? {
            "created_at_desc" => common::ApplicationOrder::CreatedAtDesc,
            "name_asc" => common::ApplicationOrder::NameAsc,
            "name_desc" => common::ApplicationOrder::NameDesc,
            _ => common::ApplicationOrder::CreatedAtAsc,
        };
        Ok(Self {
            page: query.number("page", 1, 1, u32::MAX)?,
            page_size: query.number("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)?,
            order_by: order_by as i32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Timeout;

    #[test]
    fn timeouts_read_as_milliseconds_or_durations() {
        assert_eq!(Timeout::Millis(1500).millis().unwrap(), 1500);
        assert_eq!(Timeout::Text("300s".into()).millis().unwrap(), 300_000);
        assert_eq!(Timeout::Text("1.5s".into()).millis().unwrap(), 1500);
        assert_eq!(Timeout::Text("250ms".into()).millis().unwrap(), 250);
        assert!(Timeout::Text("soon".into()).millis().is_err());
        assert!(Timeout::Text("-1s".into()).millis().is_err());
    }
}
