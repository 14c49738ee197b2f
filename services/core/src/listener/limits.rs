//! What a listener allows a client connection, and how it refuses what exceeds it.

use crate::ErrorCode;
use crate::error::ErrorResponse;
use crate::internal::REQUEST_ID_HEADER;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest request target hyper itself takes: a longer `max_uri_bytes` could not be met.
const HYPER_MAX_URI: usize = 65_534;

/// Limits on the client connections of an HTTP/1.1 listener (`[gateway.connections]`,
/// `[router.connections]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Milliseconds a client may take to send a request head, from its first byte; a slower
    /// one gets 408 and is disconnected.
    pub header_read_timeout_ms: u64,
    /// Seconds a connection may stay open with no request in progress; then it is closed.
    pub idle_timeout_seconds: u64,
    /// Milliseconds a request body being read may go without a byte from the client; then the
    /// request gets 408 and the connection is closed. It bounds a stall, not an upload: a
    /// slow upload that keeps sending is never cut.
    pub body_stall_timeout_ms: u64,
    /// Connections served at once; one more gets 503 and is closed.
    pub max_connections: usize,
    /// Of those, the most one client holds at once (a client is an IPv4 address or an IPv6
    /// /64, where one host's addresses are); one more from it gets 503 and is closed, so that
    /// one client that holds its connections open (idle, or sending slowly) cannot take every
    /// place. Behind a proxy every client has the proxy's address: set it to
    /// `max_connections` there and limit clients at the proxy.
    pub max_connections_per_client: usize,
    /// Longest request target (path and query), in bytes; a longer one gets 414.
    pub max_uri_bytes: usize,
    /// Largest request head (request line and headers), in bytes; a larger one gets 431.
    pub max_header_bytes: usize,
    /// Most headers in a request; more get 431.
    pub max_headers: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            idle_timeout_seconds: 60,
            // As nginx's client_body_timeout: a link that delivers nothing for a minute is
            // down, however slow it is otherwise.
            body_stall_timeout_ms: 60_000,
            max_connections: 10_000,
            max_connections_per_client: 1_000,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

impl ConnectionLimits {
    /// Returns a description of the first invalid limit of the section `section`, if any.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        let positive = [
            ("header_read_timeout_ms", self.header_read_timeout_ms as usize),
            ("idle_timeout_seconds", self.idle_timeout_seconds as usize),
            ("body_stall_timeout_ms", self.body_stall_timeout_ms as usize),
            ("max_connections", self.max_connections),
            ("max_connections_per_client", self.max_connections_per_client),
            ("max_uri_bytes", self.max_uri_bytes),
            ("max_header_bytes", self.max_header_bytes),
            ("max_headers", self.max_headers),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{section}.{name} must be positive"));
        }
        if self.max_uri_bytes > HYPER_MAX_URI.min(self.max_header_bytes) {
            return Err(format!(
                "{section}.max_uri_bytes must be at most {HYPER_MAX_URI} and at most max_header_bytes"
            ));
        }
        Ok(())
    }

    /// Returns the time a request head may take from its first byte.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// Returns the time a request body may go without a byte.
    pub fn body_stall_timeout(&self) -> Duration {
        Duration::from_millis(self.body_stall_timeout_ms)
    }

    /// Returns the time a connection may wait for a request.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_seconds)
    }
}

/// Why a listener answered a connection itself and closed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request head does not parse as HTTP/1.x.
    Malformed(String),
    /// The request target is longer than the limit.
    UriTooLong {
        /// `max_uri_bytes`.
        limit: usize,
    },
    /// The request head is larger than the limit.
    HeadTooLarge {
        /// `max_header_bytes`.
        limit: usize,
    },
    /// The request has more headers than the limit.
    TooManyHeaders {
        /// `max_headers`.
        limit: usize,
    },
    /// The request head did not arrive in time.
    SlowHead {
        /// `header_read_timeout_ms`.
        timeout: Duration,
    },
    /// The request body stopped coming before its end.
    SlowBody {
        /// `body_stall_timeout_ms`.
        timeout: Duration,
    },
    /// Every place of the listener is taken.
    Overloaded {
        /// `max_connections`.
        limit: usize,
    },
    /// The client holds as many places as one client may.
    ClientOverloaded {
        /// `max_connections_per_client`.
        limit: usize,
    },
}

impl Refusal {
    /// Returns the answer, in the Scaleway shape of every other error of nuage.
    pub fn to_response(&self) -> ErrorResponse {
        let invalid = |status: StatusCode, message: String, help: String| {
            ErrorResponse::new(ErrorCode::InvalidArgument, message)
                .with_status(status)
                .with("help_message", help)
        };
        match self {
            Self::Malformed(reason) => invalid(
                StatusCode::BAD_REQUEST,
                "the request is not valid HTTP/1.1".to_owned(),
                reason.clone(),
            ),
            Self::UriTooLong { limit } => invalid(
                StatusCode::URI_TOO_LONG,
                "the request target is too long".to_owned(),
                format!("the path and query must be at most {limit} bytes"),
            ),
            Self::HeadTooLarge { limit } => invalid(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "the request headers are too large".to_owned(),
                format!("the request line and headers must be at most {limit} bytes"),
            ),
            Self::TooManyHeaders { limit } => invalid(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "the request has too many headers".to_owned(),
                format!("a request may have at most {limit} headers"),
            ),
            Self::SlowHead { timeout } => invalid(
                StatusCode::REQUEST_TIMEOUT,
                "the request head was not received in time".to_owned(),
                format!("send the request line and headers within {} ms", timeout.as_millis()),
            ),
            Self::SlowBody { timeout } => invalid(
                StatusCode::REQUEST_TIMEOUT,
                "the request body stopped arriving".to_owned(),
                format!(
                    "the request body must keep coming: no part of it arrived for {} ms",
                    timeout.as_millis()
                ),
            ),
            Self::Overloaded { limit } => {
                ErrorResponse::new(ErrorCode::Unavailable, "too many connections, retry later").with(
                    "help_message",
                    format!("this listener serves at most {limit} connections at once"),
                )
            }
            Self::ClientOverloaded { limit } => ErrorResponse::new(
                ErrorCode::Unavailable,
                "too many connections from your address, retry later",
            )
            .with(
                "help_message",
                format!("this listener serves at most {limit} connections at once from one client address"),
            ),
        }
    }

    /// Returns the whole HTTP/1.1 answer, which closes the connection.
    pub fn to_http(&self) -> Vec<u8> {
        let (status, body) = self.to_response().into_parts();
        let body = body.to_string();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{REQUEST_ID_HEADER}: {}\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len(),
            uuid::Uuid::new_v4(),
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_whole_http_answers_with_a_scaleway_body() {
        let answer = String::from_utf8(Refusal::UriTooLong { limit: 10 }.to_http()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())), "{head}");
        assert_eq!(
            body,
            r#"{"help_message":"the path and query must be at most 10 bytes","message":"the request target is too long","type":"invalid_arguments"}"#
        );
        let answer = String::from_utf8(Refusal::Overloaded { limit: 3 }.to_http()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains(r#""type":"service_unavailable""#), "{answer}");
    }

    #[test]
    fn limits_must_be_positive_and_within_what_hyper_takes() {
        ConnectionLimits::default().validate("gateway.connections").unwrap();
        let none = ConnectionLimits {
            max_connections: 0,
            ..ConnectionLimits::default()
        };
        assert!(none.validate("x").unwrap_err().contains("x.max_connections"));
        let long = ConnectionLimits {
            max_uri_bytes: 70_000,
            max_header_bytes: 100_000,
            ..ConnectionLimits::default()
        };
        assert!(long.validate("x").is_err());
    }
}
