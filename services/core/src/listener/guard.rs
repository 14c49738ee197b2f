//! The request heads of one connection, read and checked before hyper sees them.
//!
//! [`Guarded`] sits between the socket and hyper. It withholds each request head until it is
//! complete and within limits, then hands it on; it follows each request body through its
//! framing (`content-length`, or chunked: the same rules as hyper's) to know where the next
//! head starts, passing body bytes on unchanged. It ends a connection that waits too long for a
//! request (silently) or for the rest of a head (with 408). A refused head is never handed on:
//! hyper sees the end of the stream, finishes what it was answering and shuts the connection
//! down, and the shutdown writes the refusal first. A body whose client stops sending while
//! the service waits for it is cut short the same way: the service sees its body end early,
//! and, unless its answer had started, what it answers is dropped for a 408.

use super::limits::{ConnectionLimits, Refusal};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a refused connection's further bytes are read and dropped after the answer, so the
/// client reads the answer rather than a reset.
const DRAIN: Duration = Duration::from_secs(1);

/// The longest chunk-size or trailer line followed; beyond it hyper refuses the body too.
const MAX_CHUNK_LINE: usize = 4096;

/// The most bytes read from the client at once.
const READ_SIZE: usize = 16 * 1024;

/// What the service side of a connection tells its reading side.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// Requests whose answer is not fully handed to hyper yet.
    count: AtomicUsize,
    /// Of those, the ones whose answer hyper has (and may be writing).
    responding: AtomicUsize,
    /// The reader waiting for the answers to finish (a refusal waits for them).
    waiting: Mutex<Option<Waker>>,
}

impl InFlight {
    /// Counts a request until the returned guard drops (with its answer's body).
    pub(super) fn begin(self: &Arc<Self>) -> Answering {
        self.count.fetch_add(1, Ordering::AcqRel);
        Answering {
            in_flight: self.clone(),
            responded: false,
        }
    }

    fn busy(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Returns whether hyper has an answer it may have started writing.
    fn responding(&self) -> bool {
        self.responding.load(Ordering::Acquire) > 0
    }
}

/// A request being answered; dropped with its answer.
#[derive(Debug)]
pub(super) struct Answering {
    in_flight: Arc<InFlight>,
    /// The service has answered: hyper has the answer.
    responded: bool,
}

impl Answering {
    /// Notes that the service answered: hyper may write the answer from now on.
    pub(super) fn respond(&mut self) {
        if !self.responded {
            self.responded = true;
            self.in_flight.responding.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if self.responded {
            self.in_flight.responding.fetch_sub(1, Ordering::AcqRel);
        }
        if self.in_flight.count.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(waker) = self.in_flight.waiting.lock().expect("not poisoned").take()
        {
            waker.wake();
        }
    }
}

/// Where the reader is in the stream of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Reading a request head, withheld until it is complete and checked.
    Head,
    /// This many bytes of a body with a length remain.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// No longer followed (hyper refuses what comes): bytes pass as they are.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The chunk-size line: the size read so far, whether its digits ended, the line's length.
    Size {
        size: u64,
        digits: bool,
        ended: bool,
        line: usize,
    },
    /// This many bytes of chunk data remain.
    Data(u64),
    /// The line end after chunk data.
    DataEnd,
    /// The trailer section, ended by an empty line.
    Trailers { line: usize },
}

/// Which deadline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Off,
    /// No request in progress and no byte of the next one.
    Idle,
    /// Part of a head has arrived.
    Head,
    /// A body is being read.
    Body,
    /// A refusal was written: the rest is being dropped.
    Drain,
}

/// A client connection whose request heads are checked before hyper reads them.
#[derive(Debug)]
pub(super) struct Guarded<IO> {
    io: IO,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    body_stall_timeout: Duration,
    max_uri_bytes: usize,
    max_header_bytes: usize,
    max_headers: usize,
    in_flight: Arc<InFlight>,
    framing: Framing,
    /// Read, not yet followed (the start of a head).
    pending: Vec<u8>,
    /// How far `pending` was searched for the end of a head's lines (so a head sent a byte at a
    /// time costs no more than one sent at once).
    scanned: usize,
    /// The request line of the head in `pending` is complete.
    lined: bool,
    /// Followed, for hyper to read.
    ready: Vec<u8>,
    /// The client closed its side.
    eof: bool,
    /// The answer to write before the connection shuts down, and how much of it is written.
    refusal: Option<(Vec<u8>, usize)>,
    /// Hyper is told the stream ended (a refusal, an idle connection or a stalled body).
    ended: bool,
    /// A body was cut before its answer started: what hyper writes is that answer, which the
    /// refusal replaces.
    replaced: bool,
    /// The last read of a body found nothing to read: the stall deadline runs.
    waiting: bool,
    timer: Timer,
    deadline: Pin<Box<Sleep>>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Guarded<IO> {
    /// Returns `io` guarded by `limits`; `in_flight` counts the requests its service answers.
    pub(super) fn new(io: IO, limits: &ConnectionLimits, in_flight: Arc<InFlight>) -> Self {
        Self {
            io,
            header_read_timeout: limits.header_read_timeout(),
            idle_timeout: limits.idle_timeout(),
            body_stall_timeout: limits.body_stall_timeout(),
            max_uri_bytes: limits.max_uri_bytes,
            max_header_bytes: limits.max_header_bytes,
            max_headers: limits.max_headers,
            in_flight,
            framing: Framing::Head,
            pending: Vec::new(),
            scanned: 0,
            lined: false,
            ready: Vec::new(),
            eof: false,
            refusal: None,
            ended: false,
            replaced: false,
            waiting: false,
            timer: Timer::Off,
            deadline: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    fn refuse(&mut self, refusal: &Refusal) {
        tracing::debug!(?refusal, "connection refused");
        self.refusal = Some((refusal.to_http(), 0));
        self.ended = true;
        self.pending.clear();
        self.framing = Framing::Opaque;
    }

    /// Arms the deadline that applies now, and returns whether it passed (a body's deadline
    /// is judged after a read, by [`Self::body_stalled`]).
    fn deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        let wanted = match self.framing {
            Framing::Head if !self.pending.is_empty() => Timer::Head,
            Framing::Head if !self.in_flight.busy() => Timer::Idle,
            Framing::Length(_) | Framing::Chunked(_) => Timer::Body,
            _ => Timer::Off,
        };
        if wanted != self.timer {
            self.timer = wanted;
            self.waiting = false;
            let after = match wanted {
                Timer::Head => self.header_read_timeout,
                Timer::Idle => self.idle_timeout,
                Timer::Body | Timer::Off | Timer::Drain => return false,
            };
            self.deadline.as_mut().reset(Instant::now() + after);
        }
        matches!(self.timer, Timer::Head | Timer::Idle) && self.deadline.as_mut().poll(cx).is_ready()
    }

    /// Follows the wait for a body's next bytes, after a read that found some (`pending`
    /// false) or none: returns whether the client has sent nothing for `body_stall_timeout`
    /// since the service last asked for more and found nothing. Only reads count, so a service
    /// that takes its time between two parts of a body never makes its client late.
    fn body_stalled(&mut self, cx: &mut Context<'_>, pending: bool) -> bool {
        if self.timer != Timer::Body || !pending {
            self.waiting = false;
            return false;
        }
        if !self.waiting {
            self.waiting = true;
            self.deadline.as_mut().reset(Instant::now() + self.body_stall_timeout);
        }
        self.deadline.as_mut().poll(cx).is_ready()
    }

    /// Ends the request whose body stalled: the service sees its body end early. Unless its
    /// answer had started, that answer is dropped and a 408 sent instead; else the connection
    /// closes once the answer is written.
    /// Counts `read` bytes handed on of a body part that had `remaining` left.
    fn passed(&mut self, read: usize, remaining: u64) {
        let left = remaining.saturating_sub(read as u64);
        self.framing = match self.framing {
            Framing::Length(_) if left == 0 => Framing::Head,
            Framing::Length(_) => Framing::Length(left),
            Framing::Chunked(_) if left == 0 => Framing::Chunked(Chunk::DataEnd),
            Framing::Chunked(_) => Framing::Chunked(Chunk::Data(left)),
            other => other,
        };
    }

    /// The end of what hyper reads, once the connection is ended: after the answer in
    /// progress, if a refusal is to follow it.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.refusal.is_some() && !self.replaced && self.in_flight.busy() {
            // Let hyper finish the answer in progress before it sees the end.
            *self.in_flight.waiting.lock().expect("not poisoned") = Some(cx.waker().clone());
            if self.in_flight.busy() {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn cut_body(&mut self) {
        let timeout = self.body_stall_timeout;
        if self.in_flight.responding() {
            tracing::debug!(timeout_ms = timeout.as_millis(), "request body stalled mid-answer");
            self.ended = true;
            self.framing = Framing::Opaque;
        } else {
            self.refuse(&Refusal::SlowBody { timeout });
            self.replaced = true;
        }
    }

    /// Follows the bytes of `pending` as far as they go.
    fn follow(&mut self) {
        while !self.pending.is_empty() && !self.ended {
            let taken = match self.framing {
                Framing::Head => match self.head() {
                    Some(taken) => taken,
                    None => return,
                },
                Framing::Length(remaining) => {
                    let taken = self.pending.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let left = remaining - taken as u64;
                    self.framing = if left == 0 {
                        Framing::Head
                    } else {
                        Framing::Length(left)
                    };
                    taken
                }
                Framing::Chunked(chunk) => self.chunked(chunk),
                Framing::Opaque => self.pending.len(),
            };
            self.ready.extend(self.pending.drain(..taken));
            self.scanned = 0;
            self.lined = false;
        }
    }

    /// Checks the head at the start of `pending`: returns its length once it is complete and
    /// allowed (and sets the framing of its body), `None` while it is incomplete or refused.
    fn head(&mut self) -> Option<usize> {
        if !self.lined {
            // Empty lines before a request line are ignored (RFC 9112, 2.2), as hyper does.
            let blank = self
                .pending
                .iter()
                .take_while(|byte| matches!(byte, b'\r' | b'\n'))
                .count();
            self.pending.drain(..blank);
            self.scanned = self.scanned.saturating_sub(blank);
            if self.pending.is_empty() {
                return None;
            }
        }
        let from = self.scanned.saturating_sub(3);
        let complete = self.pending[from..].windows(2).any(|pair| pair == b"\n\n")
            || self.pending[from..].windows(4).any(|quad| quad == b"\r\n\r\n");
        let newly_lined = !self.lined && self.pending[self.scanned..].contains(&b'\n');
        self.lined |= newly_lined;
        let first_line = self.lined;
        self.scanned = self.pending.len();
        if !complete {
            if self.pending.len() > self.max_header_bytes {
                let refusal = if first_line {
                    Refusal::HeadTooLarge {
                        limit: self.max_header_bytes,
                    }
                } else {
                    Refusal::UriTooLong {
                        limit: self.max_uri_bytes,
                    }
                };
                self.refuse(&refusal);
            } else if newly_lined {
                // The request line is in: refuse a malformed one now, not once headers follow.
                let mut headers = vec![httparse::EMPTY_HEADER; self.max_headers];
                if let Err(error) = httparse::Request::new(&mut headers).parse(&self.pending) {
                    let refusal = self.parse_refusal(error);
                    self.refuse(&refusal);
                }
            }
            return None;
        }
        match self.check_head() {
            Ok((length, framing)) => {
                self.framing = framing;
                Some(length)
            }
            Err(refusal) => {
                self.refuse(&refusal);
                None
            }
        }
    }

    fn parse_refusal(&self, error: httparse::Error) -> Refusal {
        match error {
            httparse::Error::TooManyHeaders => Refusal::TooManyHeaders {
                limit: self.max_headers,
            },
            error => Refusal::Malformed(format!("the request head does not parse: {error}")),
        }
    }

    /// Parses the complete head at the start of `pending` and returns its length and the
    /// framing of its body.
    fn check_head(&self) -> Result<(usize, Framing), Refusal> {
        let mut headers = vec![httparse::EMPTY_HEADER; self.max_headers];
        let mut request = httparse::Request::new(&mut headers);
        let length = match request.parse(&self.pending) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => {
                return Err(Refusal::Malformed("the request head is incomplete".to_owned()));
            }
            Err(error) => return Err(self.parse_refusal(error)),
        };
        let target = request.path.unwrap_or_default();
        if target.len() > self.max_uri_bytes {
            return Err(Refusal::UriTooLong {
                limit: self.max_uri_bytes,
            });
        }
        if length > self.max_header_bytes {
            return Err(Refusal::HeadTooLarge {
                limit: self.max_header_bytes,
            });
        }
        if http::Uri::try_from(target).is_err() {
            return Err(Refusal::Malformed("the request target is not a valid URI".to_owned()));
        }
        let framing = body_framing(request.version == Some(0), request.headers)?;
        Ok((length, framing))
    }

    /// Follows a chunked body from `chunk`; returns how many bytes of `pending` it took.
    fn chunked(&mut self, mut chunk: Chunk) -> usize {
        let mut taken = 0;
        while taken < self.pending.len() {
            if let Chunk::Data(remaining) = chunk {
                let data = (self.pending.len() - taken).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                taken += data;
                let left = remaining - data as u64;
                chunk = if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) };
                continue;
            }
            let byte = self.pending[taken];
            taken += 1;
            chunk = match (chunk, byte) {
                (Chunk::Size { size, digits, line, .. }, b'\n') => {
                    if !digits || line > MAX_CHUNK_LINE {
                        self.framing = Framing::Opaque;
                        return taken;
                    }
                    if size == 0 {
                        Chunk::Trailers { line: 0 }
                    } else {
                        Chunk::Data(size)
                    }
                }
                (
                    Chunk::Size {
                        size,
                        ended: false,
                        line,
                        ..
                    },
                    byte,
                ) if byte.is_ascii_hexdigit() => {
                    let digit = u64::from(char::from(byte).to_digit(16).expect("a hex digit"));
                    let Some(size) = size.checked_mul(16).and_then(|size| size.checked_add(digit)) else {
                        self.framing = Framing::Opaque;
                        return taken;
                    };
                    Chunk::Size {
                        size,
                        digits: true,
                        ended: false,
                        line: line + 1,
                    }
                }
                (Chunk::Size { size, digits, line, .. }, _) => Chunk::Size {
                    size,
                    digits,
                    ended: true,
                    line: line + 1,
                },
                (Chunk::DataEnd, b'\n') => Chunk::Size {
                    size: 0,
                    digits: false,
                    ended: false,
                    line: 0,
                },
                (Chunk::DataEnd, _) => Chunk::DataEnd,
                (Chunk::Trailers { line: 0 }, b'\n') => {
                    self.framing = Framing::Head;
                    return taken;
                }
                (Chunk::Trailers { .. }, b'\n') => Chunk::Trailers { line: 0 },
                (Chunk::Trailers { line }, b'\r') => Chunk::Trailers { line },
                (Chunk::Trailers { line }, _) if line > MAX_CHUNK_LINE => {
                    self.framing = Framing::Opaque;
                    return taken;
                }
                (Chunk::Trailers { line }, _) => Chunk::Trailers { line: line + 1 },
                (Chunk::Data(_), _) => unreachable!("data is taken above"),
            };
        }
        self.framing = Framing::Chunked(chunk);
        taken
    }
}

/// Returns how the body of a request with `headers` is framed, as hyper frames it: chunked
/// when the last transfer coding is `chunked` (whatever `content-length` says), else by
/// `content-length`, else empty.
fn body_framing(http_1_0: bool, headers: &[httparse::Header<'_>]) -> Result<Framing, Refusal> {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if http_1_0 {
                return Err(Refusal::Malformed("HTTP/1.0 has no transfer-encoding".to_owned()));
            }
            let last = header.value.rsplit(|byte| *byte == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.trim().parse::<u64>().ok())
                .ok_or_else(|| Refusal::Malformed("content-length is not a number".to_owned()))?;
            if length.is_some_and(|length| length != value) {
                return Err(Refusal::Malformed(
                    "content-length is given twice, differently".to_owned(),
                ));
            }
            length = Some(value);
        }
    }
    match (chunked, length) {
        (Some(true), _) => Ok(Framing::Chunked(Chunk::Size {
            size: 0,
            digits: false,
            ended: false,
            line: 0,
        })),
        (Some(false), _) => Err(Refusal::Malformed(
            "the last transfer coding must be chunked".to_owned(),
        )),
        (None, Some(length)) if length > 0 => Ok(Framing::Length(length)),
        (None, _) => Ok(Framing::Head),
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let given = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..given]);
                this.ready.drain(..given);
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return this.poll_end(cx);
            }
            if this.eof {
                // A head cut short by the client is never handed on.
                return Poll::Ready(Ok(()));
            }
            if this.deadline_passed(cx) {
                match this.timer {
                    Timer::Head => {
                        let timeout = this.header_read_timeout;
                        this.refuse(&Refusal::SlowHead { timeout });
                    }
                    _ => this.ended = true,
                }
                continue;
            }
            // A body with a known remainder is read straight into hyper's buffer.
            let direct = match this.framing {
                Framing::Length(remaining) | Framing::Chunked(Chunk::Data(remaining)) => Some(remaining),
                Framing::Opaque => Some(u64::MAX),
                _ => None,
            };
            // Read into a buffer left uninitialized: hyper's own is handed over uninitialized
            // too, and zeroing either on every read costs more than copying what was read.
            let mut scratch = [MaybeUninit::<u8>::uninit(); READ_SIZE];
            if let Some(remaining) = direct {
                let limit = buf
                    .remaining()
                    .min(READ_SIZE)
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                let mut read = ReadBuf::uninit(&mut scratch[..limit]);
                let polled = Pin::new(&mut this.io).poll_read(cx, &mut read);
                if this.body_stalled(cx, polled.is_pending()) {
                    this.cut_body();
                    continue;
                }
                std::task::ready!(polled)?;
                buf.put_slice(read.filled());
                let read = read.filled().len();
                if read == 0 {
                    this.eof = true;
                    return Poll::Ready(Ok(()));
                }
                this.passed(read, remaining);
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::uninit(&mut scratch);
            let polled = Pin::new(&mut this.io).poll_read(cx, &mut read);
            if this.body_stalled(cx, polled.is_pending()) {
                this.cut_body();
                continue;
            }
            std::task::ready!(polled)?;
            if read.filled().is_empty() {
                this.eof = true;
                continue;
            }
            this.pending.extend_from_slice(read.filled());
            this.follow();
        }
    }
}

/// hyper's writes: dropped while they are an answer the refusal replaces.
impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.replaced {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.replaced {
            return Poll::Ready(Ok(bufs.iter().map(|buf| buf.len()).sum()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Writes the refusal, if any, then shuts the connection down; after a refusal, reads and
    /// drops what the client still sends for a moment, so it reads the answer, not a reset.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some((answer, written)) = &mut this.refusal else {
            return Pin::new(&mut this.io).poll_shutdown(cx);
        };
        while *written < answer.len() {
            let wrote = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, &answer[*written..]))?;
            if wrote == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += wrote;
        }
        if this.timer != Timer::Drain {
            std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.timer = Timer::Drain;
            this.deadline.as_mut().reset(Instant::now() + DRAIN);
        }
        let mut scratch = [0u8; 8192];
        loop {
            if this.eof || this.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {}
                Poll::Ready(_) => this.eof = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Returns what hyper would read of `sent`, and what the client reads back once the
    /// connection shuts down.
    async fn through(sent: &[u8]) -> (Vec<u8>, String) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut guarded = Guarded::new(server, &ConnectionLimits::default(), Arc::default());
        client.write_all(sent).await.unwrap();
        client.shutdown().await.unwrap();
        let mut handed = Vec::new();
        guarded.read_to_end(&mut handed).await.unwrap();
        guarded.shutdown().await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        (handed, answer)
    }

    #[tokio::test]
    async fn bodies_pass_unchanged_and_the_head_after_them_is_checked() {
        let good = b"POST /a HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n5;x=y\r\nhello\r\n3\r\n\r\n\r\r\n0\r\nt: 1\r\n\r\n\
            PUT /b HTTP/1.1\r\ncontent-length: 15\r\n\r\nNOT\r\n\r\nHTTP/1.1\
            GET /c HTTP/1.1\r\n\r\n";
        let mut sent = good.to_vec();
        sent.extend_from_slice(b"THIS IS NOT HTTP\r\n\r\n");
        let (handed, answer) = through(&sent).await;
        assert_eq!(String::from_utf8_lossy(&handed), String::from_utf8_lossy(good));
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.ends_with(r#""type":"invalid_arguments"}"#), "{answer}");
    }

    #[tokio::test]
    async fn heads_over_the_limits_are_never_handed_on() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        let (handed, answer) = through(long.as_bytes()).await;
        assert!(handed.is_empty());
        assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
        let many: String = (0..101).map(|index| format!("x-{index}: 1\r\n")).collect();
        let (handed, answer) = through(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).await;
        assert!(handed.is_empty());
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        let smuggled = b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab";
        let (handed, answer) = through(smuggled).await;
        assert!(handed.is_empty());
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    }

    #[tokio::test]
    async fn empty_lines_before_a_head_are_dropped_and_a_head_may_come_a_byte_at_a_time() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut guarded = Guarded::new(server, &ConnectionLimits::default(), Arc::default());
        let head = b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n";
        let writing = tokio::spawn(async move {
            client.write_all(b"\r\n\r\n").await.unwrap();
            for byte in head {
                client.write_all(&[*byte]).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            client.shutdown().await.unwrap();
            client
        });
        let mut handed = Vec::new();
        guarded.read_to_end(&mut handed).await.unwrap();
        drop(writing.await.unwrap());
        assert_eq!(handed, head);
    }

    #[tokio::test]
    async fn a_body_that_stalls_ends_early_and_its_answer_becomes_a_408() {
        let limits = ConnectionLimits {
            body_stall_timeout_ms: 200,
            ..ConnectionLimits::default()
        };
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let in_flight = Arc::new(InFlight::default());
        let mut guarded = Guarded::new(server, &limits, in_flight.clone());
        let sent = b"PUT /a HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc";
        client.write_all(sent).await.unwrap();
        let _answering = in_flight.begin();
        let started = Instant::now();
        let mut handed = Vec::new();
        guarded.read_to_end(&mut handed).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(handed, sent);
        // What the service answers to its cut body is replaced.
        guarded.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.unwrap();
        guarded.shutdown().await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(answer.contains("the request body stopped arriving"), "{answer}");
    }

    #[tokio::test]
    async fn a_body_that_keeps_coming_is_never_cut() {
        let limits = ConnectionLimits {
            body_stall_timeout_ms: 200,
            ..ConnectionLimits::default()
        };
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut guarded = Guarded::new(server, &limits, Arc::default());
        let writing = tokio::spawn(async move {
            client
                .write_all(b"PUT /a HTTP/1.1\r\ncontent-length: 8\r\n\r\n")
                .await
                .unwrap();
            for byte in b"abcdefgh" {
                tokio::time::sleep(Duration::from_millis(100)).await;
                client.write_all(&[*byte]).await.unwrap();
            }
            client
        });
        // Eight parts, 800 ms in all, each within the timeout: all of it goes in.
        let mut handed = vec![0; 46];
        guarded.read_exact(&mut handed).await.unwrap();
        assert!(handed.ends_with(b"abcdefgh"), "{}", String::from_utf8_lossy(&handed));
        let _client = writing.await.unwrap();
        assert!(!guarded.ended && guarded.refusal.is_none());
    }

    #[tokio::test]
    async fn a_head_cut_short_by_the_client_is_dropped_without_an_answer() {
        let (handed, answer) = through(b"GET / HTTP/1.1\r\nhost: x").await;
        assert!(handed.is_empty());
        assert!(answer.is_empty(), "{answer}");
    }
}
