//! Why an instance could not be started: messages a person can act on.

use thiserror::Error;

/// A failure of the local backend's own making (the image's are reported as text).
#[derive(Debug, Error)]
pub enum RunnerError {
    /// A control group could not be made or limited.
    #[error("{0}")]
    Cgroup(String),
    /// The instance's files (its environment, its syscall filter, its bundle) could not be written.
    #[error("preparing the instance: {0}")]
    Prepare(#[from] std::io::Error),
    /// The seccomp filter could not be compiled.
    #[error("compiling the syscall filter: {0}")]
    Seccomp(String),
    /// A language runtime or a sandbox tool is missing.
    #[error("{0}")]
    Missing(String),
}

impl From<RunnerError> for String {
    fn from(error: RunnerError) -> Self {
        error.to_string()
    }
}
