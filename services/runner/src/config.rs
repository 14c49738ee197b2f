//! Configuration of the runner.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How instances are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    /// bubblewrap when installed, else plain processes (with a warning).
    Auto,
    /// bubblewrap; start-up fails without it.
    Bubblewrap,
    /// gVisor (`runsc`): a user-space kernel between instances and the host; start-up fails
    /// without it.
    Gvisor,
    /// Plain processes: no isolation. For development machines only.
    None,
}

/// A sandbox a function or container may ask for by name (`sandbox` in v1beta1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    /// bubblewrap (`bwrap`): Scaleway's "sandbox v1", the host kernel's full syscall interface
    /// behind namespaces and a syscall filter.
    Bubblewrap,
    /// gVisor (`runsc`): Scaleway's "sandbox v2", a user-space kernel between the instance and
    /// the host.
    Gvisor,
}

impl SandboxKind {
    /// Every kind, the one `auto` prefers first.
    pub const ALL: [Self; 2] = [Self::Bubblewrap, Self::Gvisor];

    /// Returns its name in `nuage.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bubblewrap => "bubblewrap",
            Self::Gvisor => "gvisor",
        }
    }

    /// Returns the program it runs.
    pub fn program(self) -> &'static str {
        match self {
            Self::Bubblewrap => "bwrap",
            Self::Gvisor => "runsc",
        }
    }

    /// Returns Scaleway's name of it: `v1` or `v2`.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Bubblewrap => "v1",
            Self::Gvisor => "v2",
        }
    }

    /// Returns the kind a spec names, `None` for the default.
    pub fn from_proto(sandbox: nuage_proto::common::v1::Sandbox) -> Option<Self> {
        use nuage_proto::common::v1::Sandbox;
        match sandbox {
            Sandbox::Unspecified => None,
            Sandbox::V1 => Some(Self::Bubblewrap),
            Sandbox::V2 => Some(Self::Gvisor),
        }
    }
}

/// What an instance can reach beyond its own loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    /// Nothing: the instance's namespace has no route at all.
    None,
    /// Public addresses, through a user-mode network stack (`pasta`); the host's loopback and
    /// addresses, its networks, link-local and private ranges stay unreachable.
    Public,
}

/// The `[runner]` section of `nuage.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerConfig {
    /// Where instances run: `local` (sandboxed processes on this machine).
    pub backend: String,
    /// How local instances are isolated when their function or container asks for no
    /// sandbox of its own.
    pub sandbox: Sandbox,
    /// The sandboxes a function or container may ask for (`v1`: `bubblewrap`, `v2`: `gvisor`);
    /// one not listed is refused. Unset: those installed (none with `sandbox = "none"`). Each
    /// listed must be installed, and `sandbox`, when it names one, must be listed.
    pub sandboxes: Option<Vec<SandboxKind>>,
    /// Where images are unpacked; default `<data-dir>/runner`.
    pub work_dir: Option<PathBuf>,
    /// The OCI image layouts the builder writes; default `<data-dir>/registry` (the builder's).
    pub registry_dir: Option<PathBuf>,
    /// The host of the installation's own registry, whose images are those layouts (set by
    /// the process from `namespaces.registry_host`, not read from the file): an image of any
    /// other host is pulled from that host, never read from a layout of the same path.
    #[serde(skip)]
    pub registry_host: Option<String>,
    /// Speak plain HTTP to registries images are pulled from (a registry on loopback).
    pub registry_insecure: bool,
    /// How long a registry may keep a pull waiting (ms): to open a connection (a fifth of it)
    /// or between two reads. Past it, the start fails saying so.
    pub registry_timeout_ms: u64,
    /// Seconds an instance has to answer on its port before it counts as failed.
    pub start_timeout_seconds: u64,
    /// Cap memory with cgroups when they are writable.
    pub memory_limits: bool,
    /// Lines a second (and burst) of one instance's stdout, and as many of its stderr, shipped
    /// to the logs service; more are dropped and counted, so that a flood cannot crowd out
    /// other applications' lines.
    pub log_lines_per_second: u32,
    /// The unprivileged host user and group instances run as (never root).
    pub instance_uid: u32,
    /// See `instance_uid`.
    pub instance_gid: u32,
    /// Processes and threads one instance may run at once (cgroup `pids.max`).
    pub max_processes: u32,
    /// Files one instance may hold open.
    pub max_open_files: u32,
    /// What instances can reach beyond their own loopback.
    pub egress: Egress,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            backend: "local".to_owned(),
            sandbox: Sandbox::Auto,
            sandboxes: None,
            work_dir: None,
            registry_dir: None,
            registry_host: None,
            registry_insecure: false,
            registry_timeout_ms: 30_000,
            start_timeout_seconds: 30,
            memory_limits: true,
            log_lines_per_second: 2000,
            instance_uid: 100_000,
            instance_gid: 100_000,
            max_processes: 256,
            max_open_files: 1024,
            egress: Egress::None,
        }
    }
}

impl RunnerConfig {
    /// Returns a description of the first invalid setting, if any.
    pub fn validate(&self) -> Result<(), String> {
        let Some(listed) = &self.sandboxes else {
            return Ok(());
        };
        let chosen = match self.sandbox {
            Sandbox::None if !listed.is_empty() => {
                return Err(
                    "runner.sandboxes must be empty with runner.sandbox = \"none\": instances run unsandboxed"
                        .to_owned(),
                );
            }
            Sandbox::Bubblewrap => SandboxKind::Bubblewrap,
            Sandbox::Gvisor => SandboxKind::Gvisor,
            Sandbox::Auto | Sandbox::None => return Ok(()),
        };
        if listed.contains(&chosen) {
            Ok(())
        } else {
            Err(format!(
                "runner.sandboxes must list `{}`, the default runner.sandbox",
                chosen.name()
            ))
        }
    }
}
