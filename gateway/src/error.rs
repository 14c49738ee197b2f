//! Scaleway-style error bodies.
//!
//! Every error answer is a JSON object with a string `message` and a `type` (reference C.5),
//! keys sorted as Scaleway sends them. 5xx bodies never carry internals; the request-id
//! middleware adds the request id to them and logs them once.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nuage_core::error::Reason;
use nuage_core::{ApiError, ErrorCode};
use serde_json::{Value, json};

/// An error answer of the REST API.
#[derive(Debug)]
pub enum HttpError {
    /// An error from a service or from validation in the gateway.
    Api(ApiError),
    /// The request body is larger than allowed.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Too many failed authentications from one address.
    TooManyRequests {
        /// Failures allowed per window.
        quota: u32,
        /// The window, in seconds.
        window_seconds: u64,
    },
}

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<tonic::Status> for HttpError {
    fn from(status: tonic::Status) -> Self {
        if status.code() == tonic::Code::Unavailable {
            tracing::warn!(error = %status.message(), "service unavailable");
        }
        Self::Api(ApiError::from_status(&status))
    }
}

/// The rendered body of an error, kept in the response so the request-id middleware can add
/// the id to 5xx bodies.
#[derive(Clone, Debug)]
pub(crate) struct ErrorBody(pub Value);

impl HttpError {
    fn status_and_body(&self) -> (StatusCode, Value) {
        match self {
            Self::Api(error) => api_error_body(error),
            Self::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({
                    "details": [{
                        "argument_name": "body",
                        "help_message": format!("the request body must be at most {limit} bytes"),
                        "reason": "constraint",
                    }],
                    "message": "request body is too large",
                    "type": "invalid_arguments",
                }),
            ),
            Self::TooManyRequests { quota, window_seconds } => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({
                    "help_message": "too many failed authentications from this address, retry later",
                    "limit": {"quota": quota, "window_seconds": window_seconds},
                    "message": "too many requests",
                    "reset_seconds": window_seconds,
                    "type": "too_many_requests",
                }),
            ),
        }
    }
}

fn api_error_body(error: &ApiError) -> (StatusCode, Value) {
    let status = if error.code == ErrorCode::FailedPrecondition && error.current_state.is_some() {
        // A resource in a transient state is a conflict for Scaleway (reference C.5), not a
        // failed precondition.
        StatusCode::CONFLICT
    } else {
        StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let body = match error.code {
        ErrorCode::InvalidArgument => json!({
            "details": error.violations.iter().map(|v| json!({
                "argument_name": v.argument_name,
                "help_message": v.help_message,
                "reason": v.reason,
            })).collect::<Vec<_>>(),
            "message": error.message,
            "type": "invalid_arguments",
        }),
        ErrorCode::NotFound => json!({
            "message": error.message,
            "resource": text(&error.resource),
            "resource_id": text(&error.resource_id),
            "type": "not_found",
        }),
        ErrorCode::AlreadyExists => json!({
            "help_message": text(&error.help_message),
            "message": error.message,
            "resource": text(&error.resource),
            "resource_id": text(&error.resource_id),
            "type": "already_exists",
        }),
        ErrorCode::FailedPrecondition if error.current_state.is_some() => {
            return (
                StatusCode::CONFLICT,
                json!({
                    "current_state": text(&error.current_state),
                    "message": error.message,
                    "resource": text(&error.resource),
                    "resource_id": text(&error.resource_id),
                    "type": "transient_state",
                }),
            );
        }
        ErrorCode::FailedPrecondition => json!({
            "help_message": text(&error.help_message),
            "message": "precondition is not respected",
            "precondition": "unknown_precondition",
            "type": "precondition_failed",
        }),
        ErrorCode::Unauthenticated => json!({
            "message": "authentication is denied",
            "method": "api_key",
            "reason": "invalid_argument",
            "type": "denied_authentication",
        }),
        ErrorCode::PermissionDenied => json!({
            "details": [{"action": text(&error.help_message), "resource": text(&error.resource)}],
            "message": "insufficient permissions",
            "type": "permissions_denied",
        }),
        ErrorCode::ResourceExhausted if error.quota.is_some() => {
            // Scaleway answers exhausted quotas with 403, not 429.
            let quota = error.quota.unwrap_or(nuage_core::error::Quota { limit: 0, current: 0 });
            return (
                StatusCode::FORBIDDEN,
                json!({
                    "details": [{"current": quota.current, "quota": quota.limit, "resource": text(&error.resource)}],
                    "message": error.message,
                    "type": "quotas_exceeded",
                }),
            );
        }
        ErrorCode::ResourceExhausted => json!({
            "help_message": text(&error.help_message),
            "message": error.message,
            "type": "too_many_requests",
        }),
        ErrorCode::Unavailable => {
            let mut body = json!({
                "message": "service temporarily unavailable, retry later",
                "type": "service_unavailable",
            });
            if let Some(help) = &error.help_message {
                body["help_message"] = json!(help);
            }
            body
        }
        ErrorCode::Internal => json!({
            "message": "internal error",
            "type": "internal_error",
        }),
    };
    (status, body)
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let mut response = (status, Json(body.clone())).into_response();
        response.extensions_mut().insert(ErrorBody(body));
        response
    }
}

/// Returns an `InvalidArgument` HTTP error naming one argument.
pub(crate) fn invalid(argument: &str, reason: Reason, help: impl Into<String>) -> HttpError {
    HttpError::Api(ApiError::invalid_argument(argument, reason, help))
}

/// Answers requests for paths the API does not have.
pub(crate) async fn route_not_found(uri: axum::http::Uri) -> HttpError {
    HttpError::Api(ApiError {
        resource: Some("route".to_owned()),
        resource_id: Some(uri.path().to_owned()),
        ..ApiError::new(ErrorCode::NotFound, format!("no route for `{}`", uri.path()))
    })
}

/// Answers requests with a method the path does not support.
pub(crate) async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let body = json!({
        "message": format!("method {method} is not allowed on `{}`", uri.path()),
        "type": "method_not_allowed",
    });
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, Json(body.clone())).into_response();
    response.extensions_mut().insert(ErrorBody(body));
    response
}
