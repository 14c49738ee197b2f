//! The gateway's error answers, rendered by core's [`ErrorResponse`] (Scaleway's bodies,
//! reference C.5) like the router's.
//!
//! Besides the errors of services ([`ApiError`]), the gateway has failures of its own HTTP
//! surface: a body too large, too many failed authentications, a method a path does not have.
//! 5xx bodies never carry internals; the request-id middleware adds the request id to them and
//! logs them once.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nuage_core::error::{ErrorResponse, Reason};
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
    fn to_response(&self) -> ErrorResponse {
        match self {
            Self::Api(error) => error.to_response(),
            Self::PayloadTooLarge { limit } => {
                ErrorResponse::new(ErrorCode::InvalidArgument, "request body is too large")
                    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                    .with(
                        "details",
                        json!([{
                            "argument_name": "body",
                            "help_message": format!("the request body must be at most {limit} bytes"),
                            "reason": "constraint",
                        }]),
                    )
            }
            Self::TooManyRequests { quota, window_seconds } => {
                ErrorResponse::new(ErrorCode::ResourceExhausted, "too many requests")
                    .with(
                        "help_message",
                        "too many failed authentications from this address, retry later",
                    )
                    .with("limit", json!({"quota": quota, "window_seconds": window_seconds}))
                    .with("reset_seconds", *window_seconds)
            }
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        answer(self.to_response())
    }
}

/// Returns `error` as a response that keeps its body for the request-id middleware.
fn answer(error: ErrorResponse) -> Response {
    let (status, body) = error.into_parts();
    let mut response = (status, Json(body.clone())).into_response();
    response.extensions_mut().insert(ErrorBody(body));
    response
}

/// Returns an `InvalidArgument` HTTP error naming one argument.
pub(crate) fn invalid(argument: &str, reason: Reason, help: impl Into<String>) -> HttpError {
    HttpError::Api(ApiError::invalid_argument(argument, reason, help))
}

/// Returns the `InvalidArgument` HTTP error that `argument`, which the request must give, is
/// missing.
pub(crate) fn required(argument: &str) -> HttpError {
    HttpError::Api(ApiError::required(argument))
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
    let message = format!("method {method} is not allowed on `{}`", uri.path());
    answer(
        ErrorResponse::new(ErrorCode::InvalidArgument, message)
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
            .with_type("method_not_allowed"),
    )
}
