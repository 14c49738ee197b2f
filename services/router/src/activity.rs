//! A worker's clock of activity, and the idle polling it drives.
//!
//! A worker notes when it last had work (a request arrived, was sent to an instance, or was
//! answered) and how many requests it holds; for a while after its last activity, while it
//! holds few, it polls its sockets rather than sleeping (see [`Activity::poll_while_idle`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// When a worker last had work and how many requests it holds (nothing off a worker).
#[derive(Debug, Clone, Default)]
pub struct Activity(Option<Arc<Clock>>);

#[derive(Debug)]
struct Clock {
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

    /// Keeps the worker polling its sockets, rather than sleeping, for `window` after its last
    /// activity while it holds few requests, then sleeps until the next activity.
    ///
    /// A thread that sleeps in `epoll_wait` is woken by the kernel when an instance answers; on a
    /// VM whose idle CPUs halt, that wake-up alone costs tens of microseconds per hop, and a
    /// proxied request makes two more hops than a direct one. While this task yields, the runtime
    /// polls its sockets without blocking instead, so an answer that comes within `window` is read
    /// at once (the idle-poll of Seastar's reactor, or the guest halt-polling of Linux, in the
    /// router). Each turn gives the CPU to any other runnable thread first, and a quiet spell costs
    /// at most `window` of CPU. Under load (more requests than the worker's limit) it does not
    /// poll: the worker then seldom sleeps, and polling would take CPU time from the instances.
    pub async fn poll_while_idle(self, window: Duration) {
        let Some(clock) = self.0 else {
            return;
        };
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

#[cfg(test)]
mod tests {
    use super::Activity;
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
            tokio::spawn(activity.clone().poll_while_idle(Duration::from_millis(50)));
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
