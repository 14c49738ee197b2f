//! Request ids: every response carries `x-request-id`; 5xx bodies carry it too, and their
//! detail is logged once with it.

use crate::error::ErrorBody;
use axum::Json;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nuage_core::internal::REQUEST_ID_HEADER;
use tracing::Instrument;

/// The id of the request being served, in request extensions.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub String);

/// Assigns the request id, runs the request inside a span carrying it, and finishes error
/// bodies.
pub(crate) async fn handle(mut request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    if status.is_server_error() {
        let _entered = span.enter();
        let mut body = response
            .extensions()
            .get::<ErrorBody>()
            .map(|body| body.0.clone())
            .unwrap_or_else(|| serde_json::json!({"message": "internal error", "type": "internal_error"}));
        tracing::error!(status = status.as_u16(), body = %body, "request failed");
        body["request_id"] = serde_json::Value::String(id.clone());
        response = (status, Json(body)).into_response();
    } else if status.is_client_error() && response.extensions().get::<ErrorBody>().is_none() {
        // An error produced below our handlers (axum itself): still a JSON object.
        let body = serde_json::json!({
            "message": status.canonical_reason().unwrap_or("request failed").to_lowercase(),
            "type": "invalid_request_error",
        });
        response = (status, Json(body)).into_response();
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
