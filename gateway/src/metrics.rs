//! `GET /metrics` in the Prometheus text format: requests by route and status, and latency
//! histograms by route. Served only to the operator's bearer token (`gateway.metrics_token`):
//! the figures name every tenant's applications.

use crate::GatewayState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("nuage_http");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register("requests", "HTTP requests by route and status", requests.clone());
        registry.register(
            "request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        Self {
            registry,
            requests,
            latency,
        }
    }
}

/// Counts and times every request.
pub(crate) async fn observe(State(state): State<GatewayState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // A client may send any token as its method: only the API's own are labels of their own.
    let method = match *request.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            request.method().as_str().to_owned()
        }
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.inner.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Returns whether `headers` carry the operator's metrics token as a bearer token.
fn is_operator(state: &GatewayState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.config().metrics_token else {
        return false;
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    // Digests are compared, so the time taken says nothing about the token.
    presented.is_some_and(|presented| {
        Sha256::digest(presented.as_bytes()) == Sha256::digest(expected.expose().trim().as_bytes())
    })
}

/// Answers the operator with every figure; anyone else (a tenant's key included) gets 401.
pub(crate) async fn render(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    if !is_operator(&state, &headers) {
        return crate::HttpError::Api(nuage_core::ApiError::unauthenticated()).into_response();
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.inner.metrics.registry) {
        Ok(()) => {
            if !state.inner.extras.metrics.is_empty() {
                let end = text.rfind("# EOF").unwrap_or(text.len());
                text.truncate(end);
                for render in &state.inner.extras.metrics {
                    text.push_str(&render());
                }
                text.push_str("# EOF\n");
            }
            (
                [(
                    CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
        Err(error) => crate::HttpError::Api(nuage_core::ApiError::internal(&error)).into_response(),
    }
}
