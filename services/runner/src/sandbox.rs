//! The chain of programs that starts one instance, each doing one step and `exec`ing the next,
//! so that the instance is one process from nuage's point of view (its pid, its kill):
//!
//! 1. `unshare --net --mount`: a network namespace of its own (nothing in it but loopback: the
//!    instance binds no port on any host interface and reaches nothing of the host) and a
//!    private mount namespace for the next step.
//! 2. `sh` (as root): joins the instance's control groups, brings loopback up, limits open
//!    files, and stages what the sandbox binds (the image root, a language runtime outside the
//!    system directories) on a private `/tmp`, since the sandbox is set up by an unprivileged id
//!    that may not traverse the data directory. It opens the instance's arguments and syscall
//!    filter on descriptors 3 and 4, then execs the sandbox.
//! 3. bubblewrap, as the unprivileged host id `runner.instance_uid` (never root, not even through
//!    its user namespace): its own root of read-only binds, `/proc`, `/dev`, a bounded `/tmp`, no
//!    capabilities, `no_new_privs`, no further user namespaces, the syscall filter, an empty
//!    environment plus the instance's variables, read from descriptor 3 (never on a command
//!    line). Or gVisor (`runsc`), which does the same from an OCI bundle, with a user-space kernel
//!    between the instance and the host.

use crate::config::{RunnerConfig, Sandbox};
use crate::error::RunnerError;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What step 2 runs. Arguments: `<cgroup.procs>... -- <isolated 0|1> <image root|-> <runtime
/// root|-> <args> <filter> <open files> -- <next program...>`.
const STAGE: &str = r#"
while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift
isolated=$1 root=$2 runtime=$3 args=$4 filter=$5 files=$6; shift 7
exec 3<"$args" 4<"$filter" || exit 125
ulimit -n "$files" || exit 125
if [ "$isolated" = 1 ]; then
  ip link set lo up || exit 125
  if [ "$root" != - ]; then
    exec 5<"$root" || exit 125
    if [ "$runtime" != - ]; then exec 6<"$runtime" || exit 125; fi
    mount -t tmpfs -o mode=1777,size=4m nuage-stage /tmp || exit 125
    mkdir /tmp/root && mount --bind /proc/self/fd/5 /tmp/root || exit 125
    if [ "$runtime" != - ]; then mkdir /tmp/runtime && mount --bind /proc/self/fd/6 /tmp/runtime || exit 125; fi
    exec 5<&- 6<&-
  fi
fi
exec "$@"
"#;

/// Where the image root and the runtime are staged for the sandbox (see [`STAGE`]).
pub const STAGED_ROOT: &str = "/tmp/root";
/// Where a language runtime outside the system directories is staged.
pub const STAGED_RUNTIME: &str = "/tmp/runtime";

/// The programs the chain needs, found once.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Namespaces and staging need root and util-linux's `unshare` and `mount`, and iproute2.
    unshare: Option<PathBuf>,
    sh: PathBuf,
    /// bubblewrap, for `sandbox = bubblewrap` (or `auto`).
    pub bubblewrap: Option<PathBuf>,
    /// gVisor's `runsc`, for `sandbox = gvisor`.
    pub runsc: Option<PathBuf>,
    setpriv: Option<PathBuf>,
}

/// Returns `name` from the `PATH` (and the system directories root's `PATH` has).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective id).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

impl Tools {
    /// Finds what `config.sandbox` needs.
    pub fn find(config: &RunnerConfig) -> Self {
        let unshare = match ["unshare", "mount", "ip"].map(find_program) {
            [Some(unshare), Some(_), Some(_)] if is_root() && config.sandbox != Sandbox::None => Some(unshare),
            _ => None,
        };
        Self {
            unshare,
            sh: find_program("sh").unwrap_or_else(|| PathBuf::from("/bin/sh")),
            bubblewrap: matches!(config.sandbox, Sandbox::Auto | Sandbox::Bubblewrap)
                .then(|| find_program("bwrap"))
                .flatten(),
            runsc: (config.sandbox == Sandbox::Gvisor)
                .then(|| find_program("runsc"))
                .flatten(),
            setpriv: find_program("setpriv"),
        }
    }

    /// Whether instances get a network namespace of their own.
    pub fn isolates_network(&self) -> bool {
        self.unshare.is_some()
    }

    /// Why instances are less isolated than they should be, if they are.
    pub fn warnings(&self, config: &RunnerConfig) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.bubblewrap.is_none() && self.runsc.is_none() {
            warnings.push("no sandbox: bubblewrap is not installed, instances run as plain processes".to_owned());
        }
        if self.unshare.is_none() && config.sandbox != Sandbox::None {
            warnings.push(
                "no network isolation: instances share the host's network (it needs root, util-linux's `unshare` \
                 and `mount`, and iproute2's `ip`)"
                    .to_owned(),
            );
        }
        if self.bubblewrap.is_some() && (self.setpriv.is_none() || self.unshare.is_none()) {
            warnings.push("instances run as nuage's own user: `setpriv` (util-linux) and root are needed".to_owned());
        }
        warnings
    }
}

/// What one instance's chain needs to know.
#[derive(Debug)]
pub struct Chain<'a> {
    /// The instance's control groups' `cgroup.procs`.
    pub cgroups: &'a [PathBuf],
    /// The image root to stage for bubblewrap; `None` for gVisor (which runs as root and reads
    /// it itself) and plain processes.
    pub root: Option<&'a Path>,
    /// A language runtime's directory outside the system directories, to stage too.
    pub runtime: Option<&'a Path>,
    /// bubblewrap's `--args` file (the instance's variables), and the syscall filter.
    pub args: &'a Path,
    /// The compiled syscall filter.
    pub filter: &'a Path,
    /// Open files an instance may hold.
    pub open_files: u32,
}

impl Tools {
    /// Returns the command line that runs `sandbox` (bubblewrap's or runsc's, with their
    /// arguments) in the instance's namespaces, or as it is where they cannot be made.
    pub fn chain(&self, config: &RunnerConfig, chain: &Chain<'_>, sandbox: Vec<OsString>) -> Vec<OsString> {
        let mut line: Vec<OsString> = Vec::new();
        if let Some(unshare) = &self.unshare {
            line.extend([unshare.as_os_str(), "--net".as_ref(), "--mount".as_ref()].map(OsString::from));
            line.extend(["--propagation", "private", "--"].map(OsString::from));
        }
        line.extend(
            [
                self.sh.as_os_str(),
                "-c".as_ref(),
                STAGE.as_ref(),
                "nuage-instance".as_ref(),
            ]
            .map(OsString::from),
        );
        line.extend(chain.cgroups.iter().map(|procs| procs.clone().into_os_string()));
        let staged = |path: Option<&Path>| path.map_or_else(|| OsString::from("-"), |path| path.as_os_str().to_owned());
        line.extend([
            "--".into(),
            if self.unshare.is_some() { "1" } else { "0" }.into(),
            staged(chain.root),
            staged(chain.root.and(chain.runtime)),
            chain.args.as_os_str().to_owned(),
            chain.filter.as_os_str().to_owned(),
            chain.open_files.to_string().into(),
            "--".into(),
        ]);
        if chain.root.is_some()
            && self.unshare.is_some()
            && let Some(setpriv) = &self.setpriv
        {
            // Two steps: a change of ids clears the parent-death signal, so it is set after.
            let (uid, gid) = (config.instance_uid.to_string(), config.instance_gid.to_string());
            line.push(setpriv.clone().into());
            line.extend(["--reuid", &uid, "--regid", &gid, "--clear-groups", "--"].map(OsString::from));
            line.push(setpriv.clone().into());
            line.extend(["--pdeathsig", "KILL", "--"].map(OsString::from));
        }
        line.extend(sandbox);
        line
    }
}

/// Writes bubblewrap's `--args` file: `--setenv KEY VALUE` for each variable, NUL-separated,
/// readable by root only (the chain opens it before it drops to the instance's id).
pub fn write_arguments(path: &Path, environment: &[(String, String)]) -> Result<(), RunnerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let mut bytes = Vec::new();
    for (key, value) in environment {
        for part in ["--setenv", key, value] {
            bytes.extend_from_slice(part.as_bytes());
            bytes.push(0);
        }
    }
    file.write_all(&bytes)?;
    Ok(())
}

/// Makes the unpacked image's files the instance's: readable whatever their mode in the image,
/// while its read-only binds keep them unchanged. Done once per image (a marker file says so).
pub fn give_image_to(root: &Path, uid: u32, gid: u32) -> Result<(), RunnerError> {
    let marker = root.with_file_name(format!(".owned-by-{uid}"));
    if marker.exists() {
        return Ok(());
    }
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    std::fs::write(marker, b"")?;
    Ok(())
}
