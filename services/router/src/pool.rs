//! Instances per application, as the router sees them: who is busy, who is idle, who drains.
//! The router decides here how many instances run; the runner obeys.

use crate::control::Control;
use nuage_core::transport::Authed;
use nuage_proto::runner::v1::runner_client::RunnerClient;
use nuage_proto::runner::v1::{Instance, ResolveRequest, StartInstanceRequest, StopInstanceRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};

/// One instance the router sends requests to.
#[derive(Debug)]
struct Slot {
    id: String,
    address: String,
    version: String,
    in_flight: u32,
    last_used: Instant,
    /// An older version's: takes no new request and stops once idle.
    draining: bool,
}

#[derive(Debug, Default)]
struct PoolState {
    /// Whether the runner was asked for the instances it already runs.
    resolved: bool,
    slots: Vec<Slot>,
    starting: u32,
    waiting: usize,
}

/// The instances of one application.
#[derive(Debug)]
pub struct Pool {
    application_id: String,
    state: Mutex<PoolState>,
    changed: Notify,
}

/// Why no instance could take a request.
#[derive(Debug)]
pub enum AcquireError {
    /// The application has no deployed version to run.
    NotDeployed(String),
    /// An instance could not start.
    StartFailed(String),
    /// `max_scale` instances are busy and the queue is full.
    Overloaded,
    /// The request's deadline passed while waiting.
    Timeout,
}

/// A request's place in a pool's queue; dropping it gives the place up.
struct Waiter<'a>(&'a Pool);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.state.lock().expect("pool lock").waiting -= 1;
    }
}

/// A request's hold on an instance; dropping it frees the instance.
#[derive(Debug)]
pub struct Lease {
    pools: Pools,
    pool: Arc<Pool>,
    instance_id: String,
    /// Where the instance answers.
    pub address: String,
    /// Whether the instance was started for this request.
    pub cold: bool,
    broken: bool,
}

impl Lease {
    /// Marks the instance as broken (it failed mid-request): it is stopped and replaced.
    pub fn broken(mut self) {
        self.broken = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pools.release(&self.pool, &self.instance_id, self.broken);
    }
}

/// Every application's pool.
#[derive(Debug, Clone)]
pub struct Pools {
    pools: Arc<Mutex<HashMap<String, Arc<Pool>>>>,
    runner: RunnerClient<Authed>,
    queue_limit: usize,
    /// Where calls to the runner run (requests run on the router's workers).
    control: Control,
}

/// Per-application figures for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct PoolFigures {
    /// Instances running (draining ones included).
    pub instances: usize,
    /// Requests waiting for an instance.
    pub waiting: usize,
}

impl Pools {
    /// Returns no pools; instances are started and stopped through `runner`, on `control`.
    pub fn new(runner: RunnerClient<Authed>, queue_limit: usize, control: Control) -> Self {
        Self {
            pools: Arc::default(),
            runner,
            queue_limit,
            control,
        }
    }

    fn pool(&self, application_id: &str) -> Arc<Pool> {
        self.pools
            .lock()
            .expect("pools lock")
            .entry(application_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Pool {
                    application_id: application_id.to_owned(),
                    state: Mutex::default(),
                    changed: Notify::new(),
                })
            })
            .clone()
    }

    /// Returns the instances and queue length of each application.
    pub fn figures(&self) -> Vec<(String, PoolFigures)> {
        let pools: Vec<Arc<Pool>> = self.pools.lock().expect("pools lock").values().cloned().collect();
        pools
            .into_iter()
            .map(|pool| {
                let state = pool.state.lock().expect("pool lock");
                (
                    pool.application_id.clone(),
                    PoolFigures {
                        instances: state.slots.len(),
                        waiting: state.waiting,
                    },
                )
            })
            .collect()
    }

    /// Adopts the instances the runner already runs for the pool's current version.
    async fn resolve(&self, pool: &Pool) {
        let mut runner = self.runner.clone();
        let request = ResolveRequest {
            application_id: pool.application_id.clone(),
        };
        let answer = self.control.run(async move { runner.resolve(request).await }).await;
        let mut state = pool.state.lock().expect("pool lock");
        if let Some(Ok(answer)) = answer {
            for instance in answer.into_inner().instances {
                adopt(&mut state, instance, 0);
            }
        }
        state.resolved = true;
    }

    /// Holds an instance of `application_id` for one request: an idle one, else a new one
    /// (up to `max_scale`), else a place in the queue until `deadline`.
    pub async fn acquire(
        &self,
        application_id: &str,
        concurrency: u32,
        max_scale: u32,
        deadline: tokio::time::Instant,
    ) -> Result<Lease, AcquireError> {
        let pool = self.pool(application_id);
        loop {
            let notified = pool.changed.notified();
            tokio::pin!(notified);
            let start = {
                let mut state = pool.state.lock().expect("pool lock");
                if !state.resolved {
                    None
                } else if let Some(slot) = state
                    .slots
                    .iter_mut()
                    .filter(|slot| !slot.draining && slot.in_flight < concurrency)
                    .min_by_key(|slot| slot.in_flight)
                {
                    slot.in_flight += 1;
                    return Ok(self.lease(&pool, slot, false));
                } else if state.slots.iter().filter(|slot| !slot.draining).count() as u32 + state.starting < max_scale {
                    state.starting += 1;
                    Some(true)
                } else if state.waiting >= self.queue_limit {
                    return Err(AcquireError::Overloaded);
                } else {
                    state.waiting += 1;
                    // Registered under the lock: a release (which takes it) cannot slip by.
                    notified.as_mut().enable();
                    Some(false)
                }
            };
            let Some(start) = start else {
                self.resolve(&pool).await;
                continue;
            };
            if start {
                let (claim, claimed) = oneshot::channel();
                self.start(pool.clone(), Some(claim));
                return match tokio::time::timeout_at(deadline, claimed).await {
                    Ok(Ok(Ok((id, address)))) => Ok(Lease {
                        pools: self.clone(),
                        pool: pool.clone(),
                        instance_id: id,
                        address,
                        cold: true,
                        broken: false,
                    }),
                    Ok(Ok(Err(error))) => Err(error),
                    Ok(Err(_)) => Err(AcquireError::StartFailed("the instance start was abandoned".to_owned())),
                    Err(_) => Err(AcquireError::Timeout),
                };
            }
            // Counted until this wait ends, however it ends: a caller that gives up (its client
            // went away) drops this future mid-wait and must not keep its place in the queue.
            let waiter = Waiter(&pool);
            let timed_out = tokio::time::timeout_at(deadline, notified).await.is_err();
            drop(waiter);
            if timed_out {
                return Err(AcquireError::Timeout);
            }
        }
    }

    fn lease(&self, pool: &Arc<Pool>, slot: &Slot, cold: bool) -> Lease {
        Lease {
            pools: self.clone(),
            pool: pool.clone(),
            instance_id: slot.id.clone(),
            address: slot.address.clone(),
            cold,
            broken: false,
        }
    }

    /// Starts an instance in the background (the pool's `starting` already counts it). With
    /// `claim`, the new instance is held for the request waiting on it, if it still waits.
    #[allow(clippy::type_complexity)]
    fn start(&self, pool: Arc<Pool>, claim: Option<oneshot::Sender<Result<(String, String), AcquireError>>>) {
        let mut runner = self.runner.clone();
        self.control.spawn(async move {
            let started = runner
                .start_instance(StartInstanceRequest {
                    application_id: pool.application_id.clone(),
                    version: String::new(),
                })
                .await;
            let mut state = pool.state.lock().expect("pool lock");
            state.starting -= 1;
            match started {
                Ok(instance) => {
                    let instance = instance.into_inner();
                    let (id, address) = (instance.id.clone(), instance.address.clone());
                    adopt(&mut state, instance, 1);
                    let held = claim.is_some_and(|claim| claim.send(Ok((id.clone(), address))).is_ok());
                    if !held && let Some(slot) = state.slots.iter_mut().find(|slot| slot.id == id) {
                        slot.in_flight -= 1;
                    }
                }
                Err(status) => {
                    let message = status.message().to_owned();
                    let error = if status.code() == tonic::Code::FailedPrecondition
                        && message.contains("no deployed version")
                    {
                        AcquireError::NotDeployed(message)
                    } else {
                        AcquireError::StartFailed(message)
                    };
                    if let Some(claim) = claim {
                        let _ = claim.send(Err(error));
                    }
                }
            }
            drop(state);
            pool.changed.notify_waiters();
        });
    }

    fn release(&self, pool: &Arc<Pool>, instance_id: &str, broken: bool) {
        let mut state = pool.state.lock().expect("pool lock");
        let Some(index) = state.slots.iter().position(|slot| slot.id == instance_id) else {
            drop(state);
            pool.changed.notify_waiters();
            return;
        };
        let slot = &mut state.slots[index];
        slot.in_flight = slot.in_flight.saturating_sub(1);
        slot.last_used = Instant::now();
        if broken || (slot.draining && slot.in_flight == 0) {
            let slot = state.slots.remove(index);
            self.stop(&pool.application_id, slot.id);
        }
        drop(state);
        // One request's place is free: wake one waiter, not the whole queue.
        pool.changed.notify_one();
    }

    fn stop(&self, application_id: &str, instance_id: String) {
        let mut runner = self.runner.clone();
        let application_id = application_id.to_owned();
        self.control.spawn(async move {
            if let Err(status) = runner
                .stop_instance(StopInstanceRequest {
                    application_id,
                    instance_id,
                })
                .await
            {
                tracing::warn!(%status, "cannot stop an instance");
            }
        });
    }

    /// A new version is current: its first instance joins, older ones drain.
    pub fn deployed(&self, instance: Instance) {
        let pool = self.pool(&instance.application_id);
        let mut state = pool.state.lock().expect("pool lock");
        state.resolved = true;
        let version = instance.version.clone();
        let mut idle_old = Vec::new();
        state.slots.retain_mut(|slot| {
            if slot.version == version {
                return true;
            }
            slot.draining = true;
            if slot.in_flight == 0 {
                idle_old.push(slot.id.clone());
                false
            } else {
                true
            }
        });
        adopt(&mut state, instance, 0);
        drop(state);
        for id in idle_old {
            self.stop(&pool.application_id, id);
        }
        pool.changed.notify_waiters();
    }

    /// An instance ended on its own: forget it.
    pub fn exited(&self, instance: &Instance) {
        let pool = self.pool(&instance.application_id);
        pool.state
            .lock()
            .expect("pool lock")
            .slots
            .retain(|slot| slot.id != instance.id);
        pool.changed.notify_waiters();
    }

    /// The application is gone.
    pub fn removed(&self, application_id: &str) {
        if let Some(pool) = self.pools.lock().expect("pools lock").remove(application_id) {
            pool.state.lock().expect("pool lock").slots.clear();
            pool.changed.notify_waiters();
        }
    }

    /// Stops instances idle for longer than `idle`, down to `min_scale`; starts instances up
    /// to `min_scale` (`None`: the application is not deployed, nothing is kept warm).
    pub fn reap(&self, min_scale: impl Fn(&str) -> Option<u32>, idle: Duration) {
        let pools: Vec<Arc<Pool>> = self.pools.lock().expect("pools lock").values().cloned().collect();
        for pool in pools {
            let warm = min_scale(&pool.application_id);
            let mut state = pool.state.lock().expect("pool lock");
            let keep = warm.unwrap_or(0) as usize;
            let live = state.slots.iter().filter(|slot| !slot.draining).count();
            let mut idle_slots: Vec<(Instant, String)> = state
                .slots
                .iter()
                .filter(|slot| !slot.draining && slot.in_flight == 0 && slot.last_used.elapsed() >= idle)
                .map(|slot| (slot.last_used, slot.id.clone()))
                .collect();
            idle_slots.sort();
            let surplus = live.saturating_sub(keep).min(idle_slots.len());
            for (_, id) in idle_slots.into_iter().take(surplus) {
                state.slots.retain(|slot| slot.id != id);
                tracing::info!(application_id = %pool.application_id, instance_id = %id, "stopping an idle instance");
                self.stop(&pool.application_id, id);
            }
            let live = state.slots.iter().filter(|slot| !slot.draining).count() as u32 + state.starting;
            if let Some(warm) = warm
                && state.resolved
                && live < warm
            {
                for _ in live..warm {
                    state.starting += 1;
                    self.start(pool.clone(), None);
                }
            }
        }
    }
}

/// Adds `instance` to the pool unless it is there; `in_flight` requests already hold it.
fn adopt(state: &mut PoolState, instance: Instance, in_flight: u32) {
    if let Some(slot) = state.slots.iter_mut().find(|slot| slot.id == instance.id) {
        slot.in_flight += in_flight;
        return;
    }
    state.slots.push(Slot {
        id: instance.id,
        address: instance.address,
        version: instance.version,
        in_flight,
        last_used: Instant::now(),
        draining: false,
    });
}
