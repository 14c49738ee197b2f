//! The router's calls to other services (starting and stopping instances, reloading routes,
//! fetching keys). Those services may run in this process and spawn tasks of their own, so
//! the calls stay on the main runtime, off the router's worker threads.

use std::future::Future;

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
