//! The chain of programs that starts one instance, each doing one step and `exec`ing the next,
//! so that the instance is one process from nuage's point of view (its pid, its kill):
//!
//! 1. `unshare --net --mount`: a network namespace of its own (nothing in it but loopback: the
//!    instance binds no port on any host interface and reaches nothing of the host) and a
//!    private mount namespace for the next step.
//! 2. `sh` (as root): joins the instance's control groups, brings loopback up, limits open
//!    files, and stages what the sandbox binds (the image root, a language runtime outside the
//!    system directories) on a private `/tmp`, since the sandbox is set up by an unprivileged id
//!    that may not traverse the data directory. For gVisor, it lays a private overlay (its upper
//!    layer on a small tmpfs) over the image root, since `runsc` makes its mount points in the
//!    root it is given: the unpacked image, which other instances (of either sandbox) share,
//!    stays as it was unpacked. It opens the instance's arguments and syscall filter on
//!    descriptors 3 and 4, then execs the sandbox.
//! 3. bubblewrap, as the unprivileged host id `runner.instance_uid` (never root, not even through
//!    its user namespace): its own root of read-only binds, `/proc`, `/dev`, a bounded `/tmp`, no
//!    capabilities, `no_new_privs`, no further user namespaces, the syscall filter, an empty
//!    environment plus the instance's variables, read from descriptor 3 (never on a command
//!    line). Or gVisor (`runsc`), which does the same from an OCI bundle, with a user-space kernel
//!    between the instance and the host.

use crate::config::{Egress, RunnerConfig, Sandbox, SandboxKind};
use crate::error::RunnerError;
use crate::offer::{Offer, find_program};
use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What step 2 runs. Arguments: `<cgroup.procs>... -- <isolated 0|1> <image root|-> <runtime
/// root|-> <args> <filter> <open files> <nftables ruleset|-> <root to overlay|-> <overlay's
/// scratch directory|-> -- <next program...>`.
const STAGE: &str = r#"
while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift
isolated=$1 root=$2 runtime=$3 args=$4 filter=$5 files=$6 blocked=$7 overlaid=$8 scratch=$9; shift 10
exec 3<"$args" 4<"$filter" || exit 125
ulimit -n "$files" || exit 125
if [ "$isolated" = 1 ]; then
  ip link set lo up || exit 125
  if [ "$blocked" != - ]; then printf '%s\n' "$blocked" | nft -f - || exit 125; fi
  if [ "$root" != - ]; then
    exec 5<"$root" || exit 125
    if [ "$runtime" != - ]; then exec 6<"$runtime" || exit 125; fi
    mount -t tmpfs -o mode=1777,size=4m nuage-stage /tmp || exit 125
    mkdir /tmp/root && mount --bind /proc/self/fd/5 /tmp/root || exit 125
    if [ "$runtime" != - ]; then mkdir /tmp/runtime && mount --bind /proc/self/fd/6 /tmp/runtime || exit 125; fi
    exec 5<&- 6<&-
  fi
  if [ "$overlaid" != - ]; then
    mount -t tmpfs -o mode=0700,size=1m nuage-overlay "$scratch" || exit 125
    mkdir "$scratch/upper" "$scratch/work" || exit 125
    mount -t overlay nuage-root -o "lowerdir=$overlaid,upperdir=$scratch/upper,workdir=$scratch/work" "$overlaid" || exit 125
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
    /// bubblewrap, where it is offered.
    pub bubblewrap: Option<PathBuf>,
    /// gVisor's `runsc`, where it is offered.
    pub runsc: Option<PathBuf>,
    setpriv: Option<PathBuf>,
    /// passt's `pasta`, for `egress = public`.
    pasta: Option<PathBuf>,
    /// iproute2's `ip`: with egress, it names each instance's namespace for `pasta`.
    ip: Option<PathBuf>,
    /// With egress: what the nftables ruleset of every instance's namespace refuses
    /// connections to, the non-public ranges and the host's networks as they were at start (the
    /// instance holds no capability to change it). The host's own addresses are added as they
    /// are when each instance starts, and again in running instances whenever they change
    /// ([`Tools::watch_host_addresses`]).
    blocked: Option<Vec<String>>,
    /// With egress: the instances whose namespaces are named (`nuage-<id>`) and filtered.
    filtered: Arc<Mutex<HashSet<String>>>,
    /// With egress: the host's addresses as last read, refused when they cannot be read again.
    /// Held while a filter is worked out and applied, so that one worked out earlier is never
    /// applied over one worked out later.
    addresses: Arc<Mutex<Vec<std::net::IpAddr>>>,
}

/// Ranges an instance with public egress never reaches: private, shared, link-local,
/// benchmarking, multicast and reserved ones (the host's own networks are added).
const NOT_PUBLIC: [&str; 13] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// The ruleset refusing TCP and UDP to `prefixes` (one rule each: nftables refuses overlapping
/// intervals in one set, and the host's networks may lie inside the ranges).
fn ruleset(prefixes: &[String]) -> String {
    let mut text =
        String::from("table inet nuage {\n  chain out {\n    type filter hook output priority 0; policy accept;\n");
    for prefix in prefixes {
        let family = if prefix.contains(':') { "ip6" } else { "ip" };
        text.push_str(&format!(
            "    meta l4proto {{ tcp, udp }} {family} daddr {prefix} reject\n"
        ));
    }
    text.push_str("  }\n}");
    text
}

/// The host's own addresses (`ip -o addr show`), loopback and IPv6 link-local aside, with the
/// lengths of their networks' prefixes; `None` when they cannot be read.
fn host_addresses(ip: &Path) -> Option<Vec<(std::net::IpAddr, u32)>> {
    let output = std::process::Command::new(ip)
        .args(["-o", "addr", "show"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let addresses = text
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3))
        .filter_map(|prefix| {
            let (address, length) = prefix.split_once('/')?;
            let address: std::net::IpAddr = address.parse().ok()?;
            let own = match address {
                std::net::IpAddr::V4(v4) => !v4.is_loopback(),
                std::net::IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
            };
            own.then_some((address, length.parse().ok()?))
        })
        .collect();
    Some(addresses)
}

/// The networks of the host's own addresses, as prefixes.
fn host_networks(addresses: &[(std::net::IpAddr, u32)]) -> Vec<String> {
    addresses
        .iter()
        .copied()
        .map(|(address, length)| match address {
            std::net::IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - length.min(32)).unwrap_or(0);
                format!("{}/{length}", std::net::Ipv4Addr::from(u32::from(v4) & mask))
            }
            std::net::IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - length.min(128)).unwrap_or(0);
                format!("{}/{length}", std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
        })
        .collect()
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective id).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

impl Tools {
    /// Finds what `config` and the sandboxes of `offer` need.
    pub fn find(config: &RunnerConfig, offer: &Offer) -> Self {
        let offered = |kind: SandboxKind| {
            offer
                .offered
                .contains(&kind)
                .then(|| find_program(kind.program()))
                .flatten()
        };
        let (unshare, ip) = match ["unshare", "mount", "ip"].map(find_program) {
            [Some(unshare), Some(_), Some(ip)] if is_root() && config.sandbox != Sandbox::None => {
                (Some(unshare), Some(ip))
            }
            _ => (None, None),
        };
        // Egress needs both the user-mode stack and the filter that keeps it to public addresses.
        let pasta = match (config.egress, &ip, find_program("pasta"), find_program("nft")) {
            (Egress::Public, Some(_), Some(pasta), Some(_)) => Some(pasta),
            _ => None,
        };
        let at_start = ip.as_deref().and_then(host_addresses).unwrap_or_default();
        let blocked = pasta.as_ref().zip(ip.as_deref()).map(|_| {
            let mut prefixes: Vec<String> = NOT_PUBLIC.map(str::to_owned).to_vec();
            prefixes.extend(host_networks(&at_start));
            prefixes
        });
        Self {
            unshare,
            sh: find_program("sh").unwrap_or_else(|| PathBuf::from("/bin/sh")),
            bubblewrap: offered(SandboxKind::Bubblewrap),
            runsc: offered(SandboxKind::Gvisor),
            setpriv: find_program("setpriv"),
            pasta,
            ip,
            blocked,
            filtered: Arc::default(),
            addresses: Arc::new(Mutex::new(at_start.into_iter().map(|(address, _)| address).collect())),
        }
    }

    /// With egress: the ruleset of an instance starting now, which refuses what `blocked` lists
    /// and every address the host has now (one it gained since nuage started too).
    fn ruleset(&self) -> Option<String> {
        self.ruleset_of(&self.read_addresses())
    }

    /// Reads the host's addresses (the last ones read, should that fail); the lock held keeps
    /// them until the filter worked out from them is applied.
    fn read_addresses(&self) -> std::sync::MutexGuard<'_, Vec<std::net::IpAddr>> {
        let mut known = self.addresses.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.ip.as_deref().and_then(host_addresses) {
            Some(addresses) => *known = addresses.into_iter().map(|(address, _)| address).collect(),
            None => tracing::warn!("cannot read the host's addresses: the last ones read stay refused"),
        }
        known
    }

    /// With egress: the ruleset refusing what `blocked` lists and `addresses`.
    fn ruleset_of(&self, addresses: &[std::net::IpAddr]) -> Option<String> {
        let blocked = self.blocked.as_ref()?;
        let own = addresses
            .iter()
            .map(|address| format!("{address}/{}", if address.is_ipv4() { 32 } else { 128 }));
        Some(ruleset(&blocked.iter().cloned().chain(own).collect::<Vec<_>>()))
    }

    /// Returns the program of sandbox `kind`, when it is offered and installed.
    pub fn program_of(&self, kind: SandboxKind) -> Option<&Path> {
        match kind {
            SandboxKind::Bubblewrap => self.bubblewrap.as_deref(),
            SandboxKind::Gvisor => self.runsc.as_deref(),
        }
    }

    /// Whether instances get a network namespace of their own.
    pub fn isolates_network(&self) -> bool {
        self.unshare.is_some()
    }

    /// Why instances are less isolated than they should be, if they are.
    pub fn warnings(&self, config: &RunnerConfig, offer: &Offer) -> Vec<String> {
        let mut warnings = Vec::new();
        if offer.default.is_none() {
            warnings.push(
                "no sandbox: bubblewrap is not installed (or not offered), instances that ask for no sandbox run as \
                 plain processes"
                    .to_owned(),
            );
        }
        if self.unshare.is_none() && config.sandbox != Sandbox::None {
            warnings.push(
                "no network isolation: instances share the host's network (it needs root, util-linux's `unshare` \
                 and `mount`, and iproute2's `ip`)"
                    .to_owned(),
            );
        }
        if config.egress == Egress::Public && self.pasta.is_none() && self.unshare.is_some() {
            warnings.push("no egress: runner.egress is `public` but passt's `pasta` is not installed".to_owned());
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
    /// For gVisor: the image root to lay a private overlay over, and an empty directory for
    /// the overlay's own files (seen only by the instance's mount namespace).
    pub overlay: Option<(&'a Path, &'a Path)>,
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
            self.ruleset().unwrap_or_else(|| "-".to_owned()).into(),
            staged(chain.overlay.map(|(root, _)| root)),
            staged(chain.overlay.map(|(_, scratch)| scratch)),
            "--".into(),
        ]);
        if let Some(setpriv) = &self.setpriv {
            if chain.root.is_some() && self.unshare.is_some() {
                let (uid, gid) = (config.instance_uid.to_string(), config.instance_gid.to_string());
                line.push(setpriv.clone().into());
                line.extend(["--reuid", &uid, "--regid", &gid, "--clear-groups", "--"].map(OsString::from));
            }
            // After any change of ids, which clears it: the instance (gVisor's `runsc` too)
            // dies with nuage.
            line.push(setpriv.clone().into());
            line.extend(["--pdeathsig", "KILL", "--"].map(OsString::from));
        }
        line.extend(sandbox);
        line
    }
}

impl Tools {
    /// With public egress: the command lines that name the namespace of `pid` after the
    /// instance (`ip netns attach`: `pasta` opens namespaces by such a name, not through
    /// `/proc`), then connect it to public addresses with `pasta` (no port forwarded in either
    /// direction, the gateway not mapped to the host's loopback), in the foreground. It stays
    /// root: as `nobody` it cannot enter a namespace root made (it confines itself with its
    /// own namespaces and seccomp filter).
    pub fn egress(&self, instance_id: &str, pid: u32) -> Option<[Vec<OsString>; 2]> {
        let (pasta, ip) = (self.pasta.as_ref()?, self.ip.as_ref()?);
        let name = format!("nuage-{instance_id}");
        let attach = [
            ip.as_os_str(),
            "netns".as_ref(),
            "attach".as_ref(),
            name.as_ref(),
            pid.to_string().as_ref(),
        ]
        .map(OsString::from)
        .to_vec();
        let mut line: Vec<OsString> = vec![pasta.clone().into()];
        line.extend(
            [
                "--foreground",
                "--quiet",
                "--runas",
                "0:0",
                "--config-net",
                "--no-map-gw",
                "-t",
                "none",
                "-u",
                "none",
                "-T",
                "none",
                "-U",
                "none",
                "--netns",
            ]
            .map(OsString::from),
        );
        line.push(format!("/run/netns/{name}").into());
        Some([attach, line])
    }

    /// Counts the instance, whose namespace [`Tools::egress`] named, among those whose filter
    /// follows the host's addresses, and gives it the filter of now (the host may have gained
    /// an address since its namespace was filtered, before it was counted), on a thread of
    /// its own.
    pub fn filtered(&self, instance_id: &str) {
        self.filtered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(instance_id.to_owned());
        let (tools, instance_id) = (self.clone(), instance_id.to_owned());
        tokio::task::spawn_blocking(move || {
            let addresses = tools.read_addresses();
            if let Some(ruleset) = tools.ruleset_of(&addresses) {
                tools.refilter(&instance_id, &ruleset);
            }
        });
    }

    /// Replaces the filter of the instance's namespace with `ruleset`, in one transaction.
    fn refilter(&self, instance_id: &str, ruleset: &str) {
        use std::io::Write;
        let Some(ip) = &self.ip else { return };
        let namespace = format!("nuage-{instance_id}");
        let started = std::process::Command::new(ip)
            .args(["netns", "exec", &namespace, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = started else {
            tracing::warn!(instance_id, "cannot run nft in the instance's namespace");
            return;
        };
        if let Some(mut input) = child.stdin.take() {
            // `add` then `delete` removes the table whether or not it is there.
            let _ = write!(input, "add table inet nuage\ndelete table inet nuage\n{ruleset}\n");
        }
        match child.wait_with_output() {
            Ok(output) if output.status.success() => {}
            // Gone meanwhile: its namespace went with it.
            Ok(_) if !Path::new("/run/netns").join(&namespace).exists() => {}
            Ok(output) => tracing::warn!(
                instance_id,
                error = %String::from_utf8_lossy(&output.stderr).trim(),
                "the instance's egress filter could not be updated"
            ),
            Err(error) => tracing::warn!(instance_id, %error, "the instance's egress filter could not be updated"),
        }
    }

    /// With egress: starts the task that gives every running instance the filter of now
    /// whenever the host's addresses change (`ip monitor address`), so that an address the host
    /// gains while an instance runs is refused to it too. `None` without egress.
    pub fn watch_host_addresses(&self) -> Option<tokio::task::JoinHandle<()>> {
        let ip = self.ip.clone().filter(|_| self.blocked.is_some())?;
        let tools = self.clone();
        Some(tokio::spawn(async move {
            loop {
                if let Err(error) = tools.follow_address_changes(&ip).await {
                    tracing::warn!(%error, "cannot follow the host's addresses; trying again");
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }))
    }

    /// Refilters every instance at each change `ip monitor address` reports, until it ends; and
    /// once when it starts following, for what changed while nothing followed.
    async fn follow_address_changes(&self, ip: &Path) -> std::io::Result<()> {
        use tokio::io::AsyncBufReadExt;
        use tokio::time::{Duration, Instant, timeout};
        let mut monitor = tokio::process::Command::new(ip)
            .args(["-o", "monitor", "address"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = monitor
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no output"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        self.refilter_all().await;
        while lines.next_line().await?.is_some() {
            // One change often comes as several lines: take those that follow within 50 ms of
            // each other (for half a second at most), then refilter once.
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until
                && matches!(
                    timeout(Duration::from_millis(50), lines.next_line()).await,
                    Ok(Ok(Some(_)))
                )
            {}
            self.refilter_all().await;
        }
        Err(std::io::Error::other("`ip monitor address` ended"))
    }

    /// Gives every running instance the filter of now.
    async fn refilter_all(&self) {
        let tools = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let addresses = tools.read_addresses();
            let Some(ruleset) = tools.ruleset_of(&addresses) else {
                return;
            };
            let instances: Vec<String> = tools
                .filtered
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .cloned()
                .collect();
            for instance_id in instances {
                tools.refilter(&instance_id, &ruleset);
            }
        })
        .await;
    }

    /// Forgets the name [`Tools::egress`] gave an instance's namespace, if it gave one.
    pub fn forget_egress(&self, instance_id: &str) {
        self.filtered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(instance_id);
        if let (Some(_), Some(ip)) = (&self.pasta, &self.ip) {
            let _ = std::process::Command::new(ip)
                .args(["netns", "delete", &format!("nuage-{instance_id}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
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
