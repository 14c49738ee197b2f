//! Where requests run: the router's own threads, apart from the rest of nuage.
//!
//! Each worker thread runs a current-thread runtime that owns the client connections handed to
//! it and its own connections to instances, so one request is read, forwarded and answered on
//! one thread, with no hand-off between threads (each costs a wake-up of another thread: on a
//! small VM, a large share of a proxied request's time). The listeners accept on the main
//! runtime and give each connection to the worker that holds the fewest.
//!
//! The control plane (starting and stopping instances, reloading routes, fetching keys) calls
//! services that may run in this process and spawn tasks of their own, so it stays on the main
//! runtime: [`Control`].

use crate::proxy::{Peer, Proxy};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use nuage_core::internal::InternalAuth;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// The main runtime, where the router's calls to other services run.
#[derive(Debug, Clone)]
pub struct Control(tokio::runtime::Handle);

impl Control {
    /// Returns the runtime the caller runs on.
    pub fn current() -> Self {
        Self(tokio::runtime::Handle::current())
    }

    /// Runs `future` on the main runtime; `None` when that runtime is shutting down.
    pub async fn run<F>(&self, future: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.0.spawn(future).await {
            Ok(output) => Some(output),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => None,
        }
    }

    /// Starts `future` on the main runtime.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(future);
    }
}

/// When a worker last had work (a request arrived, was sent to an instance, or was answered)
/// and how many requests it holds: it keeps polling for events for a while after its last
/// activity while it holds few (see [`poll_while_idle`]).
#[derive(Debug, Clone, Default)]
pub struct Activity(Option<Arc<Clock>>);

#[derive(Debug)]
pub struct Clock {
    started: Instant,
    /// Microseconds from `started` to the last activity.
    last: AtomicU64,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// Most requests in flight with which the worker still polls.
    few: usize,
    sleeping: AtomicBool,
    woken: Notify,
    /// Turns of polling without blocking so far.
    turns: AtomicU64,
}

/// A request being answered by a worker; dropping it ends it.
pub struct InFlight(Option<Arc<Clock>>);

impl Activity {
    /// Returns the activity clock of a new worker, which polls while it holds at most `few`
    /// requests.
    pub fn new(few: usize) -> Self {
        Self(Some(Arc::new(Clock {
            started: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            few,
            sleeping: AtomicBool::new(false),
            woken: Notify::new(),
            turns: AtomicU64::new(0),
        })))
    }

    /// Notes that the worker has work now (nothing off a worker).
    pub fn mark(&self) {
        if let Some(clock) = &self.0 {
            clock.mark();
        }
    }

    /// Notes a request the worker starts to answer.
    pub fn begin(&self) -> InFlight {
        if let Some(clock) = &self.0 {
            clock.in_flight.fetch_add(1, Ordering::Relaxed);
            clock.mark();
        }
        InFlight(self.0.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(clock) = &self.0 {
            clock.in_flight.fetch_sub(1, Ordering::Relaxed);
            clock.mark();
        }
    }
}

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn mark(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
        if self.sleeping.load(Ordering::Relaxed) && self.in_flight.load(Ordering::Relaxed) <= self.few {
            self.woken.notify_one();
        }
    }

    /// Whether polling pays now: the last activity is less than `window` old, and the worker
    /// holds few requests (with more, it seldom sleeps, and their instances need the CPUs).
    fn polls(&self, window: Duration) -> bool {
        let idle = Duration::from_micros(self.now().saturating_sub(self.last.load(Ordering::Relaxed)));
        idle < window && self.in_flight.load(Ordering::Relaxed) <= self.few
    }
}

/// Keeps the worker polling its sockets, rather than sleeping, for `window` after its last
/// activity while it holds few requests, then sleeps until the next activity.
///
/// A thread that sleeps in `epoll_wait` is woken by the kernel when an instance answers; on a
/// VM whose idle CPUs halt, that wake-up alone costs tens of microseconds per hop, and a proxied
/// request makes two more hops than a direct one. While this task yields, the runtime polls its
/// sockets without blocking instead, so an answer that comes within `window` is read at once (the
/// idle-poll of Seastar's reactor, or the guest halt-polling of Linux, in the router). Each turn
/// gives the CPU to any other runnable thread first, and a quiet spell costs at most `window` of
/// CPU. Under load (more requests than the worker's limit) it does not poll: the worker then
/// seldom sleeps, and polling would take CPU time from the instances.
async fn poll_while_idle(clock: Arc<Clock>, window: Duration) {
    loop {
        if !clock.polls(window) {
            clock.sleeping.store(true, Ordering::Relaxed);
            // A mark between the check and the wait leaves a permit: the wait ends at once.
            if !clock.polls(window) {
                clock.woken.notified().await;
            }
            clock.sleeping.store(false, Ordering::Relaxed);
            continue;
        }
        clock.turns.fetch_add(1, Ordering::Relaxed);
        std::thread::yield_now();
        // Deferred to after the runtime's next non-blocking poll of its sockets.
        tokio::task::yield_now().await;
    }
}

/// Keeps a timer of the worker due within a second, for good.
///
/// Every request arms timers on its worker (hyper's 30 s timeout to read a request head, the
/// function's timeout), and tokio wakes its own driver (a write to its eventfd, then one more
/// turn of `epoll_wait`) whenever a new timer is due before all the others, which on a worker
/// with no other timer is every request's first one: two system calls per request for nothing,
/// since the driver runs on this very thread. With a timer always due within a second, later
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
    /// Each polls for `idle_poll` after its last activity before it sleeps (zero: never).
    pub fn start(
        threads: usize,
        proxy: &Proxy,
        grace: Duration,
        idle_poll: Duration,
    ) -> std::io::Result<(Self, Vec<std::thread::JoinHandle<()>>)> {
        let mut workers = Vec::new();
        let mut threads_started = Vec::new();
        for index in 0..threads.max(1) {
            let (connections, receiver) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let proxy = proxy.for_worker();
            let counted = open.clone();
            let thread = std::thread::Builder::new()
                .name(format!("nuage-router-{index}"))
                .spawn(move || {
                    runtime.block_on(work(receiver, proxy, counted, grace, idle_poll));
                    // Whatever outlived the grace period is dropped with the runtime.
                })?;
            workers.push(Worker { connections, open });
            threads_started.push(thread);
        }
        Ok((Self { workers }, threads_started))
    }

    /// Gives a newly accepted connection to the worker with the fewest open ones.
    pub fn hand(&self, stream: tokio::net::TcpStream, peer: SocketAddr, internal: Option<Arc<InternalAuth>>) {
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
        worker.open.fetch_add(1, Ordering::Relaxed);
        if worker.connections.send(Accepted { stream, peer, internal }).is_err() {
            worker.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One worker: serves the connections it is handed until no listener is left to hand more.
async fn work(
    mut connections: mpsc::UnboundedReceiver<Accepted>,
    proxy: Proxy,
    open: Arc<AtomicUsize>,
    grace: Duration,
    idle_poll: Duration,
) {
    if let Some(activity) = proxy.activity.0.clone()
        && !idle_poll.is_zero()
    {
        tokio::spawn(poll_while_idle(activity, idle_poll));
    }
    tokio::spawn(keep_a_timer_near());
    let proxy = Arc::new(proxy);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    while let Some(Accepted { stream, peer, internal }) = connections.recv().await {
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot serve a connection");
                open.fetch_sub(1, Ordering::Relaxed);
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
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let open = open.clone();
        tokio::spawn(async move {
            let _ = connection.await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("invocations did not finish within the grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::{Activity, poll_while_idle};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    #[test]
    fn a_worker_polls_for_a_while_after_its_last_activity_then_sleeps_until_the_next() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let activity = Activity::new(1);
            let clock = activity.0.clone().unwrap();
            let turns = || clock.turns.load(Ordering::Relaxed);
            tokio::spawn(poll_while_idle(clock.clone(), Duration::from_millis(50)));
            // Quiet since it started: it sleeps.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let asleep = turns();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(turns(), asleep, "no polling without activity");

            // Activity: it polls without blocking (the sleeps below end through those polls)...
            activity.mark();
            let started = Instant::now();
            while turns() < asleep + 10 {
                assert!(started.elapsed() < Duration::from_secs(5), "marks start the polling");
                tokio::time::sleep(Duration::from_millis(1)).await;
                // On a loaded machine each turn may give the CPU away for a while.
                activity.mark();
            }
            // ...until the window has passed since the last mark.
            let started = Instant::now();
            loop {
                let before = turns();
                tokio::time::sleep(Duration::from_millis(100)).await;
                if turns() == before {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "polling stops after its window"
                );
            }
            assert!(
                started.elapsed() >= Duration::from_millis(40),
                "it polled through its window"
            );

            // More requests than its limit (one here): no polling, however recent the activity.
            let held = [activity.begin(), activity.begin()];
            let before = turns();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(turns(), before, "no polling under load");
            // Back under the limit: it polls again.
            drop(held);
            let started = Instant::now();
            while turns() == before {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "polling resumes once load drops"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
}
