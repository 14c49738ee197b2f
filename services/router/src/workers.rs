//! Where requests run: the router's own threads, apart from the rest of nuage.
//!
//! Each worker thread runs a current-thread runtime that owns the client connections handed to
//! it and its own connections to instances, so one request is read, forwarded and answered on
//! one thread, with no hand-off between threads (each costs a wake-up of another thread: on a
//! small VM, a large share of a proxied request's time). The listeners accept on the main
//! runtime and give each connection to the worker that holds the fewest. Calls to other
//! services do not run here but on the main runtime (the `control` module).

use crate::proxy::Proxy;
use crate::request::Peer;
use hyper::service::service_fn;
use nuage_core::internal::InternalAuth;
use nuage_core::listener::{ConnectionLimits, Permit};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Keeps a timer of the worker due within a second, for good.
///
/// Every request arms timers on its worker (its connection's deadlines for the next request
/// head, the function's timeout), and tokio wakes its own driver (a write to its eventfd, then
/// one more turn of `epoll_wait`) whenever a new timer is due before all the others, which on a
/// worker with no other timer is every request's first one: two system calls per request for
/// nothing, since the driver runs on this very thread. With a timer always due within a second, later
/// ones are added without waking anything. It costs one wake-up a second.
async fn keep_a_timer_near() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A client connection on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    /// Set for the internal listener's connections.
    internal: Option<Arc<InternalAuth>>,
    /// The listener's place it holds.
    place: Permit,
    /// Its count among its worker's open connections.
    counted: Counted,
}

/// One connection counted among a worker's open ones until it is dropped, however its task
/// ends (a panic included), so that the balance between workers stays true.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Worker {
    connections: mpsc::UnboundedSender<Accepted>,
    open: Arc<AtomicUsize>,
}

/// The worker threads. Dropping the last handle lets them finish their connections and end.
pub struct Workers {
    workers: Vec<Worker>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Workers")
            .field("threads", &self.workers.len())
            .finish()
    }
}

impl Workers {
    /// Starts `threads` workers (at least one) serving with copies of `proxy`, each with its own
    /// connections to instances. Once every handle is dropped, each worker gives its
    /// connections `grace` to finish, then its thread ends.
    /// Each polls for `idle_poll` after its last activity before it sleeps (zero: never), and
    /// holds its connections to `limits`.
    pub fn start(
        threads: usize,
        proxy: &Proxy,
        grace: Duration,
        idle_poll: Duration,
        limits: &ConnectionLimits,
    ) -> std::io::Result<(Self, Vec<std::thread::JoinHandle<()>>)> {
        let mut workers = Vec::new();
        let mut threads_started = Vec::new();
        for index in 0..threads.max(1) {
            let (connections, receiver) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let proxy = proxy.for_worker();
            let limits = Arc::new(limits.clone());
            let thread = std::thread::Builder::new()
                .name(format!("nuage-router-{index}"))
                .spawn(move || {
                    runtime.block_on(work(receiver, proxy, grace, idle_poll, limits));
                    // Whatever outlived the grace period is dropped with the runtime.
                })?;
            workers.push(Worker { connections, open });
            threads_started.push(thread);
        }
        Ok((Self { workers }, threads_started))
    }

    /// Gives a newly accepted connection, holding `place` on its listener, to the worker with
    /// the fewest open ones.
    pub fn hand(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        internal: Option<Arc<InternalAuth>>,
        place: Permit,
    ) {
        let Some(worker) = self
            .workers
            .iter()
            // A worker that ended (it cannot, short of a bug) takes nothing more.
            .filter(|worker| !worker.connections.is_closed())
            .min_by_key(|worker| worker.open.load(Ordering::Relaxed))
        else {
            return;
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot hand a connection to a router worker");
                return;
            }
        };
        // Refused when the worker ended: the connection is dropped, uncounted.
        let _ = worker.connections.send(Accepted {
            stream,
            peer,
            internal,
            place,
            counted: Counted::new(&worker.open),
        });
    }
}

/// One worker: serves the connections it is handed until no listener is left to hand more.
async fn work(
    mut connections: mpsc::UnboundedReceiver<Accepted>,
    proxy: Proxy,
    grace: Duration,
    idle_poll: Duration,
    limits: Arc<ConnectionLimits>,
) {
    if !idle_poll.is_zero() {
        tokio::spawn(proxy.activity.clone().poll_while_idle(idle_poll));
    }
    tokio::spawn(keep_a_timer_near());
    let proxy = Arc::new(proxy);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut serving = tokio::task::JoinSet::new();
    while let Some(Accepted {
        stream,
        peer,
        internal,
        place,
        counted,
    }) = connections.recv().await
    {
        while serving.try_join_next().is_some() {}
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot serve a connection");
                continue;
            }
        };
        let proxy = proxy.clone();
        let peer = Arc::new(Peer::new(peer));
        let service = service_fn(move |request| {
            // One reference count per request, not a copy of every client.
            let proxy = proxy.clone();
            let internal = internal.clone();
            let peer = peer.clone();
            let in_flight = proxy.activity.begin();
            async move {
                let answer = match internal {
                    Some(auth) => proxy.handle_internal(request, &peer, &auth).await,
                    None => proxy.handle(request, &peer).await,
                };
                drop(in_flight);
                Ok::<_, Infallible>(answer)
            }
        });
        let connection = nuage_core::listener::serve_connection(stream, service, limits.clone(), stopping.clone());
        serving.spawn(async move {
            connection.await;
            drop((place, counted));
        });
    }
    let _ = stop.send(true);
    let drained = async { while serving.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("invocations did not finish within the grace period");
    }
}
