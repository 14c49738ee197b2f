//! What instances print: each line goes to the runner's broadcast (for `StreamOutput`), to a
//! kept tail (to explain a failed start) and to the logs service, whichever backend runs the
//! instance.

use crate::error::LastOutput;
use nuage_clients::logsink::LogSink;
use nuage_proto::logs::v1::Line;
use nuage_proto::runner::v1::{OutputLine, Spec, Stream};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::broadcast;

/// Lines of output kept per instance to explain why it failed.
const KEPT_LINES: usize = 20;
/// Longest output line passed on; the rest is cut.
const MAX_LINE: usize = 64 * 1024;

/// Where an instance's lines go beyond the broadcast: the logs service, at most `rate` lines
/// a second per stream (a burst of as many), so that one flooding instance cannot crowd out
/// the lines of others; lines over the rate are dropped and counted.
#[derive(Debug, Clone)]
pub struct LogShipping {
    /// The sink to the logs service.
    pub sink: LogSink,
    /// Lines per second per stream of an instance.
    pub rate: u32,
}

/// A token bucket: `rate` lines a second, bursts of `rate`.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            tokens: rate,
            rate,
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Reads the next line into `line` (without its newline), keeping at most [`MAX_LINE`] bytes
/// of it; returns how many bytes were cut, or `None` at the end of the stream.
pub(crate) async fn next_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<Option<u64>> {
    line.clear();
    let mut cut = 0_u64;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((!line.is_empty() || cut > 0).then_some(cut));
        }
        let newline = available.iter().position(|byte| *byte == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let take = chunk.len().min(MAX_LINE.saturating_sub(line.len()));
        line.extend_from_slice(&chunk[..take]);
        cut += (chunk.len() - take) as u64;
        let consumed = newline.map_or(available.len(), |at| at + 1);
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(Some(cut));
        }
    }
}

/// Reads `stream` line by line into the broadcast, the kept tail and the logs service.
pub fn pump(
    reader: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    stream: Stream,
    spec: &Spec,
    instance_id: &str,
    output: broadcast::Sender<OutputLine>,
    tail: Arc<Mutex<VecDeque<String>>>,
    logs: Option<LogShipping>,
) {
    let application_id = spec.application_id.clone();
    let instance_id = instance_id.to_owned();
    tokio::spawn(async move {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let mut buffer = Vec::new();
        let mut bucket = logs.as_ref().map(|logs| Bucket::new(logs.rate));
        let stream_name = match stream {
            Stream::Stderr => "stderr",
            _ => "stdout",
        };
        // Reading never waits on anyone: the instance is never held up by its own output.
        while let Ok(Some(cut)) = next_line(&mut reader, &mut buffer).await {
            let timestamp = nuage_core::clock::now_micros();
            if let (Some(logs), Some(bucket)) = (&logs, bucket.as_mut()) {
                if bucket.take() {
                    logs.sink.push_line(Line {
                        application_id: application_id.clone(),
                        source_id: instance_id.clone(),
                        stream: stream_name.to_owned(),
                        timestamp,
                        message: buffer.clone(),
                        cut_bytes: cut,
                    });
                } else {
                    logs.sink.count_dropped(1);
                }
            }
            let mut message = String::from_utf8_lossy(&buffer).into_owned();
            if cut > 0 {
                message.push_str(" [line cut at 64 KiB]");
            }
            {
                let mut tail = tail.lock().expect("tail lock");
                if tail.len() == KEPT_LINES {
                    tail.pop_front();
                }
                tail.push_back(message.clone());
            }
            if output.receiver_count() > 0 {
                let _ = output.send(OutputLine {
                    application_id: application_id.clone(),
                    instance_id: instance_id.clone(),
                    stream: stream.into(),
                    message,
                    timestamp,
                });
            }
        }
    });
}

/// The kept tail of an instance's output, to explain why it failed.
pub type Tail = Arc<Mutex<VecDeque<String>>>;

/// Returns the lines kept in `tail`.
pub fn last_output(tail: &Tail) -> LastOutput {
    LastOutput(tail.lock().expect("tail lock").iter().cloned().collect())
}
