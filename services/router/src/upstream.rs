//! A worker's HTTP/1.1 connections to instances, kept open between requests.
//!
//! The pool already decides which instance takes a request (one at a time for a function), so
//! connections need no pool of their own beyond "an idle one to this address": a request takes
//! one (or opens one), and gives it back once its answer was read to the end. hyper drives each
//! connection in a task of the worker's runtime.

use crate::body::{BoxError, ProxyBody};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use nuage_core::instance::InstanceAddress;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an unused connection is kept (instances' own keep-alive is longer: the node
/// wrapper's is 65 s).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// Time between two sweeps of unusable connections (to addresses no longer asked for, say).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

impl Idle {
    fn usable(&self) -> bool {
        !self.sender.is_closed() && self.since.elapsed() < IDLE_FOR
    }
}

struct State {
    idle: HashMap<String, Vec<Idle>>,
    swept: Instant,
}

/// Idle connections by instance address.
#[derive(Clone)]
pub struct Upstreams(Arc<Mutex<State>>);

impl Default for Upstreams {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(State {
            idle: HashMap::new(),
            swept: Instant::now(),
        })))
    }
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

/// A connection whose answer is being read; [`Reusable::give_back`] once it was read whole.
pub struct Reusable {
    upstreams: Upstreams,
    address: String,
    sender: SendRequest<ProxyBody>,
}

impl Reusable {
    /// Keeps the connection for the next request to its address, once it can take one: an
    /// instance may answer before it has read the whole request, whose body is still on its way.
    pub fn give_back(mut self) {
        if self.sender.is_ready() {
            self.upstreams.keep(self.address, self.sender);
            return;
        }
        // Off a runtime (a worker being dropped at shutdown), the connection just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if self.sender.ready().await.is_ok() {
                    self.upstreams.keep(self.address, self.sender);
                }
            });
        }
    }
}

impl Upstreams {
    fn keep(&self, address: String, sender: SendRequest<ProxyBody>) {
        let mut state = self.0.lock().expect("upstreams lock");
        state.idle.entry(address).or_default().push(Idle {
            sender,
            since: Instant::now(),
        });
        if state.swept.elapsed() >= SWEEP_EVERY {
            state.swept = Instant::now();
            state.idle.retain(|_, idle| {
                idle.retain(Idle::usable);
                !idle.is_empty()
            });
        }
    }

    fn take(&self, address: &str) -> Option<SendRequest<ProxyBody>> {
        let mut state = self.0.lock().expect("upstreams lock");
        let idle = state.idle.get_mut(address)?;
        while let Some(connection) = idle.pop() {
            if connection.usable() {
                return Some(connection.sender);
            }
        }
        None
    }

    async fn connect(address: &str) -> Result<SendRequest<ProxyBody>, BoxError> {
        // Inside the instance's own network namespace, when it has one.
        let address: InstanceAddress = address.parse()?;
        let stream = address.connect().await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // It ends when the instance closes it, or once no sender is left and it is idle.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends `request` (in origin form) to the instance at `address` over an idle connection,
    /// or a new one. A request that an idle connection closed before it was sent goes over
    /// another: the instance may have closed it the moment it was taken.
    pub async fn send(
        &self,
        address: &str,
        mut request: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, Reusable), BoxError> {
        loop {
            let (mut sender, fresh) = match self.take(address) {
                Some(sender) => (sender, false),
                None => (Self::connect(address).await?, true),
            };
            if sender.ready().await.is_err() {
                if fresh {
                    return Err("the instance closed the connection at once".into());
                }
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let reusable = Reusable {
                        upstreams: self.clone(),
                        address: address.to_owned(),
                        sender,
                    };
                    return Ok((response, reusable));
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(failed.into_error().into()),
                },
            }
        }
    }
}
