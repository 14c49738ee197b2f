//! `GET /healthz`: ready only when every service the gateway calls answers SERVING (which each
//! does only while its database answers) and every dependency the process checks besides
//! ([`Dependency`]: the database, the object store, the data disk) is up. Each check has the
//! same deadline (`gateway.health_timeout_ms`), and they run at once, so a dependency that
//! accepts and never answers costs `/healthz` that deadline, no more.

use crate::GatewayState;
use crate::error::ErrorBody;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::task::JoinSet;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

/// A check of one dependency: a future that says how it is.
pub type DependencyCheck = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Checked> + Send>> + Send + Sync>;

/// Something the process depends on besides the services, which `/healthz` checks.
pub struct Dependency {
    /// Its name in `/healthz` (`object_store`).
    pub name: &'static str,
    /// How to check it; it counts as `timed_out` past the deadline.
    pub check: DependencyCheck,
}

impl std::fmt::Debug for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependency").field("name", &self.name).finish()
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `up`, or why not (`unreachable`, `failing`, `full`, ...).
    pub state: &'static str,
    /// What an operator reads, if anything.
    pub message: Option<String>,
    /// Figures worth showing (`free_bytes`).
    pub figures: Vec<(&'static str, u64)>,
}

impl Checked {
    /// Returns a dependency that is up.
    pub fn up() -> Self {
        Self {
            state: "up",
            message: None,
            figures: Vec::new(),
        }
    }

    /// Returns a dependency that is not up, in `state`, for the reason `message`.
    pub fn down(state: &'static str, message: impl Into<String>) -> Self {
        Self {
            state,
            message: Some(message.into()),
            figures: Vec::new(),
        }
    }

    /// Returns this with the figure `name`.
    pub fn with(mut self, name: &'static str, value: u64) -> Self {
        self.figures.push((name, value));
        self
    }

    fn is_up(&self) -> bool {
        self.state == "up"
    }

    fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("state".to_owned(), json!(self.state));
        if let Some(message) = &self.message {
            object.insert("message".to_owned(), json!(message));
        }
        for (name, value) in &self.figures {
            object.insert((*name).to_owned(), json!(value));
        }
        Value::Object(object)
    }
}

/// What one check, of a service or of a dependency, found.
enum Found {
    Service(String, &'static str),
    Dependency(&'static str, Checked),
}

pub(crate) async fn healthz(State(state): State<GatewayState>) -> Response {
    let deadline = Duration::from_millis(state.config().health_timeout_ms);
    let mut checks = JoinSet::new();
    for (name, client) in &state.clients().health {
        let (name, mut client) = (name.clone(), client.clone());
        checks.spawn(async move {
            let request = HealthCheckRequest { service: name.clone() };
            let status = match tokio::time::timeout(deadline, client.check(request)).await {
                Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving => "serving",
                Ok(Ok(_)) => "not_serving",
                Ok(Err(_)) | Err(_) => "unreachable",
            };
            Found::Service(name, status)
        });
    }
    for dependency in &state.inner.extras.dependencies {
        let (name, check) = (dependency.name, (dependency.check)());
        checks.spawn(async move {
            let checked = tokio::time::timeout(deadline, check).await.unwrap_or_else(|_| {
                Checked::down("timed_out", format!("no answer within {} ms", deadline.as_millis()))
            });
            Found::Dependency(name, checked)
        });
    }
    let (mut services, mut dependencies, mut failing) = (Map::new(), Map::new(), Vec::new());
    while let Some(found) = checks.join_next().await {
        match found {
            Ok(Found::Service(name, status)) => {
                if status != "serving" {
                    failing.push(format!("{name} ({status})"));
                }
                services.insert(name, json!(status));
            }
            Ok(Found::Dependency(name, checked)) => {
                if !checked.is_up() {
                    failing.push(format!("{name} ({})", checked.state));
                }
                dependencies.insert(name.to_owned(), checked.to_json());
            }
            Err(error) => failing.push(format!("a check failed: {error}")),
        }
    }
    failing.sort();
    let ready = failing.is_empty();
    let mut body = if ready {
        json!({"dependencies": dependencies, "services": services, "status": "ready"})
    } else {
        json!({
            "dependencies": dependencies,
            "message": format!("not ready: {}", failing.join(", ")),
            "services": services,
            "type": "service_unavailable",
        })
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
