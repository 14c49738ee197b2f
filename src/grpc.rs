//! The internal gRPC listener of one process: the services its roles add, behind the internal
//! credential, and their health.

use crate::config::Config;
use nuage_core::Database;
use nuage_core::internal::{InternalAuth, REQUEST_ID_HEADER, RequireInternalAuth};
use nuage_core::listener::{ConnectionLimits, Gate};
use nuage_core::served::Served;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::Request;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How long a peer pinged by the gRPC listener has to answer.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A service of this process as its listener serves it: callers must hold the internal secret.
type Guarded<S> = InterceptedService<S, RequireInternalAuth>;

/// The gRPC services of one process, as its roles add them.
pub struct Services {
    routes: RoutesBuilder,
    auth: InternalAuth,
    names: Vec<&'static str>,
    reporter: HealthReporter,
    background: Vec<JoinHandle<()>>,
    warnings: Vec<String>,
}

impl Services {
    /// Returns the routes with the health service alone, which answers only callers holding
    /// the internal secret, like every other service.
    pub fn new(auth: InternalAuth) -> Self {
        let (reporter, health) = tonic_health::server::health_reporter();
        let mut routes = Routes::builder();
        routes.add_service(InterceptedService::new(health, RequireInternalAuth(auth.clone())));
        Self {
            routes,
            auth,
            names: Vec::new(),
            reporter,
            background: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Adds `served` behind the internal credential, keeps its tasks and warnings, and returns
    /// its handle.
    pub fn add<S, H>(&mut self, served: Served<S, H>) -> H
    where
        Guarded<S>: Service<Request<Body>, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        <Guarded<S> as Service<Request<Body>>>::Response: axum::response::IntoResponse,
        <Guarded<S> as Service<Request<Body>>>::Future: Send + 'static,
    {
        self.routes.add_service(InterceptedService::new(
            served.service,
            RequireInternalAuth(self.auth.clone()),
        ));
        self.names.push(<Guarded<S> as NamedService>::NAME);
        self.background.extend(served.background);
        self.warnings.extend(served.warnings);
        served.handle
    }

    /// Serves the services on `listener` until `stopped` turns true; they report SERVING only
    /// while `database` answers. Their first state is set before the listener serves, so no
    /// caller finds a service not registered yet.
    /// It serves `config.grpc_max_connections` connections at once, disconnects peers that do
    /// not send their HTTP/2 preface and acknowledge its settings within
    /// `config.grpc_preface_timeout_ms` and pings peers
    /// that stay silent `config.grpc_keepalive_seconds`.
    pub async fn serve(
        mut self,
        config: &Config,
        listener: TcpListener,
        database: Database,
        mut stopped: watch::Receiver<bool>,
    ) -> Serving {
        let status = database_status(&database).await;
        if status == ServingStatus::NotServing {
            tracing::warn!("database does not answer; services report NOT_SERVING");
        }
        for service in &self.names {
            self.reporter.set_service_status(*service, status).await;
        }
        let (database_up, database_seen) = watch::channel(status == ServingStatus::Serving);
        let health = watch_database(database, (self.reporter, database_up), self.names, status);
        self.background.push(tokio::spawn(health));
        // Accepted sockets need TCP_NODELAY: without it a reply that spans two writes
        // waits for the peer's delayed ACK (about 40 ms) before its tail leaves.
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        // Its peers are nuage's own processes, a few hosts each holding many connections: one
        // peer may hold every place.
        let gate = Gate::new(&ConnectionLimits {
            max_connections: config.grpc_max_connections,
            max_connections_per_client: config.grpc_max_connections,
            ..ConnectionLimits::default()
        });
        let incoming = gate.admitted(incoming, Duration::from_millis(config.grpc_preface_timeout_ms));
        let routes = self.routes.routes();
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(config.grpc_keepalive_seconds)))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .trace_fn(|request| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                tracing::info_span!("grpc", path = %request.uri().path(), request_id)
            })
            .add_routes(routes.clone());
        let task = tokio::spawn(server.serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Serving {
            routes,
            database_up: database_seen,
            task,
            background: self.background,
            warnings: self.warnings,
        }
    }
}

/// The gRPC services of one process, served.
pub struct Serving {
    /// Their routes, for callers in this process.
    pub routes: Routes,
    /// Whether the database answers, as the services' health says.
    pub database_up: watch::Receiver<bool>,
    /// The listener's task; it ends once the stop signal fired and calls finished.
    pub task: JoinHandle<Result<(), tonic::transport::Error>>,
    /// Tasks the services run beside serving, health included.
    pub background: Vec<JoinHandle<()>>,
    /// Why this installation is less safe than it should be.
    pub warnings: Vec<String>,
}

async fn database_status(database: &Database) -> ServingStatus {
    if database.ping().await {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Sets the status of `services` whenever the database's changes from `first`, and tells
/// `up` whether it answers.
async fn watch_database(
    database: Database,
    (reporter, up): (HealthReporter, watch::Sender<bool>),
    services: Vec<&'static str>,
    first: ServingStatus,
) {
    let mut last = Some(first);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let status = database_status(&database).await;
        if last != Some(status) {
            if status == ServingStatus::NotServing {
                tracing::warn!("database does not answer; services report NOT_SERVING");
            }
            for service in &services {
                reporter.set_service_status(*service, status).await;
            }
            up.send_replace(status == ServingStatus::Serving);
            last = Some(status);
        }
    }
}
