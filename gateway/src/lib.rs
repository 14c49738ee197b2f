//! The REST facade of nuage: Scaleway Functions v1alpha2 and v1beta1, and Containers v1beta1 and
//! v1, JSON over the internal gRPC services.
//!
//! Owns no data. It authenticates `X-Auth-Token` (through iam, with a short-lived cache and a
//! per-address throttle on failures), validates the HTTP surface (regions, path ids, query
//! parameters, JSON bodies), calls services through generated gRPC clients, and renders
//! Scaleway's exact success and error bodies. It imports no service crate. [`serve`] runs it on
//! a listener the process bound.

mod applications;
mod auth;
mod clients;
mod config;
mod containers;
mod containers_v1;
mod containers_v1_triggers;
mod crons;
mod deployments;
mod domains;
mod error;
mod extract;
mod functions;
mod health;
mod jwt;
mod list;
mod logs;
mod metrics;
mod namespaces;
mod owner;
mod request_id;
mod tokens;
mod triggers;
mod v1alpha2;
mod v1beta1;
mod version;

pub use clients::{ServiceClients, ServiceTransports};
pub use config::GatewayConfig;
pub use error::HttpError;
pub use health::{Checked, Dependency, DependencyCheck};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use containers_v1::ContainersV1;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use v1alpha2::V1alpha2;
use v1beta1::{ContainersV1beta1, V1beta1};
use version::Version;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct GatewayState {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    clients: ServiceClients,
    auth: auth::Authenticator,
    metrics: metrics::Metrics,
    extras: GatewayExtras,
}

/// Renders more figures for `/metrics` (OpenMetrics text without the closing `# EOF`).
pub type MetricsRenderer = Box<dyn Fn() -> String + Send + Sync>;

/// What other parts of the process add to the gateway's `/healthz` and `/metrics`.
#[derive(Default)]
pub struct GatewayExtras {
    /// Shown on `/healthz`: why this installation is less safe than it should be.
    pub warnings: Vec<String>,
    /// Appended to `/metrics` (the router's invocation figures, say).
    pub metrics: Vec<MetricsRenderer>,
    /// Checked on `/healthz` besides the services: the database, the object store, the data
    /// disk, as far as this process has them.
    pub dependencies: Vec<health::Dependency>,
    /// Turns true when the process stops: long-lived answers (followed logs) end then.
    pub stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

impl std::fmt::Debug for GatewayExtras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayExtras")
            .field("warnings", &self.warnings)
            .field("metrics", &self.metrics.len())
            .field("dependencies", &self.dependencies)
            .finish()
    }
}

impl GatewayState {
    /// Returns the state of a gateway that reaches services through `clients`.
    pub fn new(config: GatewayConfig, clients: ServiceClients) -> Self {
        Self::with_extras(config, clients, GatewayExtras::default())
    }

    /// Returns the state of a gateway that also shows `extras`.
    pub fn with_extras(config: GatewayConfig, clients: ServiceClients, extras: GatewayExtras) -> Self {
        let auth = auth::Authenticator::new(&config, clients.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                clients,
                auth,
                metrics: metrics::Metrics::new(),
                extras,
            }),
        }
    }

    fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    fn clients(&self) -> &ServiceClients {
        &self.inner.clients
    }

    /// The stop signal, when the process gave one.
    fn stopping(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.inner.extras.stopping.clone()
    }

    /// Returns a client of the namespaces service (clones share one connection).
    fn namespaces(
        &self,
    ) -> nuage_proto::namespaces::v1::namespaces_client::NamespacesClient<nuage_core::transport::Authed> {
        self.inner.clients.namespaces.clone()
    }
}

/// The v1alpha2 API prefix, before the region.
pub const API_PREFIX: &str = V1alpha2::PREFIX;

/// Returns the gateway's HTTP routes. Requests carry the client's address (`ConnectInfo`)
/// for the failure throttle.
pub fn router(state: GatewayState) -> Router {
    let authenticated = |api: Router<GatewayState>| {
        api.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_caller,
        ))
    };
    let v1alpha2 = namespaces::routes::<V1alpha2>()
        .merge(functions::routes::<V1alpha2>())
        .merge(containers::routes::<V1alpha2>())
        .merge(crons::routes::<V1alpha2>())
        .merge(jwt::routes())
        .merge(logs::routes());
    let v1beta1 = beta_routes::<V1beta1, functions::Functions>(functions::routes::<V1beta1>());
    let containers_v1beta1 =
        beta_routes::<ContainersV1beta1, containers::Containers>(containers::routes::<ContainersV1beta1>());
    let mut routes = Router::new()
        .nest(&format!("{}/{{region}}", V1alpha2::PREFIX), authenticated(v1alpha2))
        .nest(&format!("{}/{{region}}", V1beta1::PREFIX), authenticated(v1beta1))
        .nest(
            &format!("{}/{{region}}", ContainersV1beta1::PREFIX),
            authenticated(containers_v1beta1),
        )
        .nest(
            &format!("{}/{{region}}", ContainersV1::PREFIX),
            authenticated(containers_v1::routes()),
        )
        .route("/healthz", get(health::healthz));
    // Without an operator credential there is no one to serve the figures to.
    if state.config().metrics_token.is_some() {
        routes = routes.route("/metrics", get(metrics::render));
    }
    routes
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::observe))
        .layer(axum::middleware::from_fn(request_id::handle))
        .with_state(state)
}

/// Returns the routes of a v1beta1 API (functions or containers) version `V` over `O`'s
/// `applications` routes: namespaces, crons, tokens, triggers and domains. Beyond Scaleway's
/// v1beta1 specs, what the Serverless plugin calls: `/issue-jwt` and `/<kind>s/{id}/logs`
/// (`applications::routes` has the nested lists it calls too).
fn beta_routes<V: Version, O: owner::Owner>(applications: Router<GatewayState>) -> Router<GatewayState> {
    namespaces::routes::<V>()
        .merge(applications)
        .merge(crons::routes::<V>())
        .merge(tokens::routes::<V>())
        .merge(triggers::routes::<V>())
        .merge(domains::routes::<O, domains::Beta>())
        .merge(jwt::issue_jwt_routes())
        .merge(logs::application_routes::<O>())
}

/// Serves the REST API on `listener` until `stopped` turns true, then lets in-flight requests
/// finish; `stopped` also ends long-lived answers (followed logs).
pub fn serve(
    config: GatewayConfig,
    clients: ServiceClients,
    mut extras: GatewayExtras,
    listener: TcpListener,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    extras.stopping = Some(stopped.clone());
    let limits = config.connections.clone();
    let app = router(GatewayState::with_extras(config, clients, extras));
    // Each connection is served by hyper within the listener's limits (nuage_core::listener),
    // with the client's address where the failure throttle reads it.
    tokio::spawn(nuage_core::listener::serve(listener, limits, stopped, move |peer| {
        let app = app.clone();
        hyper::service::service_fn(move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request.map(axum::body::Body::new))
        })
    }))
}
