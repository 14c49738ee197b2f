//! Why the router itself answered a request with an error, and that answer: a class of
//! [`ErrorCode`] and Scaleway's body for it (core's [`ErrorResponse`], which the gateway's
//! errors use too), with the status of the class unless a proxy has a more exact one (413 for
//! a body too large, 502 for an instance that failed, 504 for one that did not answer in time).

use crate::body::ProxyBody;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use nuage_core::ErrorCode;
use nuage_core::error::ErrorResponse;
use std::time::Duration;

/// A request the router answers itself. `key` is what the endpoint is reached by (on the
/// internal listener, the application id).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The request names no application, by its host or by its first path segment.
    #[error("no function or container answers here")]
    NoTarget,
    /// No application answers at `key` (or it is private and the request has no token).
    #[error("no function or container answers at `{key}`")]
    NoRoute { key: String },
    /// The application is being deleted.
    #[error("`{key}` is being deleted")]
    Deleting { key: String },
    /// The application is private and the token does not open it.
    #[error("`{key}` is private and the token does not open it: {reason}")]
    TokenRefused { key: String, reason: String },
    /// The namespace's key, which checks tokens, cannot be read.
    #[error("the token cannot be checked now; retry shortly")]
    TokenUncheckable,
    /// A request on the internal listener without nuage's credential.
    #[error("this listener is for nuage itself: the internal credential is missing or wrong")]
    NotNuage,
    /// A request on the internal listener whose path starts with no application id.
    #[error("no application id in the path")]
    NoApplicationId,
    /// A request on the internal listener for an application that does not exist.
    #[error("no function or container `{application_id}`")]
    UnknownApplication { application_id: String },
    /// The request body is larger than the router takes.
    #[error("the request body exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    /// The path the application would see is not a valid request target.
    #[error("the request path is not valid")]
    InvalidPath,
    /// The application's first version is being deployed.
    #[error("`{key}` is being deployed; try again in a moment")]
    Deploying { key: String },
    /// The application's deployment failed.
    #[error("`{key}` failed to deploy: {message}")]
    DeployFailed { key: String, message: String },
    /// The application has no version to run.
    #[error("`{key}` has never been deployed: deploy it first")]
    NeverDeployed { key: String },
    /// An instance could not start.
    #[error("`{key}` could not start: {message}")]
    StartFailed { key: String, message: String },
    /// `max_scale` instances are busy and the queue is full.
    #[error("`{key}` is at max_scale ({max_scale}) and its queue is full; retry later")]
    Overloaded { key: String, max_scale: u32 },
    /// No answer within the application's timeout (waiting for an instance included).
    #[error("`{key}` did not answer within its timeout ({} ms)", .timeout.as_millis())]
    TimedOut { key: String, timeout: Duration },
    /// A WebAssembly function trapped, ran out of memory or returned without answering.
    #[error("`{key}` failed while handling the request: {reason}")]
    Trapped { key: String, reason: String },
    /// The instance crashed or closed the connection before it answered.
    #[error("`{key}` failed while handling the request (it crashed or closed the connection)")]
    Crashed { key: String },
}

impl RouterError {
    /// Returns the class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoTarget
            | Self::NoRoute { .. }
            | Self::Deleting { .. }
            | Self::NoApplicationId
            | Self::UnknownApplication { .. }
            | Self::NeverDeployed { .. } => ErrorCode::NotFound,
            Self::TokenRefused { .. } => ErrorCode::PermissionDenied,
            Self::NotNuage => ErrorCode::Unauthenticated,
            Self::TooLarge { .. } | Self::InvalidPath => ErrorCode::InvalidArgument,
            Self::Trapped { .. } => ErrorCode::Internal,
            Self::TokenUncheckable
            | Self::Deploying { .. }
            | Self::DeployFailed { .. }
            | Self::StartFailed { .. }
            | Self::Overloaded { .. }
            | Self::TimedOut { .. }
            | Self::Crashed { .. } => ErrorCode::Unavailable,
        }
    }

    /// Returns the status of the answer: its class's, or a proxy's more exact one.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::StartFailed { .. } | Self::Crashed { .. } => StatusCode::BAD_GATEWAY,
            Self::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// Returns the JSON answer to the client.
    pub fn into_response(self) -> Response<ProxyBody> {
        let (status, body) = ErrorResponse::new(self.code(), self.to_string())
            .with_status(self.status())
            .into_parts();
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(
                Full::new(Bytes::from(body.to_string()))
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .expect("valid response")
    }
}

#[cfg(test)]
mod tests {
    use super::RouterError;
    use http_body_util::BodyExt;
    use std::time::Duration;

    fn answer(error: RouterError) -> (u16, String) {
        let response = error.into_response();
        assert_eq!(response.headers()["content-type"], "application/json");
        let status = response.status().as_u16();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let body = runtime.block_on(response.into_body().collect()).unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn answers_have_the_type_of_their_class_and_a_proxy_status_where_it_is_more_exact() {
        assert_eq!(
            answer(RouterError::NotNuage),
            (
                401,
                r#"{"message":"this listener is for nuage itself: the internal credential is missing or wrong","type":"denied_authentication"}"#.to_owned()
            )
        );
        let timed_out = RouterError::TimedOut {
            key: "ns-f".to_owned(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            answer(timed_out),
            (
                504,
                r#"{"message":"`ns-f` did not answer within its timeout (1000 ms)","type":"service_unavailable"}"#
                    .to_owned()
            )
        );
        assert_eq!(
            answer(RouterError::TooLarge { limit: 10 }),
            (
                413,
                r#"{"message":"the request body exceeds 10 bytes","type":"invalid_arguments"}"#.to_owned()
            )
        );
    }
}
