//! How one part of nuage reaches a service: a gRPC channel to another process, or the
//! service's routes themselves when it runs in this one.

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame};
use http_body_util::Full;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// A gRPC transport. Both kinds speak the same protobuf messages, metadata and status codes;
/// the in-process one skips HTTP/2 framing and a loopback TCP round trip.
///
/// The error type is the channel's; in-process routes cannot fail. (A boxed `dyn Error`
/// would trip a higher-ranked lifetime limitation of the compiler in async handlers.)
pub type Transport = BoxCloneSyncService<Request<Body>, Response<Body>, tonic::transport::Error>;

/// Seconds of silence after which a dialled connection is pinged; a peer that does not answer
/// the ping within as long is taken for gone (a host cut off), and calls move on.
const KEEPALIVE: Duration = Duration::from_secs(2);
/// The longest a replica of a service with several URLs may take to accept a connection
/// before the call moves on to the next one.
const FAILOVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The first and the longest time a replica that failed is tried only after the others.
const DOWN_FIRST: Duration = Duration::from_millis(500);
const DOWN_LONGEST: Duration = Duration::from_secs(30);
/// The largest request body kept to be sent again to another replica (tonic's default
/// message size limit); a larger one goes to one replica only.
const REPLAY_LIMIT: usize = 4 * 1024 * 1024;

/// Returns a transport to the service `peer` (such as "builder") that dials `urls` lazily, so
/// a caller can start before the service it calls. `urls` is one URL (such as
/// `http://127.0.0.1:9090`) or several replicas of the service separated by commas: calls go
/// to them in turn, and one that could not be delivered to a replica (it refused or did not
/// accept the connection) goes to the next; a replica that failed is tried after the others
/// for a while (see [`Failover`]). A call gets no answer after its deadline (see
/// [`Deadline`]); connecting gets a fifth of `deadline` (at most 2 s with several replicas).
/// Connections are pinged after 2 s of silence, so one to a host cut off fails within 4 s.
pub fn dial(peer: &'static str, urls: &str, deadline: Duration) -> Result<Transport, tonic::transport::Error> {
    let urls: Vec<&str> = urls.split(',').map(str::trim).filter(|url| !url.is_empty()).collect();
    let connect = (deadline / 5).max(Duration::from_millis(100));
    if urls.len() <= 1 {
        let channel = endpoint(urls.first().copied().unwrap_or_default(), connect)?.connect_lazy();
        return Ok(BoxCloneSyncService::new(Deadline::new(channel, peer, deadline)));
    }
    let connect = connect.min(FAILOVER_CONNECT_TIMEOUT);
    let replicas = urls
        .iter()
        .map(|url| Ok(Replica::new(url, endpoint(url, connect)?.connect_lazy())))
        .collect::<Result<Vec<_>, tonic::transport::Error>>()?;
    Ok(BoxCloneSyncService::new(Deadline::new(
        Failover::new(replicas),
        peer,
        deadline,
    )))
}

fn endpoint(url: &str, connect: Duration) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(connect)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE)
        .keep_alive_while_idle(true))
}

/// One replica of a service: its channel, and since when and how often it failed.
#[derive(Debug)]
struct Replica {
    url: String,
    channel: Channel,
    health: std::sync::Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    down_until: Option<Instant>,
}

impl Replica {
    fn new(url: &str, channel: Channel) -> Self {
        Self {
            url: url.to_owned(),
            channel,
            health: std::sync::Mutex::default(),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_down(&self, now: Instant) -> bool {
        self.health().down_until.is_some_and(|until| until > now)
    }

    /// Sends `request` to this replica, and notes whether it answered or failed.
    async fn send(&self, request: Request<Body>) -> Result<Response<Body>, tonic::transport::Error> {
        let answer = self.channel.clone().oneshot(request).await;
        match answer {
            Ok(_) => self.succeeded(),
            Err(_) => self.failed(),
        }
        answer
    }

    fn succeeded(&self) {
        *self.health() = Health::default();
    }

    /// Sets the replica aside for twice as long as the last time (from 0.5 s up to 30 s).
    fn failed(&self) {
        let mut health = self.health();
        let wait = DOWN_FIRST.saturating_mul(1 << health.failures.min(6)).min(DOWN_LONGEST);
        health.failures = health.failures.saturating_add(1);
        health.down_until = Some(Instant::now() + wait);
    }
}

/// The replicas of one service (`services.<role>` listing several URLs). Each call goes to
/// the next replica in turn that has not failed lately (to those that have when all have). A
/// call that a replica never received (the connection was refused, not accepted in time, or
/// closed before the call left) goes on to the next replica; one whose fate is unknown (the
/// connection broke while the replica held it) goes on only when it is a read or a call that
/// may be repeated (see [`repeatable`]), and is otherwise answered with its error, never sent
/// twice.
/// A call whose body is still streaming when the call starts (`Logs/Write`) goes on to the next
/// replica only while nothing of its body was read.
#[derive(Debug, Clone)]
pub struct Failover {
    replicas: Arc<[Replica]>,
    next: Arc<AtomicUsize>,
}

impl Failover {
    fn new(replicas: Vec<Replica>) -> Self {
        Self {
            replicas: replicas.into(),
            next: Arc::default(),
        }
    }

    /// Returns the replicas in the order this call tries them.
    fn order(&self) -> Vec<usize> {
        let count = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let (mut up, down): (Vec<usize>, Vec<usize>) = (0..count)
            .map(|offset| (start + offset) % count)
            .partition(|index| !self.replicas[*index].is_down(now));
        up.extend(down);
        up
    }
}

impl tower::Service<Request<Body>> for Failover {
    type Response = Response<Body>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, tonic::transport::Error>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each replica's channel is readied when a call goes to it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let order = self.order();
        let replicas = self.replicas.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let whole = match buffered(body).await {
                Buffered::Whole(bytes) => bytes,
                Buffered::Streaming(body) => return stream(&replicas, &order, parts, body).await,
            };
            let mut last = None;
            for index in order {
                let replica = &replicas[index];
                let request = Request::from_parts(parts.clone(), Body::new(Full::new(whole.clone())));
                match replica.send(request).await {
                    Ok(response) => return Ok(response),
                    Err(error) => {
                        if !never_delivered(&error) && !repeatable(parts.uri.path()) {
                            return Err(error);
                        }
                        tracing::warn!(replica = %replica.url, %error, "a replica did not take the call; trying the next");
                        last = Some(error);
                    }
                }
            }
            Err(last.expect("a service has at least one replica"))
        })
    }
}

/// Sends a call whose body is still streaming to the first replica of `order` that takes it:
/// the body is lent to each attempt and taken back when the replica was never reached, so
/// nothing of it is lost to a replica that is down (a log stream reconnecting would otherwise
/// lose the lines it had queued). Once any of it was read, the call stays with that replica.
async fn stream(
    replicas: &[Replica],
    order: &[usize],
    parts: tonic::codegen::http::request::Parts,
    body: Body,
) -> Result<Response<Body>, tonic::transport::Error> {
    let mut body = Some(body);
    let mut last = None;
    for index in order {
        let Some(lent) = body.take() else { break };
        let lent = Lent::new(lent);
        let replica = &replicas[*index];
        let request = Request::from_parts(parts.clone(), Body::new(lent.clone()));
        match replica.send(request).await {
            Ok(response) => return Ok(response),
            Err(error) => {
                if !never_delivered(&error) {
                    return Err(error);
                }
                body = lent.take_back();
                tracing::warn!(replica = %replica.url, %error, "a replica did not take a stream; trying the next");
                last = Some(error);
            }
        }
    }
    Err(last.expect("a service has at least one replica"))
}

/// A body lent to one attempt of a call: taken back, whole, if the attempt never read it.
#[derive(Clone)]
struct Lent(Arc<std::sync::Mutex<LentState>>);

struct LentState {
    body: Option<Body>,
    read: bool,
}

impl Lent {
    fn new(body: Body) -> Self {
        Self(Arc::new(std::sync::Mutex::new(LentState {
            body: Some(body),
            read: false,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LentState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns the body if nothing of it was read.
    fn take_back(&self) -> Option<Body> {
        let mut state = self.state();
        if state.read { None } else { state.body.take() }
    }
}

impl http_body::Body for Lent {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let mut state = self.state();
        let Some(body) = state.body.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(body).poll_frame(context);
        if frame.is_ready() {
            state.read = true;
        }
        frame
    }
}

/// A request body: whole, when it was all there at once, else as it goes on.
enum Buffered {
    Whole(Bytes),
    Streaming(Body),
}

/// Reads `body` as far as it is already there: all of it (up to [`REPLAY_LIMIT`]) for a call
/// of one message, the start of a stream for a streaming call.
async fn buffered(mut body: Body) -> Buffered {
    let mut whole = BytesMut::new();
    loop {
        let frame = std::future::poll_fn(|context| Poll::Ready(Pin::new(&mut body).poll_frame(context))).await;
        match frame {
            Poll::Ready(None) => return Buffered::Whole(whole.freeze()),
            Poll::Ready(Some(Ok(frame))) if frame.is_data() && whole.len() < REPLAY_LIMIT => {
                if let Ok(data) = frame.into_data() {
                    whole.extend_from_slice(&data);
                }
            }
            // Trailers, an error, a large body or one still coming: sent as it is, once.
            Poll::Ready(Some(frame)) => {
                let start = Frames {
                    first: Some(Bytes::from(whole)),
                    then: Some(frame),
                    rest: body,
                };
                return Buffered::Streaming(Body::new(start));
            }
            Poll::Pending => {
                let start = Frames {
                    first: Some(Bytes::from(whole)),
                    then: None,
                    rest: body,
                };
                return Buffered::Streaming(Body::new(start));
            }
        }
    }
}

/// A body whose first frames were already read: `first`, then `then`, then the rest.
struct Frames {
    first: Option<Bytes>,
    then: Option<Result<Frame<Bytes>, tonic::Status>>,
    rest: Body,
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if let Some(first) = self.first.take().filter(|bytes| !bytes.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(then) = self.then.take() {
            return Poll::Ready(Some(then));
        }
        Pin::new(&mut self.rest).poll_frame(context)
    }
}

/// Returns whether the gRPC method at `path` (`/package.Service/Method`) may be sent again
/// after a replica went away holding it: it only reads (`Get…`, `List…`, `Watch…`,
/// `Follow…`, `Stream…`, `VerifyToken`, `Resolve`), or doing it twice is doing it once
/// (`SubmitBuild`: a job is queued under its deployment's id).
fn repeatable(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    ["Get", "List", "Watch", "Follow", "Stream"]
        .iter()
        .any(|prefix| method.starts_with(prefix))
        || matches!(method, "VerifyToken" | "Resolve" | "SubmitBuild")
}

/// Returns whether `error` says the call never reached the replica: it could not connect, or
/// the connection closed before the call was sent.
fn never_delivered(error: &tonic::transport::Error) -> bool {
    crate::error::sources(error).any(|error| {
        error.is::<tonic::ConnectError>()
            || error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_canceled)
    })
}

/// Returns a transport to the service `peer` that hands requests straight to `routes`, the
/// gRPC services of this process (the same routes its gRPC listener serves), with the same
/// deadlines as a dialled one.
pub fn in_process(peer: &'static str, routes: Routes, deadline: Duration) -> Transport {
    let service = ServiceExt::<Request<Body>>::map_err(routes.prepare(), unreachable);
    BoxCloneSyncService::new(Deadline::new(service, peer, deadline))
}

/// Bounds how long a call waits for its answer: the deadline its caller set
/// (`tonic::Request::set_timeout`, sent as `grpc-timeout`), else the transport's default. A
/// call past it answers `DEADLINE_EXCEEDED` naming the service, as a status, so the caller sees
/// it like any other refusal; one whose connection failed (refused, reset, found dead by
/// keep-alive) answers `UNAVAILABLE` naming the service, whatever code the HTTP/2 error maps
/// to (an abrupt reset would otherwise read as `INTERNAL`, a 500 of the caller). The deadline runs until the answer's headers arrive: a stream
/// (logs followed, route changes) runs on once it has started.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    peer: &'static str,
    default: Duration,
}

impl<S> Deadline<S> {
    /// Returns `inner`, calls to the service `peer` through which wait at most `default` when
    /// they set no deadline of their own.
    pub fn new(inner: S, peer: &'static str, default: Duration) -> Self {
        Self { inner, peer, default }
    }
}

impl<S> tower::Service<Request<Body>> for Deadline<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: std::error::Error + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let limit = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(grpc_timeout)
            .unwrap_or(self.default);
        let peer = self.peer;
        let answer = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, answer).await {
                Ok(Ok(answer)) => Ok(answer),
                // However the connection failed (refused, reset by a host that died, timed out
                // by keep-alive), the caller sees the service unavailable, not an internal
                // error of its own.
                // A connection whose keep-alive ping went unanswered: the service did not answer.
                Ok(Err(error)) if keepalive_timed_out(&error) => Ok(tonic::Status::deadline_exceeded(format!(
                    "the {peer} service did not answer a keep-alive ping within {} ms",
                    KEEPALIVE.as_millis()
                ))
                .into_http()),
                Ok(Err(error)) => Ok(tonic::Status::unavailable(format!(
                    "the {peer} service cannot be reached: {}",
                    crate::error::chain(&error)
                ))
                .into_http()),
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "the {peer} service did not answer within {} ms",
                    limit.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// Returns whether `error` comes from a connection closed because its keep-alive ping was not
/// answered in time.
fn keepalive_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    crate::error::sources(error).any(|error| {
        error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
    })
}

/// Returns the duration of a `grpc-timeout` header value (an integer of at most 8 digits and
/// a unit: `H`ours, `M`inutes, `S`econds, `m`illi-, `u`micro-, `n`anoseconds).
fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

fn unreachable(never: Infallible) -> tonic::transport::Error {
    match never {}
}

/// A transport whose calls carry the internal credential.
pub type Authed = tonic::service::interceptor::InterceptedService<Transport, crate::internal::InternalAuth>;

/// Returns `transport` with the internal credential added to every call.
pub fn authed(transport: Transport, auth: crate::internal::InternalAuth) -> Authed {
    tonic::service::interceptor::InterceptedService::new(transport, auth)
}

#[cfg(test)]
mod tests {
    use super::{dial, grpc_timeout};
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use std::time::Duration;
    use tonic::body::Body;
    use tonic::codegen::http::{Request, Response};
    use tonic::server::NamedService;
    use tower::ServiceExt;

    /// A gRPC-shaped service that counts the calls it receives and answers each with the
    /// length of its body; with `hang`, it holds every call and says so on `held`.
    #[derive(Clone)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        hang: bool,
        held: Arc<tokio::sync::Notify>,
    }

    impl NamedService for Counting {
        const NAME: &'static str = "test.Counting";
    }

    impl tower::Service<Request<Body>> for Counting {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

        fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<Body>) -> Self::Future {
            let this = self.clone();
            Box::pin(async move {
                use http_body_util::BodyExt;
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                this.calls.fetch_add(1, Ordering::SeqCst);
                if this.hang {
                    this.held.notify_one();
                    std::future::pending::<()>().await;
                }
                Ok(Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .header("x-received", body.len())
                    .body(Body::empty())
                    .unwrap())
            })
        }
    }

    /// Serves `service` on a loopback port; returns its URL and the serving task.
    async fn serve(service: Counting) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::new(service))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        (url, task)
    }

    /// Serves `service` on a loopback port from a runtime of its own, which ends (closing every
    /// connection, as a host that goes away does) when the returned sender is used.
    fn serve_elsewhere(service: Counting) -> (String, std::sync::mpsc::Sender<()>) {
        let (url_sender, url) = std::sync::mpsc::channel();
        let (gone, going) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (url, _task) = serve(service).await;
                url_sender.send(url).unwrap();
                // The runtime keeps serving while this waits on another thread.
                let _ = tokio::task::spawn_blocking(move || going.recv()).await;
            });
            runtime.shutdown_background();
        });
        (url.recv().unwrap(), gone)
    }

    /// Returns the URL of a loopback port nothing listens on.
    async fn refused() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        url
    }

    fn counting(hang: bool) -> Counting {
        Counting {
            calls: Arc::default(),
            hang,
            held: Arc::default(),
        }
    }

    fn call(body: &'static [u8]) -> Request<Body> {
        Request::builder()
            .method("POST")
            .uri("http://service/test.Counting/Call")
            .header("content-type", "application/grpc")
            .body(Body::new(http_body_util::Full::new(bytes::Bytes::from_static(body))))
            .unwrap()
    }

    #[tokio::test]
    async fn calls_a_replica_refuses_go_whole_to_the_next_one() {
        let (transport, live, _task) = after_a_refusing_replica(", ").await;
        for _ in 0..6 {
            let response = transport.clone().oneshot(call(b"twelve bytes")).await.unwrap();
            assert_eq!(response.headers()["x-received"], "12");
        }
        assert_eq!(live.calls.load(Ordering::SeqCst), 6);
        // A streaming body (one not all there when the call starts) goes to one replica.
        let response = streamed_call(&transport, "Call", &[b"abc"]).await;
        assert_eq!(response.headers()["x-received"], "3");
        assert_eq!(live.calls.load(Ordering::SeqCst), 7);
    }

    #[tokio::test]
    async fn a_stream_a_replica_refuses_goes_whole_to_the_next_one() {
        let (transport, live, _task) = after_a_refusing_replica(",").await;
        // What was queued before the call found the first replica down reaches the second.
        let response = streamed_call(&transport, "Write", &[b"queued ", b"then more"]).await;
        assert_eq!(response.headers()["x-received"], "16");
        assert_eq!(live.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_call_a_replica_held_when_it_went_away_is_not_sent_again() {
        // The first call goes to the first replica, which takes it and goes away.
        let (response, transport, other, _task) = sent_to_a_replica_that_goes_away(call(b"once")).await;
        // The caller sees the service unavailable (14), whatever broke the connection.
        assert_eq!(response.headers()["grpc-status"], "14", "{response:?}");
        assert_eq!(other.calls.load(Ordering::SeqCst), 0, "sent again to another replica");
        // The next calls go to the replica still there.
        for _ in 0..3 {
            let response = transport.clone().oneshot(call(b"next")).await.unwrap();
            assert_eq!(response.headers()["x-received"], "4");
        }
        assert_eq!(other.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_read_a_replica_held_when_it_went_away_goes_to_the_next_one() {
        let mut read = call(b"read");
        *read.uri_mut() = "http://service/test.Counting/GetThing".parse().unwrap();
        let (response, _transport, other, _task) = sent_to_a_replica_that_goes_away(read).await;
        assert_eq!(response.headers()["x-received"], "4");
        assert_eq!(other.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn only_reads_and_calls_that_may_be_repeated_are_sent_again() {
        for path in [
            "/nuage.functions.v1.Functions/GetFunction",
            "/nuage.namespaces.v1.Namespaces/ListNamespaces",
            "/nuage.iam.v1.Iam/VerifyToken",
            "/nuage.builder.v1.Builder/SubmitBuild",
            "/nuage.runner.v1.Runner/Resolve",
        ] {
            assert!(super::repeatable(path), "{path}");
        }
        for path in [
            "/nuage.namespaces.v1.Namespaces/CreateNamespace",
            "/nuage.functions.v1.Functions/UpdateFunction",
            "/nuage.functions.v1.Functions/DeployFunction",
            "/nuage.runner.v1.Runner/Scale",
            "/nuage.logs.v1.Logs/Write",
        ] {
            assert!(!super::repeatable(path), "{path}");
        }
    }

    /// Returns a transport over a replica that refuses connections and one that answers
    /// (their URLs joined by `separator`), the one that answers and the task serving it.
    async fn after_a_refusing_replica(separator: &str) -> (super::Transport, Counting, tokio::task::JoinHandle<()>) {
        let live = counting(false);
        let (live_url, task) = serve(live.clone()).await;
        let dead_url = refused().await;
        let transport = dial(
            "test",
            &format!("{dead_url}{separator}{live_url}"),
            Duration::from_secs(10),
        )
        .unwrap();
        (transport, live, task)
    }

    /// Calls `method` through `transport` with a body streamed in `parts`; returns the answer.
    async fn streamed_call(transport: &super::Transport, method: &str, parts: &[&'static [u8]]) -> Response<Body> {
        let (sender, answer) = streamed(transport, method);
        for part in parts {
            sender.send(bytes::Bytes::from_static(part)).await.unwrap();
        }
        drop(sender);
        answer.await.unwrap().unwrap()
    }

    /// Sends `request` through a transport over two replicas, the first of which takes it and
    /// goes away while it holds it; returns the answer, the transport, the second replica and
    /// the task serving it.
    async fn sent_to_a_replica_that_goes_away(
        request: Request<Body>,
    ) -> (Response<Body>, super::Transport, Counting, tokio::task::JoinHandle<()>) {
        let holding = counting(true);
        let (holding_url, gone) = serve_elsewhere(holding.clone());
        let other = counting(false);
        let (other_url, task) = serve(other.clone()).await;
        let transport = dial("test", &format!("{holding_url},{other_url}"), Duration::from_secs(10)).unwrap();
        let answer = tokio::spawn(transport.clone().oneshot(request));
        holding.held.notified().await;
        gone.send(()).unwrap();
        (answer.await.unwrap().unwrap(), transport, other, task)
    }

    /// Starts a call of `method` through `transport` whose body is what is sent on the
    /// returned sender until it is dropped; returns the sender and the call's answer.
    fn streamed(
        transport: &super::Transport,
        method: &str,
    ) -> (
        tokio::sync::mpsc::Sender<bytes::Bytes>,
        tokio::task::JoinHandle<Result<Response<Body>, tonic::transport::Error>>,
    ) {
        use tokio_stream::StreamExt;
        let (sender, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver)
            .map(|bytes| Ok::<_, tonic::Status>(http_body::Frame::data(bytes)));
        let request = Request::builder()
            .method("POST")
            .uri(format!("http://service/test.Counting/{method}"))
            .body(Body::new(http_body_util::StreamBody::new(stream)))
            .unwrap();
        (sender, tokio::spawn(transport.clone().oneshot(request)))
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_nothing_else() {
        assert_eq!(grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(grpc_timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "10", "10s", "123456789S", "-1S", "1.5S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad}");
        }
    }
}
