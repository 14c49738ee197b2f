//! How nuage's HTTP/1.1 listeners (the REST gateway, the router's public and internal
//! listeners) hold their client connections against slow and hostile clients.
//!
//! hyper serves each connection, but every request head is read and checked first
//! ([`guard`]): it must arrive within `header_read_timeout_ms` of its first byte (else 408), a
//! body being read may not go `body_stall_timeout_ms` without a byte (else 408), a
//! connection with no request in progress is closed after `idle_timeout_seconds`, a request
//! target over `max_uri_bytes` gets 414, a head over `max_header_bytes` or `max_headers` gets
//! 431 and one that does not parse gets 400. hyper's own answers to those have empty bodies;
//! these carry core's Scaleway body ([`ErrorResponse`](crate::error::ErrorResponse)), as every
//! other error of nuage. A listener serves at most `max_connections` at once ([`Gate`]); one
//! more is answered 503 and closed, as is one more from a client that holds
//! `max_connections_per_client` (an address, or an IPv6 /64). The gRPC listener, which tonic
//! serves, has a [`Gate`] too, and a deadline for the opening of each connection, the HTTP/2
//! client preface and the acknowledgement of the server's settings ([`Gate::admitted`]), so
//! that peers which connect and say nothing, or stop after the preface, cannot keep its places.

mod guard;
mod limits;
mod preface;

pub use limits::{ConnectionLimits, Refusal};

use guard::{Answering, Guarded, InFlight};
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use preface::Prefaced;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

/// A place held for one connection (and counted against its client); it frees when it drops.
#[derive(Debug)]
pub struct Permit {
    _place: OwnedSemaphorePermit,
    _client: Option<ClientPlace>,
}

/// One of the places a client holds on a listener.
#[derive(Debug)]
struct ClientPlace {
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    client: IpAddr,
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut clients = self.clients.lock().expect("not poisoned");
        if let Some(held) = clients.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

/// The client a connection from `peer` counts against: its IPv4 address, or the /64 of its
/// IPv6 address (a host is given a /64, and picks any address in it).
fn client_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

/// The places of one listener: at most `max_connections` connections are served at once, at
/// most `max_connections_per_client` of them for one client.
#[derive(Debug, Clone)]
pub struct Gate {
    places: Arc<Semaphore>,
    limit: usize,
    per_client: usize,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Gate {
    /// Returns the gate of a listener with `limits`.
    pub fn new(limits: &ConnectionLimits) -> Self {
        Self {
            places: Arc::new(Semaphore::new(limits.max_connections)),
            limit: limits.max_connections,
            per_client: limits.max_connections_per_client,
            clients: Arc::default(),
        }
    }

    /// Returns the connections of `incoming` that find a place, each holding it until it drops
    /// (for an HTTP/2 listener that tonic serves); the others are answered 503 and closed. A
    /// connection that has not sent its whole HTTP/2 client preface and acknowledged the
    /// server's settings within `preface_timeout` of its acceptance fails its next read, which
    /// ends it.
    pub fn admitted<E>(
        self,
        incoming: impl Stream<Item = Result<TcpStream, E>>,
        preface_timeout: std::time::Duration,
    ) -> impl Stream<Item = Result<Placed, E>> {
        incoming.filter_map(move |accepted| match accepted {
            Ok(stream) => self.admit(stream).map(|(stream, place)| {
                Ok(Placed {
                    stream: Prefaced::new(stream, preface_timeout),
                    _place: place,
                })
            }),
            Err(error) => Some(Err(error)),
        })
    }

    /// Returns `stream` with the place it holds while it is served; when every place is
    /// taken, or every place its client may hold, answers it 503 and closes it (in a task of
    /// its own) and returns `None`.
    pub fn admit(&self, stream: TcpStream) -> Option<(TcpStream, Permit)> {
        let client = match stream.peer_addr() {
            Ok(peer) if self.per_client < self.limit => match self.client_place(client_of(peer.ip())) {
                Ok(place) => Some(place),
                Err(client) => {
                    tracing::warn!(
                        limit = self.per_client,
                        %client,
                        "connection refused: its client holds every place it may"
                    );
                    let answer = Refusal::ClientOverloaded { limit: self.per_client }.to_http();
                    tokio::spawn(answer_and_close(stream, answer));
                    return None;
                }
            },
            _ => None,
        };
        match self.places.clone().try_acquire_owned() {
            Ok(place) => Some((
                stream,
                Permit {
                    _place: place,
                    _client: client,
                },
            )),
            Err(_) => {
                tracing::warn!(limit = self.limit, "connection refused: every place is taken");
                let answer = Refusal::Overloaded { limit: self.limit }.to_http();
                tokio::spawn(answer_and_close(stream, answer));
                None
            }
        }
    }

    /// Counts one more place for `client`, unless it holds as many as it may (then returns
    /// the client).
    fn client_place(&self, client: IpAddr) -> Result<ClientPlace, IpAddr> {
        let mut clients = self.clients.lock().expect("not poisoned");
        let held = clients.entry(client).or_insert(0);
        if *held >= self.per_client {
            return Err(client);
        }
        *held += 1;
        Ok(ClientPlace {
            clients: self.clients.clone(),
            client,
        })
    }
}

/// An HTTP/2 connection holding its place on its listener until it drops.
#[derive(Debug)]
pub struct Placed {
    stream: Prefaced<TcpStream>,
    _place: Permit,
}

impl AsyncRead for Placed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Placed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for Placed {
    type ConnectInfo = <TcpStream as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.get_ref().connect_info()
    }
}

/// Writes `answer` on `stream` and closes it, reading and dropping what the client sends
/// meanwhile (for a moment), so the client reads the answer rather than a reset.
async fn answer_and_close(mut stream: TcpStream, answer: Vec<u8>) {
    let answered = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut scratch = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut scratch).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), answered).await;
}

/// Accepts connections on `listener` and serves each with the service `serve` makes for its
/// client's address, within `limits`, until `stopped` turns true; then lets the requests in
/// progress finish and returns once every connection closed.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    limits: ConnectionLimits,
    mut stopped: watch::Receiver<bool>,
    serve: M,
) -> std::io::Result<()>
where
    M: Fn(SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let gate = Gate::new(&limits);
    let limits = Arc::new(limits);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, typically: let some connections close.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY, an answer written in several segments waits on the client's
        // delayed ACK: ~40 ms.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
        let Some((stream, permit)) = gate.admit(stream) else {
            continue;
        };
        let connection = serve_connection(stream, serve(peer), limits.clone(), stopped.clone());
        connections.spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one HTTP/1.1 connection with `service` within `limits` until the client or the
/// limits end it; once `stopping` turns true, finishes the request in progress and closes.
pub async fn serve_connection<S, B>(
    stream: TcpStream,
    service: S,
    limits: Arc<ConnectionLimits>,
    mut stopping: watch::Receiver<bool>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Unpin + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let in_flight = Arc::new(InFlight::default());
    let io = Guarded::new(stream, &limits, in_flight.clone());
    let service = Counted { service, in_flight };
    // Heads reach hyper only once checked, so its own limits are set not to bite first: its
    // buffer holds the largest head allowed, and its head timeout is the guard's.
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size((limits.max_header_bytes + 1024).max(8192))
        .max_headers(limits.max_headers)
        .serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let mut stopped = *stopping.borrow();
    if stopped {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended");
                }
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !stopped => stopped = true,
        }
        connection.as_mut().graceful_shutdown();
    }
}

/// A service whose requests count as in progress until their answer's body is done.
struct Counted<S> {
    service: S,
    in_flight: Arc<InFlight>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Counted<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<Tracked<B>>;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        CountedFuture {
            answering: Some(self.in_flight.begin()),
            future: self.service.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`Counted`] service.
    struct CountedFuture<F> {
        answering: Option<Answering>,
        #[pin]
        future: F,
    }
}

impl<F, B, E> Future for CountedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Tracked<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.future.poll(cx))?;
        let mut answering = this.answering.take();
        if let Some(answering) = &mut answering {
            answering.respond();
        }
        Poll::Ready(Ok(answer.map(|body| Tracked {
            body,
            _answering: answering,
        })))
    }
}

/// An answer's body, which keeps its request in progress until hyper drops it.
struct Tracked<B> {
    body: B,
    _answering: Option<Answering>,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_64() {
        let of = |address: &str| client_of(address.parse().unwrap()).to_string();
        assert_eq!(of("203.0.113.7"), "203.0.113.7");
        assert_eq!(of("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(of("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(of("2001:db8:1:2::1"), of("2001:db8:1:2:ffff::9"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
    }
}
