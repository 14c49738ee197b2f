//! The health listener (`health_listen`): what a kubelet or a load balancer asks of any
//! process, whatever its roles. `GET /healthz` answers 200 only while the process's roles
//! serve: it has started them all, is not shutting down, and, where it runs gRPC services, its
//! database answers (the rule their gRPC health follows); 503 otherwise, saying which. `GET
//! /livez` answers 200 while the process runs at all (not 503 for a database outage, which a
//! restart would not cure). Neither needs a credential, and neither says more than that.

use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where the process stands, for `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Its roles are starting: not serving yet.
    Starting,
    /// Every role started.
    Serving,
    /// Shutting down: draining, then gone.
    Stopping,
}

/// The health listener of one process; it serves until dropped or [`Probes::stop`]ped.
#[derive(Debug)]
pub struct Probes {
    address: SocketAddr,
    stage: watch::Sender<Stage>,
    database: watch::Sender<Option<watch::Receiver<bool>>>,
    task: JoinHandle<()>,
}

impl Probes {
    /// Binds `listen` and serves `/healthz` (503, starting) and `/livez` on it.
    pub async fn bind(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let (stage, stage_seen) = watch::channel(Stage::Starting);
        let (database, database_seen) = watch::channel::<Option<watch::Receiver<bool>>>(None);
        let app = axum::Router::new()
            .route(
                "/healthz",
                get(move || {
                    let database_up = database_seen
                        .borrow()
                        .as_ref()
                        .is_none_or(|up: &watch::Receiver<bool>| *up.borrow());
                    healthz(*stage_seen.borrow(), database_up)
                }),
            )
            .route("/livez", get(|| async { Json(json!({"status": "alive"})) }));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "the health listener stopped");
            }
        });
        Ok(Self {
            address,
            stage,
            database,
            task,
        })
    }

    /// Returns the bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Moves the process to `stage`.
    pub fn set(&self, stage: Stage) {
        self.stage.send_replace(stage);
    }

    /// Makes `/healthz` follow `up`, whether the database answers, too.
    pub fn watch_database(&self, up: watch::Receiver<bool>) {
        self.database.send_replace(Some(up));
    }

    /// Stops serving; returns once the listener is closed.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Answers `/healthz` for a process at `stage` whose database is up or not (or that has
/// none).
async fn healthz(stage: Stage, database_up: bool) -> (StatusCode, Json<Value>) {
    let (status, why) = match stage {
        Stage::Starting => (StatusCode::SERVICE_UNAVAILABLE, Some("starting")),
        Stage::Stopping => (StatusCode::SERVICE_UNAVAILABLE, Some("stopping")),
        Stage::Serving if !database_up => (StatusCode::SERVICE_UNAVAILABLE, Some("database unreachable")),
        Stage::Serving => (StatusCode::OK, None),
    };
    let body = match why {
        None => json!({"status": "serving"}),
        Some(why) => json!({"status": "not_serving", "reason": why}),
    };
    (status, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(address: SocketAddr, path: &str) -> (u16, Value) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer)
            .await
            .unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        (status, serde_json::from_str(body).unwrap())
    }

    #[tokio::test]
    async fn healthz_answers_200_only_while_serving_with_its_database_up() {
        let probes = Probes::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = probes.address();
        assert_eq!(
            ask(address, "/healthz").await,
            (503, json!({"status": "not_serving", "reason": "starting"}))
        );
        let (up, seen) = watch::channel(true);
        probes.watch_database(seen);
        probes.set(Stage::Serving);
        assert_eq!(ask(address, "/healthz").await, (200, json!({"status": "serving"})));
        up.send_replace(false);
        assert_eq!(
            ask(address, "/healthz").await,
            (503, json!({"status": "not_serving", "reason": "database unreachable"}))
        );
        // Alive all the same: a restart would not bring the database back.
        assert_eq!(ask(address, "/livez").await.0, 200);
        up.send_replace(true);
        assert_eq!(ask(address, "/healthz").await.0, 200);
        probes.set(Stage::Stopping);
        assert_eq!(
            ask(address, "/healthz").await,
            (503, json!({"status": "not_serving", "reason": "stopping"}))
        );
        probes.stop().await;
    }
}
