//! The sending side of logs: services that produce lines (runner, builder, crons, router) push
//! them into a [`LogSink`], which never blocks: lines go into a bounded buffer, a background
//! task streams them in batches to the logs service (`Write`), and a line that finds the
//! buffer full is dropped and counted; the count travels with the next batch so the logs
//! service shows it on `/metrics`.

use nuage_core::clock::now_micros;
use nuage_core::transport::Authed;
use nuage_proto::logs::v1::logs_client::LogsClient;
use nuage_proto::logs::v1::{Line, WriteRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most lines in one batch.
const BATCH: usize = 1000;
/// Most message bytes in one batch (well under gRPC's 4 MiB message limit).
const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// How long a batch waits for more lines once it has one.
const LINGER: Duration = Duration::from_millis(20);
/// How often drops are reported when no line comes.
const IDLE_REPORT: Duration = Duration::from_secs(1);

/// A handle to push log lines; clones share the buffer.
#[derive(Debug, Clone)]
pub struct LogSink {
    lines: mpsc::Sender<Line>,
    dropped: Arc<AtomicU64>,
    /// Message bytes buffered, and the most allowed.
    buffered: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl LogSink {
    /// Returns a sink buffering up to `capacity` lines and `max_bytes` of messages, shipped
    /// to `client` by a task it spawns (reconnecting whenever the logs service goes away).
    pub fn start(client: LogsClient<Authed>, capacity: usize, max_bytes: usize) -> Self {
        let (lines, receiver) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let buffered = Arc::new(AtomicUsize::new(0));
        tokio::spawn(ship(client, receiver, dropped.clone(), buffered.clone()));
        Self {
            lines,
            dropped,
            buffered,
            max_bytes,
        }
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
        let size = line.message.len();
        if self.buffered.fetch_add(size, Ordering::Relaxed) + size > self.max_bytes {
            self.buffered.fetch_sub(size, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.lines.try_send(line).is_err() {
            self.buffered.fetch_sub(size, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts lines its producer dropped before they reached the sink (a rate limit).
    pub fn count_dropped(&self, lines: u64) {
        self.dropped.fetch_add(lines, Ordering::Relaxed);
    }
}

async fn ship(
    client: LogsClient<Authed>,
    mut receiver: mpsc::Receiver<Line>,
    dropped: Arc<AtomicU64>,
    buffered: Arc<AtomicUsize>,
) {
    let mut pending: Option<Vec<Line>> = None;
    loop {
        let (batches, stream) = mpsc::channel::<WriteRequest>(4);
        let mut call = client.clone();
        let rpc = tokio::spawn(async move { call.write(tokio_stream::wrappers::ReceiverStream::new(stream)).await });
        loop {
            let lines = match pending.take() {
                Some(lines) => lines,
                None => match next_batch(&mut receiver, &buffered).await {
                    Some(lines) => lines,
                    // Every sink is gone: the process is stopping.
                    None => return,
                },
            };
            if lines.is_empty() && dropped.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let request = WriteRequest {
                lines,
                dropped: dropped.swap(0, Ordering::Relaxed),
            };
            if let Err(failed) = batches.send(request).await {
                // The stream ended (the logs service went away): keep the batch for the next.
                // (Batches it had taken but not stored are lost with it.)
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

/// Waits for a line, then gathers what else arrives within [`LINGER`], up to [`BATCH`] lines
/// and [`BATCH_BYTES`]; an empty batch after [`IDLE_REPORT`] without a line (to report drops).
async fn next_batch(receiver: &mut mpsc::Receiver<Line>, buffered: &AtomicUsize) -> Option<Vec<Line>> {
    let first = match tokio::time::timeout(IDLE_REPORT, receiver.recv()).await {
        Ok(line) => line?,
        Err(_) => return Some(Vec::new()),
    };
    let mut bytes = first.message.len();
    let mut lines = Vec::with_capacity(64);
    lines.push(first);
    let deadline = tokio::time::Instant::now() + LINGER;
    while lines.len() < BATCH && bytes < BATCH_BYTES {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(line)) => {
                bytes += line.message.len();
                lines.push(line);
            }
            Ok(None) | Err(_) => break,
        }
    }
    buffered.fetch_sub(bytes, Ordering::Relaxed);
    Some(lines)
}
