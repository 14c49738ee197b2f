//! The logs gRPC service: ingestion through a bounded queue into batched inserts, queries,
//! follow streams fed as lines are stored, and a pruner that bounds every application.

use crate::config::LogsConfig;
use crate::store::{Entry, LogStore};
use crate::text;
use nuage_core::Page;
use nuage_core::clock::now_micros;
use nuage_core::ids::parse_id;
use nuage_proto::logs::v1::{self as pb, logs_server::Logs};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Most lines stored in one transaction.
const WRITE_BATCH: usize = 5000;
/// Lines a follower may fall behind before it catches up from the database.
const FOLLOW_BUFFER: usize = 1024;
/// How long lines of a deleted application are still refused (some may still be on their way).
const FORGET: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
struct Figures {
    registry: Registry,
    ingested: Counter,
    dropped: Counter,
    cut: Counter,
    pruned: Counter,
}

/// The logs service's figures, in the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Figures>);

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("nuage_logs");
        let figures = Figures::default();
        registry.register("lines_ingested", "Log lines stored", figures.ingested.clone());
        registry.register(
            "lines_dropped",
            "Log lines dropped before they were stored (a sender's buffer or rate limit was full, or storing failed)",
            figures.dropped.clone(),
        );
        registry.register("lines_cut", "Log lines cut at 64 KiB", figures.cut.clone());
        registry.register("lines_pruned", "Log lines removed by retention", figures.pruned.clone());
        Self(Arc::new(Figures { registry, ..figures }))
    }

    /// Renders the figures (without the `# EOF` line, so that they can be appended).
    pub fn render(&self) -> String {
        nuage_core::figures::render(&self.0.registry)
    }
}

/// Serves `nuage.logs.v1.Logs`.
#[derive(Debug, Clone)]
pub struct LogsService {
    store: LogStore,
    queue: mpsc::Sender<Vec<Entry>>,
    stored: broadcast::Sender<Arc<Entry>>,
    metrics: Metrics,
    /// Deleted applications, and when: their late lines are dropped.
    forgotten: Arc<Mutex<HashMap<String, Instant>>>,
    /// Turns true when the server stops.
    stopping: watch::Receiver<bool>,
}

impl LogsService {
    /// Returns the service and starts its writer and pruner; `stopping` turns true when the
    /// server stops (open `Write` streams end then).
    pub fn start(store: LogStore, config: &LogsConfig, stopping: watch::Receiver<bool>) -> (Self, Vec<JoinHandle<()>>) {
        // Batches hold up to 1000 lines (and 2 MiB) each.
        let (queue, receiver) = mpsc::channel((config.queue_lines / 1000).max(8));
        let (stored, _) = broadcast::channel(FOLLOW_BUFFER);
        let metrics = Metrics::new();
        let touched = Arc::new(Mutex::new(HashSet::new()));
        let forgotten: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let tasks = vec![
            tokio::spawn(write(
                store.clone(),
                receiver,
                stored.clone(),
                metrics.clone(),
                touched.clone(),
                forgotten.clone(),
            )),
            tokio::spawn(prune(
                store.clone(),
                config.clone(),
                metrics.clone(),
                touched,
                forgotten.clone(),
            )),
        ];
        (
            Self {
                store,
                queue,
                stored,
                metrics,
                forgotten,
                stopping,
            },
            tasks,
        )
    }

    /// The service's figures.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }
}

/// Stores what the queue brings, in batches, and tells followers.
async fn write(
    store: LogStore,
    mut receiver: mpsc::Receiver<Vec<Entry>>,
    stored: broadcast::Sender<Arc<Entry>>,
    metrics: Metrics,
    touched: Arc<Mutex<HashSet<String>>>,
    forgotten: Arc<Mutex<HashMap<String, Instant>>>,
) {
    while let Some(mut entries) = receiver.recv().await {
        while entries.len() < WRITE_BATCH {
            match receiver.try_recv() {
                Ok(more) => entries.extend(more),
                Err(_) => break,
            }
        }
        {
            // Lines of applications deleted while these waited are not stored.
            let forgotten = forgotten.lock().expect("forgotten lock");
            if !forgotten.is_empty() {
                entries.retain(|entry| !forgotten.contains_key(&entry.application_id));
            }
        }
        for entry in &mut entries {
            entry.id = uuid::Uuid::now_v7().to_string();
        }
        let count = entries.len() as u64;
        if let Err(error) = store.insert(&entries).await {
            tracing::warn!(%error, lines = count, "cannot store log lines; dropped");
            metrics.0.dropped.inc_by(count);
            continue;
        }
        metrics.0.ingested.inc_by(count);
        {
            let mut touched = touched.lock().expect("touched lock");
            for entry in &entries {
                if !touched.contains(&entry.application_id) {
                    touched.insert(entry.application_id.clone());
                }
            }
        }
        for entry in entries {
            let _ = stored.send(Arc::new(entry));
        }
    }
}

/// Bounds every application by age and, for those that got lines, by count.
async fn prune(
    store: LogStore,
    config: LogsConfig,
    metrics: Metrics,
    touched: Arc<Mutex<HashSet<String>>>,
    forgotten: Arc<Mutex<HashMap<String, Instant>>>,
) {
    let every = Duration::from_millis(config.prune_interval_ms.max(10));
    let max_age = i64::try_from(config.max_age_seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    loop {
        tokio::time::sleep(every).await;
        forgotten
            .lock()
            .expect("forgotten lock")
            .retain(|_, when| when.elapsed() < FORGET);
        match store.prune_older(now_micros().saturating_sub(max_age)).await {
            Ok(deleted) => {
                metrics.0.pruned.inc_by(deleted);
            }
            Err(error) => tracing::warn!(%error, "cannot prune old log lines"),
        }
        let applications: Vec<String> = std::mem::take(&mut *touched.lock().expect("touched lock"))
            .into_iter()
            .collect();
        for application_id in applications {
            match store
                .prune_application(&application_id, config.max_lines_per_application)
                .await
            {
                Ok(deleted) => {
                    metrics.0.pruned.inc_by(deleted);
                }
                Err(error) => tracing::warn!(%error, %application_id, "cannot prune log lines"),
            }
        }
    }
}

fn to_proto(entry: &Entry) -> pb::LogEntry {
    pb::LogEntry {
        id: entry.id.clone(),
        message: entry.message.clone(),
        timestamp: entry.timestamp,
        stream: entry.stream.clone(),
        source_id: entry.source_id.clone(),
    }
}

type FollowStream = Pin<Box<dyn Stream<Item = Result<pb::LogEntry, Status>> + Send>>;

#[tonic::async_trait]
impl Logs for LogsService {
    async fn write(
        &self,
        request: Request<Streaming<pb::WriteRequest>>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let mut batches = request.into_inner();
        let mut accepted = 0_u64;
        let mut stopping = self.stopping.clone();
        loop {
            // A producer's stream never ends by itself: end it when the server stops, so that
            // shutting down does not wait out its grace period on it.
            let batch = tokio::select! {
                batch = batches.next() => batch,
                _ = stopping.wait_for(|stop| *stop) => None,
            };
            let Some(batch) = batch else { break };
            let batch = batch?;
            self.metrics.0.dropped.inc_by(batch.dropped);
            let forgotten = self.forgotten.lock().expect("forgotten lock").clone();
            let entries: Vec<Entry> = batch
                .lines
                .into_iter()
                .filter(|line| !line.application_id.is_empty() && !forgotten.contains_key(&line.application_id))
                .map(|line| {
                    if line.message.len() > text::MAX_MESSAGE || line.cut_bytes > 0 {
                        self.metrics.0.cut.inc();
                    }
                    Entry {
                        // Given by the writer, in the order lines are stored.
                        id: String::new(),
                        message: text::message(&line.message, line.cut_bytes),
                        application_id: line.application_id,
                        source_id: line.source_id,
                        stream: line.stream,
                        timestamp: line.timestamp,
                    }
                })
                .collect();
            accepted += entries.len() as u64;
            if self.queue.send(entries).await.is_err() {
                return Err(Status::unavailable("the logs writer stopped"));
            }
        }
        Ok(Response::new(pb::WriteResponse { accepted }))
    }

    async fn list_logs(&self, request: Request<pb::ListLogsRequest>) -> Result<Response<pb::ListLogsResponse>, Status> {
        let request = request.into_inner();
        let application_id = parse_id("application_id", &request.application_id)?.to_string();
        let page = Page::new(request.page, request.page_size)?;
        let (entries, total_count) = self
            .store
            .list(&application_id, request.since, request.ascending, page)
            .await?;
        Ok(Response::new(pb::ListLogsResponse {
            logs: entries.iter().map(to_proto).collect(),
            total_count,
        }))
    }

    type FollowLogsStream = FollowStream;

    async fn follow_logs(&self, request: Request<pb::FollowLogsRequest>) -> Result<Response<FollowStream>, Status> {
        let request = request.into_inner();
        let application_id = parse_id("application_id", &request.application_id)?.to_string();
        // Subscribe first, so that nothing stored from now on is missed.
        let mut live = self.stored.subscribe();
        let subscribed_at = uuid::Uuid::now_v7().to_string();
        let store = self.store.clone();
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(async move {
            // Ids grow in the order lines are stored: the last one sent marks where the
            // follower is. With `since`, stored lines from then on come first.
            let mut last: Option<String> = (request.since > 0).then(String::new);
            let mut catch_up = last.is_some();
            let since = request.since;
            loop {
                if catch_up {
                    loop {
                        let after = last.clone().unwrap_or_default();
                        let entries = match store.after(&application_id, &after, since, 500).await {
                            Ok(entries) => entries,
                            Err(error) => {
                                let _ = sender.send(Err(Status::from(error))).await;
                                return;
                            }
                        };
                        let done = entries.len() < 500;
                        for entry in entries {
                            last = Some(entry.id.clone());
                            if sender.send(Ok(to_proto(&entry))).await.is_err() {
                                return;
                            }
                        }
                        if done {
                            break;
                        }
                    }
                    catch_up = false;
                }
                let received = tokio::select! {
                    received = live.recv() => received,
                    // The follower went away (a quiet application would otherwise keep this
                    // task forever).
                    () = sender.closed() => return,
                };
                match received {
                    Ok(entry) => {
                        let seen = last.as_ref().is_some_and(|last| entry.id <= *last);
                        if entry.application_id != application_id || seen {
                            continue;
                        }
                        last = Some(entry.id.clone());
                        if sender.send(Ok(to_proto(&entry))).await.is_err() {
                            return;
                        }
                    }
                    // Fell behind: what it missed is stored; read it from there.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        last.get_or_insert(subscribed_at.clone());
                        catch_up = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        ))))
    }

    async fn delete_application_logs(
        &self,
        request: Request<pb::DeleteApplicationLogsRequest>,
    ) -> Result<Response<pb::DeleteApplicationLogsResponse>, Status> {
        let application_id = parse_id("application_id", &request.into_inner().application_id)?.to_string();
        self.forgotten
            .lock()
            .expect("forgotten lock")
            .insert(application_id.clone(), Instant::now());
        let deleted = self.store.delete_application(&application_id).await?;
        Ok(Response::new(pb::DeleteApplicationLogsResponse { deleted }))
    }
}
