//! What a service crate's `serve` hands back to the process that composes it: the gRPC service
//! to add to the process's routes, the tasks it runs beside it, and what the process keeps of
//! it (to stop it, to show its figures).

use tokio::task::JoinHandle;

/// A service ready to be served. The process adds `service` to its gRPC routes behind the
/// internal credential check, reports it on gRPC health under its name, and aborts
/// `background` when it stops.
#[derive(Debug)]
pub struct Served<S, H = ()> {
    /// The generated gRPC server, wrapping the service.
    pub service: S,
    /// Tasks started with it (reconcilers, workers, schedulers).
    pub background: Vec<JoinHandle<()>>,
    /// Why this installation is less safe than it should be, for `/healthz`.
    pub warnings: Vec<String>,
    /// What the process keeps of the service.
    pub handle: H,
}

impl<S> Served<S> {
    /// Returns `service`, with no tasks, no warnings and nothing to keep.
    pub fn new(service: S) -> Self {
        Self {
            service,
            background: Vec::new(),
            warnings: Vec::new(),
            handle: (),
        }
    }
}

impl<S, H> Served<S, H> {
    /// Returns it with `tasks` running beside it.
    pub fn with_background(mut self, tasks: impl IntoIterator<Item = JoinHandle<()>>) -> Self {
        self.background.extend(tasks);
        self
    }

    /// Returns it with `warnings` to show.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    /// Returns it keeping `handle`.
    pub fn with_handle<K>(self, handle: K) -> Served<S, K> {
        Served {
            service: self.service,
            background: self.background,
            warnings: self.warnings,
            handle,
        }
    }
}
