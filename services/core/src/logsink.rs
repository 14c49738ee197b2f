//! The sending side of logs: services that produce lines (runner, builder, crons, router) push
//! them into a [`LogSink`], which never blocks: lines go into a bounded buffer, a background
//! task streams them in batches to the logs service (`Write`), and a line that finds the
//! buffer full is dropped and counted; the count travels with the next batch so the logs
//! service shows it on `/metrics`.

use crate::clock::now_micros;
use crate::transport::Authed;
use nuage_proto::logs::v1::logs_client::LogsClient;
use nuage_proto::logs::v1::{Line, WriteRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most lines in one batch.
const BATCH: usize = 1000;
/// How long a batch waits for more lines once it has one.
const LINGER: Duration = Duration::from_millis(20);

/// A handle to push log lines; clones share the buffer.
#[derive(Debug, Clone)]
pub struct LogSink {
    lines: mpsc::Sender<Line>,
    dropped: Arc<AtomicU64>,
}

impl LogSink {
    /// Returns a sink buffering up to `capacity` lines, shipped to `client` by a task it
    /// spawns (reconnecting whenever the logs service goes away).
    pub fn start(client: LogsClient<Authed>, capacity: usize) -> Self {
        let (lines, receiver) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(ship(client, receiver, dropped.clone()));
        Self { lines, dropped }
    }

    /// Pushes a line stamped now; drops it (counted) if the buffer is full.
    pub fn push(&self, application_id: &str, source_id: &str, stream: &str, message: impl Into<Vec<u8>>) {
        self.push_line(Line {
            application_id: application_id.to_owned(),
            source_id: source_id.to_owned(),
            stream: stream.to_owned(),
            timestamp: now_micros(),
            message: message.into(),
            cut_bytes: 0,
        });
    }

    /// Pushes a line; drops it (counted) if the buffer is full.
    pub fn push_line(&self, line: Line) {
        if self.lines.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts lines its producer dropped before they reached the sink (a rate limit).
    pub fn count_dropped(&self, lines: u64) {
        self.dropped.fetch_add(lines, Ordering::Relaxed);
    }

    /// Lines dropped and not yet reported to the logs service.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn ship(client: LogsClient<Authed>, mut receiver: mpsc::Receiver<Line>, dropped: Arc<AtomicU64>) {
    let mut pending: Option<Vec<Line>> = None;
    loop {
        let (batches, stream) = mpsc::channel::<WriteRequest>(4);
        let mut call = client.clone();
        let rpc = tokio::spawn(async move { call.write(tokio_stream::wrappers::ReceiverStream::new(stream)).await });
        loop {
            let lines = match pending.take() {
                Some(lines) => lines,
                None => match next_batch(&mut receiver).await {
                    Some(lines) => lines,
                    // Every sink is gone: the process is stopping.
                    None => return,
                },
            };
            let request = WriteRequest {
                lines,
                dropped: dropped.swap(0, Ordering::Relaxed),
            };
            if let Err(failed) = batches.send(request).await {
                // The stream ended (the logs service went away): keep the batch for the next.
                let request = failed.0;
                dropped.fetch_add(request.dropped, Ordering::Relaxed);
                pending = Some(request.lines);
                break;
            }
        }
        if let Ok(Err(status)) = rpc.await {
            tracing::debug!(%status, "the logs stream ended; reconnecting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for a line, then gathers what else arrives within [`LINGER`], up to [`BATCH`].
async fn next_batch(receiver: &mut mpsc::Receiver<Line>) -> Option<Vec<Line>> {
    let first = receiver.recv().await?;
    let mut lines = Vec::with_capacity(64);
    lines.push(first);
    let deadline = tokio::time::Instant::now() + LINGER;
    while lines.len() < BATCH {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(line)) => lines.push(line),
            Ok(None) | Err(_) => break,
        }
    }
    Some(lines)
}
