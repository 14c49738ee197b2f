//! gVisor instances: an OCI runtime bundle for `runsc`, which puts a user-space kernel between
//! the instance and the host (Scaleway's "sandbox v2"). `runsc` runs in the instance's network
//! namespace with `--network=host`, so the instance is reached exactly as a bubblewrap one is.

use crate::error::RunnerError;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, Process, ProcessBuilder, RootBuilder, SpecBuilder, UserBuilder,
};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What an instance's bundle says.
#[derive(Debug)]
pub struct Bundle<'a> {
    /// The image root, read-only.
    pub root: &'a Path,
    /// Host directories bound read-only at the same place (a function's language runtime).
    pub binds: &'a [PathBuf],
    /// The host ids the instance runs as.
    pub user: (u32, u32),
    /// Program and arguments.
    pub command: Vec<String>,
    /// The instance's variables.
    pub environment: &'a [(String, String)],
    /// The working directory.
    pub working_dir: &'a str,
    /// `/tmp`'s size in bytes.
    pub tmp_bytes: u64,
    /// Open files the instance may hold.
    pub open_files: u64,
}

fn invalid(error: impl std::fmt::Display) -> RunnerError {
    RunnerError::Prepare(std::io::Error::other(error.to_string()))
}

/// Writes `<directory>/config.json` (readable by root only: it holds the instance's variables).
pub fn write_bundle(directory: &Path, bundle: &Bundle<'_>) -> Result<(), RunnerError> {
    let spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(bundle.root)
                .readonly(true)
                .build()
                .map_err(invalid)?,
        )
        .hostname("instance")
        .process(process(bundle)?)
        .mounts(mounts(bundle)?)
        .linux(
            LinuxBuilder::default()
                .namespaces(namespaces()?)
                .build()
                .map_err(invalid)?,
        )
        .build()
        .map_err(invalid)?;
    let text = serde_json::to_vec(&spec).map_err(invalid)?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(directory.join("config.json"))?
        .write_all(&text)?;
    Ok(())
}

/// `/proc`, a bounded `/tmp` and the read-only binds.
fn mounts(bundle: &Bundle<'_>) -> Result<Vec<Mount>, RunnerError> {
    let mut mounts = vec![
        MountBuilder::default()
            .destination("/proc")
            .typ("proc")
            .source("proc")
            .build()
            .map_err(invalid)?,
        MountBuilder::default()
            .destination("/tmp")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec![format!("size={}", bundle.tmp_bytes), "mode=1777".to_owned()])
            .build()
            .map_err(invalid)?,
    ];
    for bind in bundle.binds {
        mounts.push(
            MountBuilder::default()
                .destination(bind)
                .typ("bind")
                .source(bind)
                .options(vec!["rbind".to_owned(), "ro".to_owned()])
                .build()
                .map_err(invalid)?,
        );
    }
    Ok(mounts)
}

/// The instance's process: its command, variables and directory, its ids, no capabilities,
/// no new privileges, and its open-file limit.
fn process(bundle: &Bundle<'_>) -> Result<Process, RunnerError> {
    ProcessBuilder::default()
        .args(bundle.command.clone())
        .env(
            bundle
                .environment
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>(),
        )
        .cwd(bundle.working_dir)
        .user(
            UserBuilder::default()
                .uid(bundle.user.0)
                .gid(bundle.user.1)
                .build()
                .map_err(invalid)?,
        )
        .no_new_privileges(true)
        .capabilities(LinuxCapabilitiesBuilder::default().build().map_err(invalid)?)
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(bundle.open_files)
                .soft(bundle.open_files)
                .build()
                .map_err(invalid)?,
        ])
        .build()
        .map_err(invalid)
}

/// The namespaces of its own. No network namespace here: runsc's host network is the
/// instance's own namespace.
fn namespaces() -> Result<Vec<LinuxNamespace>, RunnerError> {
    [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build().map_err(invalid))
    .collect()
}

/// The `runsc` command line that runs the bundle in `directory` as container `id`, keeping its
/// state under `state`.
pub fn command(runsc: &Path, state: &Path, directory: &Path, id: &str) -> Vec<OsString> {
    let mut line = vec![runsc.as_os_str().to_owned()];
    line.push(format!("--root={}", state.display()).into());
    // The instance's cgroups are joined before runsc starts: it must leave them be.
    line.extend(["--network=host", "--ignore-cgroups", "run", "--bundle"].map(OsString::from));
    line.push(directory.as_os_str().to_owned());
    line.push(id.into());
    line
}
