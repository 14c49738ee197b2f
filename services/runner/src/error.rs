//! Why the runner failed: to find or unpack an image, to prepare or start an instance, or to
//! set itself up. Messages are for people to act on: a failed start reaches the tenant as its
//! function's `error_message` and in the router's answer.

use nuage_core::{ApiError, ErrorCode};
use std::fmt;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// A failure of the runner: the image's, the machine's or the instance's own.
#[derive(Debug, Error)]
pub enum RunnerError {
    // The image.
    /// The image is in no local layout and names no registry to pull it from.
    #[error(
        "the image `{reference}` is not in the image layouts under `{}` and names no registry",
        layouts.display()
    )]
    UnknownImage {
        /// The image.
        reference: String,
        /// Where layouts are looked for.
        layouts: PathBuf,
    },
    /// The layout holds no image of that tag (any more).
    #[error("the image `{tag}` is not in `{}` (pruned?)", layout.display())]
    Pruned {
        /// The tag.
        tag: String,
        /// The layout.
        layout: PathBuf,
    },
    /// The image reference does not parse.
    #[error("`{reference}` is not an image reference: {source}")]
    Reference {
        /// The reference.
        reference: String,
        /// Why.
        source: oci_client::ParseError,
    },
    /// The registry refused the pull or did not answer.
    #[error("pulling `{reference}`: {source}")]
    Pull {
        /// The image.
        reference: String,
        /// Why.
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// The image names a registry the runner does not pull from (see `registries.rs`).
    #[error("`{registry}` is not a registry this installation pulls images from: {reason}")]
    RegistryRefused {
        /// The registry, as the image names it.
        registry: String,
        /// Why not.
        reason: String,
    },
    /// A variable of the instance (its image's, most likely: the API refuses others) holds a
    /// NUL, which no process's environment can carry.
    #[error("the variable `{name}` holds a NUL character, which no environment can carry")]
    NulInVariable {
        /// The variable's name, a NUL in it written `\0`.
        name: String,
    },
    /// The unpacking task did not run to its end.
    #[error("unpacking `{reference}`: {source}")]
    UnpackTask {
        /// The image.
        reference: String,
        /// Why.
        source: tokio::task::JoinError,
    },
    /// A layout's index cannot be read.
    #[error("reading the image index of `{}`: {source}", layout.display())]
    Index {
        /// The layout.
        layout: PathBuf,
        /// Why.
        source: oci_spec::OciSpecError,
    },
    /// The image's manifest or config does not parse.
    #[error("the image {what} is not valid: {source}")]
    Invalid {
        /// `manifest` or `config`.
        what: &'static str,
        /// Why.
        source: oci_spec::OciSpecError,
    },
    /// A blob of a layout cannot be read.
    #[error("reading blob {digest}: {source}")]
    Blob {
        /// Its digest.
        digest: String,
        /// Why.
        source: io::Error,
    },
    /// A layer is not a readable tar archive.
    #[error("reading a layer: {0}")]
    Layer(io::Error),
    /// A layer's entry cannot be unpacked (it would be written through a link out of the root,
    /// say).
    #[error("unpacking `{}`: {source}", path.display())]
    LayerEntry {
        /// The entry.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A whiteout leads outside the image's root.
    #[error(
        "layer entry `{}` leads outside the image's root through a link or `..`; the image is refused",
        path.display()
    )]
    WhiteoutOutside {
        /// The whiteout entry.
        path: PathBuf,
    },
    /// A whiteout's removal failed.
    #[error("applying the whiteout `{}`: {source}", path.display())]
    Whiteout {
        /// The whiteout entry.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The image says nothing to run.
    #[error("the image has neither an entrypoint nor a command")]
    NoCommand,
    /// The unpacked image cannot be moved in place.
    #[error("keeping the unpacked image: {0}")]
    KeepImage(io::Error),

    // The machine.
    /// A directory of the runner's cannot be made.
    #[error("creating `{}`: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file of the runner's cannot be written.
    #[error("writing `{}`: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The configured backend is not built in.
    #[error("runner.backend `{0}` is not available: `local` or `kubernetes`")]
    UnknownBackend(String),
    /// A configured sandbox's program is missing.
    #[error("{setting} names `{sandbox}` but `{program}` is not installed")]
    SandboxMissing {
        /// `runner.sandbox` or `runner.sandboxes`.
        setting: &'static str,
        /// The configured sandbox.
        sandbox: &'static str,
        /// Its program.
        program: &'static str,
    },
    /// A spec names a sandbox this runner does not offer: it runs in no other instead.
    #[error("the sandbox `{sandbox}` is not offered by this runner (offered: {offered})")]
    SandboxNotOffered {
        /// The sandbox asked for.
        sandbox: &'static str,
        /// Those offered.
        offered: String,
    },
    /// A language runtime is missing.
    #[error("`{0}` is not installed on this machine")]
    NotInstalled(String),
    /// A control group could not be made or limited (`doing` names the step).
    #[error("{doing}: {source}")]
    Cgroup {
        /// The step.
        doing: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The instance's files (its environment, its syscall filter, its bundle) could not be written.
    #[error("preparing the instance: {0}")]
    Prepare(#[from] io::Error),
    /// The seccomp filter could not be compiled.
    #[error("compiling the syscall filter: {0}")]
    Seccomp(String),
    /// A secret environment variable does not open (the master key changed, or it is corrupt).
    #[error("the secret environment variable `{0}` could not be opened")]
    Secret(String),
    /// The chain that starts the instance could not be run.
    #[error("starting the instance: {0}")]
    Spawn(io::Error),
    /// The Kubernetes cluster cannot be reached as configured.
    #[error("runner.kubernetes: {0}")]
    KubernetesSetup(String),
    /// The Kubernetes API refused or failed a request.
    #[error("{doing}: {source}")]
    Kubernetes {
        /// What the runner was doing.
        doing: String,
        /// Why it failed.
        source: Box<kube::Error>,
    },
    /// No pod of a version became ready in time.
    #[error("no pod became ready within {seconds} s: {why}")]
    PodNotReady {
        /// The start timeout.
        seconds: u64,
        /// What the pods' status says.
        why: String,
    },
    /// A version was recorded before versions named their tenant and namespace, which the
    /// `kubernetes` backend places instances by.
    #[error("the current version of application {0} names no namespace: deploy it again")]
    Unplaced(String),
    /// A WebAssembly function's image holds no precompiled component.
    #[error("the image has no precompiled WebAssembly component (`/{path}`): {source}")]
    NoComponent {
        /// Where it was looked for, in the image.
        path: &'static str,
        /// Why it could not be read.
        source: io::Error,
    },
    /// An instance was asked of a WebAssembly function.
    #[error("application {0} is a WebAssembly function: the router runs it, it has no instances")]
    RunsInRouter(String),
    /// A component was asked of an application that is not a WebAssembly function.
    #[error("application {0} is not a WebAssembly function")]
    NotComponent(String),
    /// The runner's own network namespace cannot be read.
    #[error("reading namespaces: {0}")]
    Namespaces(io::Error),

    // The instance.
    /// The instance ended before it listened.
    #[error("the instance {exit} before listening on $PORT{output}")]
    ExitedEarly {
        /// How it ended (`exited with status 1`).
        exit: String,
        /// What it printed last.
        output: LastOutput,
    },
    /// The instance did not listen in time (it was killed).
    #[error("the instance did not listen on $PORT ({port}) within {seconds} s{output}")]
    NotListening {
        /// The port it was given.
        port: u16,
        /// The start timeout.
        seconds: u64,
        /// What it printed last.
        output: LastOutput,
    },
    /// The instance listened but its health check never passed (it was killed).
    #[error("the instance's health check GET {path} failed {tries} times: {last}{output}")]
    Unhealthy {
        /// The path asked.
        path: String,
        /// How many times.
        tries: u32,
        /// How the last try went.
        last: String,
        /// What it printed last.
        output: LastOutput,
    },
}

impl RunnerError {
    /// Returns the class of this failure. A start that fails is the application's: its
    /// version cannot run now, whatever the reason, and the previous version keeps serving.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownImage { .. }
            | Self::Pruned { .. }
            | Self::Reference { .. }
            | Self::Pull { .. }
            | Self::RegistryRefused { .. }
            | Self::NulInVariable { .. }
            | Self::UnpackTask { .. }
            | Self::Index { .. }
            | Self::Invalid { .. }
            | Self::Blob { .. }
            | Self::Layer(_)
            | Self::LayerEntry { .. }
            | Self::WhiteoutOutside { .. }
            | Self::Whiteout { .. }
            | Self::NoCommand
            | Self::KeepImage(_)
            | Self::Create { .. }
            | Self::Write { .. }
            | Self::UnknownBackend(_)
            | Self::SandboxMissing { .. }
            | Self::SandboxNotOffered { .. }
            | Self::NotInstalled(_)
            | Self::Cgroup { .. }
            | Self::Prepare(_)
            | Self::Spawn(_)
            | Self::Namespaces(_)
            | Self::NoComponent { .. }
            | Self::RunsInRouter(_)
            | Self::NotComponent(_)
            | Self::Unplaced(_)
            | Self::KubernetesSetup(_)
            | Self::Kubernetes { .. }
            | Self::PodNotReady { .. }
            | Self::ExitedEarly { .. }
            | Self::NotListening { .. }
            | Self::Unhealthy { .. } => ErrorCode::FailedPrecondition,
            // A filter that does not compile is a bug of nuage's (and stops it at start-up).
            Self::Seccomp(_) | Self::Secret(_) => ErrorCode::Internal,
        }
    }
}

impl From<RunnerError> for ApiError {
    fn from(error: RunnerError) -> Self {
        match error.code() {
            ErrorCode::Internal => Self::internal(&error),
            code => Self::new(code, error.to_string()),
        }
    }
}

/// The last lines an instance printed, as a failure shows them: nothing when it printed
/// nothing, otherwise `; its last output:` and the lines.
#[derive(Debug, Default)]
pub struct LastOutput(pub Vec<String>);

impl fmt::Display for LastOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        write!(f, "; its last output:\n{}", self.0.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_start_says_how_it_ended_and_what_the_instance_printed_last() {
        let silent = RunnerError::ExitedEarly {
            exit: "exited with status 1".to_owned(),
            output: LastOutput::default(),
        };
        assert_eq!(
            silent.to_string(),
            "the instance exited with status 1 before listening on $PORT"
        );
        let talkative = RunnerError::NotListening {
            port: 8080,
            seconds: 30,
            output: LastOutput(vec!["booting".to_owned(), "stuck".to_owned()]),
        };
        assert_eq!(
            talkative.to_string(),
            "the instance did not listen on $PORT (8080) within 30 s; its last output:\nbooting\nstuck"
        );
        let api = ApiError::from(talkative);
        assert_eq!(api.code, ErrorCode::FailedPrecondition);
        assert!(api.message.ends_with("booting\nstuck"));
    }

    #[test]
    fn an_internal_failure_keeps_its_detail_to_the_log() {
        let api = ApiError::from(RunnerError::Seccomp("no program".to_owned()));
        assert_eq!(api.code, ErrorCode::Internal);
        assert_eq!(api.message, "internal error");
    }
}
