//! `GET /healthz`: ready only when every service the gateway calls answers SERVING, which each
//! does only while its database answers.

use crate::GatewayState;
use crate::error::ErrorBody;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::time::Duration;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

pub(crate) async fn healthz(State(state): State<GatewayState>) -> Response {
    let mut services = Map::new();
    let mut ready = true;
    for (name, client) in &state.clients().health {
        let mut client = client.clone();
        let request = HealthCheckRequest { service: name.clone() };
        let status = match tokio::time::timeout(Duration::from_secs(2), client.check(request)).await {
            Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving => "serving",
            Ok(Ok(_)) => "not_serving",
            Ok(Err(_)) | Err(_) => "unreachable",
        };
        ready &= status == "serving";
        services.insert(name.clone(), Value::String(status.to_owned()));
    }
    let mut body = if ready {
        json!({"services": services, "status": "ready"})
    } else {
        json!({"message": "not ready", "services": services, "type": "service_unavailable"})
    };
    // Whatever the services say: instances run less isolated than they should.
    let warnings = &state.inner.extras.warnings;
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    if ready {
        return (StatusCode::OK, Json(body)).into_response();
    }
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body.clone())).into_response();
    // Keeps this body (with `services`) when the request-id middleware finishes 5xx bodies.
    response.extensions_mut().insert(ErrorBody(body));
    response
}
