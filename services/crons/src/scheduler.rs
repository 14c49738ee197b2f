//! Fires crons. Every replica schedules every `ready` cron (one timer task per cron, sleeping
//! until croner's next occurrence: 5-field UNIX semantics, where day-of-month and day-of-week
//! are either-or) and, when a schedule comes due, claims that scheduled time in `cron_firings`; the one replica whose
//! claim lands sends the firing, an HTTP POST of the cron's `args` to the application through
//! the router's internal listener (which skips the privacy check). A claimed firing whose
//! replica died before sending it is taken over by another once the lease runs out; one that
//! was sent is never sent again. Times missed while every replica was down are not replayed.

use crate::config::CronsConfig;
use crate::firings::{FiringStore, Held};
use crate::model::{Cron, CronStatus};
use crate::schedule::Pattern;
use crate::store::CronStore;
use nuage_clients::invoker::{ANSWER_DEADLINE, Invoker, Outcome};
use nuage_clients::logsink::LogSink;
use nuage_core::ApiError;
use nuage_core::clock::now_micros;
use nuage_core::follow::follow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a sent firing may wait for its answer before it is recorded as lost.
const SENDING_LEASE: Duration = ANSWER_DEADLINE;

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// A cron as the scheduler has it: its timer task and the schedule it follows.
#[derive(Debug)]
struct Scheduled {
    timer: JoinHandle<()>,
    schedule: String,
}

struct Inner {
    crons: CronStore,
    firings: FiringStore,
    invoker: Invoker,
    config: CronsConfig,
    replica: String,
    jobs: Mutex<HashMap<Uuid, Scheduled>>,
    stopped: std::sync::atomic::AtomicBool,
    wake: Notify,
    logs: Option<LogSink>,
}

/// Schedules and fires every `ready` cron; call [`Scheduler::run`].
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("replica", &self.inner.replica)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Returns a scheduler with nothing scheduled yet (call [`Scheduler::run`]); each firing
    /// leaves a line in its application's logs through `logs`.
    pub fn new(
        crons: CronStore,
        firings: FiringStore,
        invoker: Invoker,
        config: CronsConfig,
        logs: Option<LogSink>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                crons,
                firings,
                invoker,
                config,
                replica: Uuid::new_v4().to_string(),
                jobs: Mutex::default(),
                stopped: std::sync::atomic::AtomicBool::new(false),
                wake: Notify::new(),
                logs,
            }),
        }
    }

    /// Stops firing (at shutdown, before the router goes): nothing more is claimed, so other
    /// replicas fire what comes due.
    pub async fn stop(&self) {
        self.inner.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        for (_, scheduled) in self.inner.jobs.lock().await.drain() {
            scheduled.timer.abort();
        }
    }

    fn stopped(&self) -> bool {
        self.inner.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Asks for a look at the crons table now: a cron changed through this replica.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Follows the crons table and takes over orphaned firings, until stopped.
    pub async fn run(self) {
        let every = Duration::from_millis(self.inner.config.sync_ms.max(10));
        follow(
            "crons",
            every,
            &self.inner.wake,
            || self.stopped(),
            |since| {
                let scheduler = &self;
                async move {
                    let synced = scheduler.sync(since).await;
                    if let Err(error) = scheduler.rescue().await {
                        tracing::warn!(%error, "cannot look for orphaned cron firings; retrying");
                    }
                    synced
                }
            },
        )
        .await;
    }

    /// Brings the timers in line with the crons changed since `since` (0: all of them).
    async fn sync(&self, since: i64) -> Result<(), ApiError> {
        let crons = self.inner.crons.changed_since(since).await?;
        let mut jobs = self.inner.jobs.lock().await;
        if self.stopped() {
            return Ok(());
        }
        if since == 0 {
            let ready: HashSet<Uuid> = crons.iter().map(|cron| cron.id).collect();
            let gone: Vec<Uuid> = jobs.keys().filter(|id| !ready.contains(id)).copied().collect();
            for id in gone {
                self.unschedule(&mut jobs, id);
            }
        }
        for cron in crons {
            if cron.status == CronStatus::Ready {
                self.schedule(&mut jobs, &cron);
            } else {
                self.unschedule(&mut jobs, cron.id);
            }
        }
        Ok(())
    }

    fn schedule(&self, jobs: &mut HashMap<Uuid, Scheduled>, cron: &Cron) {
        if jobs
            .get(&cron.id)
            .is_some_and(|scheduled| scheduled.schedule == cron.schedule)
        {
            return;
        }
        self.unschedule(jobs, cron.id);
        let pattern = match Pattern::parse(&cron.schedule, self.inner.config.seconds_schedules) {
            Ok(pattern) => pattern,
            Err(error) => {
                tracing::warn!(cron_id = %cron.id, schedule = %cron.schedule, %error, "cron not scheduled");
                return;
            }
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let cron_id = cron.id;
        let schedule = cron.schedule.clone();
        let timer = tokio::spawn(async move {
            let mut after = chrono::Utc::now();
            // Each occurrence once, in order, on the wall clock.
            while let Some(next) = pattern.next_after(after) {
                let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let Some(inner) = weak.upgrade() else { return };
                let scheduler = Scheduler { inner };
                let schedule = schedule.clone();
                tokio::spawn(async move { scheduler.due(cron_id, &schedule, next).await });
                after = next;
            }
        });
        jobs.insert(
            cron.id,
            Scheduled {
                timer,
                schedule: cron.schedule.clone(),
            },
        );
        tracing::debug!(cron_id = %cron.id, schedule = %cron.schedule, "cron scheduled");
    }

    fn unschedule(&self, jobs: &mut HashMap<Uuid, Scheduled>, id: Uuid) {
        if let Some(scheduled) = jobs.remove(&id) {
            scheduled.timer.abort();
        }
    }

    /// A schedule came due at `scheduled_at`: claim that time and, if this replica holds it,
    /// send it.
    async fn due(&self, cron_id: Uuid, schedule: &str, scheduled_at: chrono::DateTime<chrono::Utc>) {
        if self.stopped() {
            return;
        }
        let cron = match self.inner.crons.ready(cron_id).await {
            Ok(Some(cron)) if cron.schedule == schedule => cron,
            // Deleted or changed a moment ago: the next look at the table catches up.
            Ok(_) => {
                self.wake();
                return;
            }
            Err(error) => {
                tracing::warn!(%cron_id, %error, "cannot read a due cron");
                return;
            }
        };
        let lease_until = now_micros() + micros(Duration::from_secs(self.inner.config.lease_seconds.max(1)));
        match self
            .inner
            .firings
            .claim(&cron, scheduled_at.timestamp_micros(), &self.inner.replica, lease_until)
            .await
        {
            Ok(Some(held)) => self.send(held).await,
            Ok(None) => {}
            Err(error) => tracing::warn!(%cron_id, %error, "cannot claim a cron firing"),
        }
    }

    /// Takes over firings whose replica died holding them, and records as failed those
    /// nobody will send.
    async fn rescue(&self) -> Result<(), ApiError> {
        let window = micros(Duration::from_secs(self.inner.config.takeover_seconds.max(1)));
        let now = now_micros();
        let lease_until = now + micros(Duration::from_secs(self.inner.config.lease_seconds.max(1)));
        // Only leases that ran out a moment ago: an older one means every replica was down.
        let held = self
            .inner
            .firings
            .take_over(&self.inner.replica, now - window, lease_until)
            .await?;
        for held in held {
            tracing::info!(cron_id = %held.cron_id, firing_id = %held.id, "took over a cron firing whose replica stopped");
            let this = self.clone();
            tokio::spawn(async move { this.send(held).await });
        }
        let given_up = self.inner.firings.give_up(now - window).await?;
        if given_up > 0 {
            tracing::warn!(
                count = given_up,
                "cron firings recorded as failed: their replica stopped"
            );
        }
        Ok(())
    }

    /// Sends a firing this replica holds, once, and records how it went.
    async fn send(&self, held: Held) {
        let hold = self.inner.config.hold_before_send_ms;
        if hold > 0 {
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        let firings = &self.inner.firings;
        let cron = match self.inner.crons.ready(held.cron_id).await {
            Ok(Some(cron)) => cron,
            Ok(None) => {
                // Deleted (or being deleted) meanwhile: its firings go with it.
                if let Err(error) = firings.forget(held.id).await {
                    tracing::warn!(firing_id = %held.id, %error, "cannot drop a cron firing");
                }
                return;
            }
            Err(error) => {
                // Still held: another replica takes it over once the lease runs out.
                tracing::warn!(firing_id = %held.id, %error, "cannot read the cron of a firing");
                return;
            }
        };
        let until = now_micros() + micros(SENDING_LEASE);
        match firings
            .mark_sending(held.id, &self.inner.replica, cron.application_id, until)
            .await
        {
            Ok(true) => {}
            // Another replica took it over while this one waited.
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(firing_id = %held.id, %error, "cannot mark a cron firing sent");
                return;
            }
        }
        let outcome = self.call(&cron).await;
        self.report(&cron, &held, &outcome);
        if let Err(error) = firings.finish(held.id, &outcome).await {
            tracing::warn!(firing_id = %held.id, %error, "cannot record a cron firing");
        }
        if let Err(error) = firings.prune(cron.id, self.inner.config.keep_firings).await {
            tracing::warn!(cron_id = %cron.id, %error, "cannot prune cron firings");
        }
    }

    /// Calls `cron`'s application as the cron says: its args as a plain invocation, or its
    /// HTTP delivery (method, path, headers, body).
    async fn call(&self, cron: &Cron) -> Outcome {
        match &cron.delivery {
            None => self.inner.invoker.invoke(cron.application_id, &cron.args).await,
            Some(delivery) => {
                let content_type = delivery
                    .headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                    .map_or("text/plain", |(_, value)| value.as_str());
                let headers: Vec<(&str, &str)> = delivery
                    .headers
                    .iter()
                    .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                let call = nuage_clients::invoker::Call {
                    method: &delivery.http_method,
                    path: &delivery.http_path,
                    content_type,
                    headers: &headers,
                    body: delivery.body.clone().into(),
                };
                self.inner.invoker.post(cron.application_id, call).await
            }
        }
    }

    /// Says how firing `held` of `cron` went, in the application's logs and in this process's.
    fn report(&self, cron: &Cron, held: &Held, outcome: &Outcome) {
        let skew_ms = (now_micros() - held.scheduled_at) / 1000 - outcome.duration_ms;
        if let Some(logs) = &self.inner.logs {
            let scheduled = chrono::DateTime::from_timestamp_micros(held.scheduled_at)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let line = match (outcome.succeeded, outcome.http_status) {
                (true, Some(status)) => format!(
                    "cron {} fired for {scheduled}: HTTP {status} in {} ms",
                    cron.id, outcome.duration_ms
                ),
                _ => format!("cron {} firing for {scheduled} failed: {}", cron.id, outcome.error),
            };
            logs.push(&cron.application_id.to_string(), &held.id.to_string(), "cron", line);
        }
        if outcome.succeeded {
            tracing::info!(
                cron_id = %cron.id, application_id = %cron.application_id, status = ?outcome.http_status,
                duration_ms = outcome.duration_ms, skew_ms, "cron fired"
            );
        } else {
            tracing::warn!(
                cron_id = %cron.id, application_id = %cron.application_id, status = ?outcome.http_status,
                error = %outcome.error, "cron firing failed"
            );
        }
    }
}
