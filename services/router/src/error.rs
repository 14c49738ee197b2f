//! The router's own error answers: JSON bodies, Scaleway-style.

use crate::body::ProxyBody;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

/// Why the router itself answered with an error (kept on the response, never sent).
#[derive(Debug, Clone)]
pub struct Failure(pub String);

/// A JSON error answer, Scaleway-style.
pub fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response<ProxyBody> {
    let message = message.into();
    let body = serde_json::json!({"message": &message, "type": kind}).to_string();
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed())
        .expect("valid response");
    response.extensions_mut().insert(Failure(message));
    response
}
