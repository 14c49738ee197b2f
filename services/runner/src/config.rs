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
    /// How local instances are isolated.
    pub sandbox: Sandbox,
    /// Where images are unpacked; default `<data-dir>/runner`.
    pub work_dir: Option<PathBuf>,
    /// The OCI image layouts the builder writes; default `<data-dir>/registry` (the builder's).
    pub registry_dir: Option<PathBuf>,
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
            work_dir: None,
            registry_dir: None,
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
