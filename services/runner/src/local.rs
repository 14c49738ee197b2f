//! The `local` backend: each instance is a process tree on this machine, in a network namespace
//! of its own, in a sandbox (bubblewrap, or gVisor), as an unprivileged host id, in control
//! groups capping its memory, CPU and processes (see [`crate::sandbox`] for the chain that
//! starts it).

use crate::backend::{Backend, BackendParts, Component, Current, Running, last_wins, opened_environment};
use crate::cgroups::{Cgroups, Limits};
use crate::config::{Egress, RunnerConfig, SandboxKind};
use crate::error::RunnerError;
use crate::images::{Images, RegistryAuth, Unpacked};
use crate::limits::{memory_mb, tmp_bytes};
use crate::offer::{Offer, find_program};
use crate::output::{LogShipping, Tail, last_output, pump};
use crate::sandbox::{self, Chain, Tools};
use nuage_core::instance::InstanceAddress;
use nuage_proto::runner::v1::{Kind, OutputLine, Spec, Stream};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, oneshot};

/// The port instances with a network namespace of their own listen on (as on Scaleway).
const INSTANCE_PORT: u16 = 8080;
/// Host directories a function's language runtime needs, bound read-only.
const SYSTEM_PATHS: [&str; 12] = [
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/alternatives",
];

/// Runs instances as local processes.
#[derive(Debug)]
pub struct LocalBackend {
    config: RunnerConfig,
    images: Images,
    /// The sandboxes instances may run in.
    offer: Offer,
    tools: Tools,
    cgroups: Option<Cgroups>,
    /// Where each instance's files go (`<work_dir>/instances/<id>`), and the syscall filter.
    work_dir: PathBuf,
    filter: PathBuf,
    start_timeout: Duration,
    interpreters: Mutex<HashMap<String, PathBuf>>,
    output: broadcast::Sender<OutputLine>,
    logs: Option<LogShipping>,
    /// Opens secret environment variables (see [`nuage_core::secrets`]).
    sealing: [u8; 32],
}

/// How one instance is started: its command line, the environment the command itself gets
/// (plain processes only) and its working directory.
struct Prepared {
    line: Vec<OsString>,
    plain_environment: Option<Vec<(String, String)>>,
    working_dir: Option<PathBuf>,
    address: InstanceAddress,
    directory: PathBuf,
    instance_id: String,
}

impl LocalBackend {
    /// Returns the backend; `parts.work_dir` holds unpacked images and instances' files.
    /// Fails when a sandbox it offers is missing.
    pub fn new(config: &RunnerConfig, parts: BackendParts) -> Result<Self, RunnerError> {
        let offer = Offer::of_this_machine(config);
        let tools = Tools::find(config, &offer);
        if let Some(missing) = offer.offered.iter().find(|kind| tools.program_of(**kind).is_none()) {
            let listed = config.sandboxes.as_ref().is_some_and(|listed| listed.contains(missing));
            return Err(RunnerError::SandboxMissing {
                setting: if listed { "runner.sandboxes" } else { "runner.sandbox" },
                sandbox: missing.name(),
                program: missing.program(),
            });
        }
        for warning in tools.warnings(config, &offer) {
            tracing::warn!("{}", warning.to_uppercase());
        }
        let cgroups = if config.memory_limits { Cgroups::detect() } else { None };
        match &cgroups {
            None => tracing::warn!("cgroups are not writable here: instances run without memory, CPU or process caps"),
            Some(cgroups) => cgroups.missing().iter().for_each(|missing| tracing::warn!("{missing}")),
        }
        let work_dir = parts.work_dir.clone();
        std::fs::create_dir_all(work_dir.join("instances")).map_err(|source| RunnerError::Create {
            path: work_dir.clone(),
            source,
        })?;
        let filter = work_dir.join("seccomp.bpf");
        std::fs::write(&filter, crate::seccomp::compile()?).map_err(|source| RunnerError::Write {
            path: filter.clone(),
            source,
        })?;
        Ok(Self {
            config: config.clone(),
            images: parts.images(config).with_registry_host(config.registry_host.clone()),
            offer,
            tools,
            cgroups,
            work_dir,
            filter,
            start_timeout: Duration::from_secs(config.start_timeout_seconds.max(1)),
            interpreters: Mutex::new(HashMap::new()),
            output: parts.output,
            logs: parts.logs,
            sealing: parts.sealing,
        }
        .without_leftovers())
    }

    /// Removes what instances of an earlier run left (this runner's own end with it): their
    /// files (an instance cut short while starting still has its arguments, secrets opened, on
    /// disk), their cgroups and gVisor's state of them.
    fn without_leftovers(self) -> Self {
        let mut ids: Vec<String> = std::fs::read_dir(self.work_dir.join("instances"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        if let Some(runsc) = &self.tools.runsc {
            let listed = std::process::Command::new(runsc)
                .arg(format!("--root={}", self.work_dir.join("runsc").display()))
                .args(["list", "-quiet"])
                .stderr(Stdio::null())
                .output();
            if let Ok(listed) = listed {
                ids.extend(String::from_utf8_lossy(&listed.stdout).lines().map(str::to_owned));
            }
        }
        ids.sort();
        ids.dedup();
        let cleanup = self.cleanup(Some(SandboxKind::Gvisor));
        for id in ids.iter().filter(|id| !id.is_empty()) {
            tracing::info!(instance_id = %id, "removing what an earlier run's instance left");
            cleanup(id);
        }
        self
    }

    /// With public egress: starts the task that keeps running instances' filters up to date
    /// with the host's addresses.
    pub fn watch_host_addresses(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.tools.watch_host_addresses()
    }

    /// Why instances are less isolated than they should be, if they are.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.tools.warnings(&self.config, &self.offer);
        match &self.cgroups {
            None => warnings.push("no memory cap: cgroups are not writable".to_owned()),
            Some(cgroups) => warnings.extend(cgroups.missing().iter().map(|missing| (*missing).to_owned())),
        }
        warnings
    }

    /// Returns the absolute path of a language runtime, as the runtime itself reports it
    /// (a version manager's shim would cost a start-up of its own on every instance).
    fn interpreter(&self, name: &str) -> Result<PathBuf, RunnerError> {
        if let Some(path) = self.interpreters.lock().expect("interpreters lock").get(name) {
            return Ok(path.clone());
        }
        let asked = match name {
            n if n.starts_with("node") => Some(["-e", "process.stdout.write(process.execPath)"]),
            n if n.starts_with("python") => Some(["-c", "import sys; sys.stdout.write(sys.executable)"]),
            _ => None,
        };
        let path = match asked {
            Some(args) => std::process::Command::new(name)
                .args(args)
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())),
            None => find_program(name),
        }
        .and_then(|path| std::fs::canonicalize(path).ok())
        .ok_or_else(|| RunnerError::NotInstalled(name.to_owned()))?;
        self.interpreters
            .lock()
            .expect("interpreters lock")
            .insert(name.to_owned(), path.clone());
        Ok(path)
    }

    /// The program to run and, for a runtime outside the system directories (pyenv's, say),
    /// the directory to bind whole.
    fn program(&self, spec: &Spec, image: &Unpacked) -> Result<(PathBuf, Option<PathBuf>), RunnerError> {
        let command = image.command_for(spec);
        let first = command.first().ok_or(RunnerError::NoCommand)?;
        let program = PathBuf::from(first);
        if spec.kind() == Kind::Container || program.is_absolute() {
            return Ok((program, None));
        }
        let program = self.interpreter(first)?;
        let runtime_root = if SYSTEM_PATHS.iter().any(|system| program.starts_with(system)) {
            None
        } else {
            program.parent().and_then(Path::parent).map(Path::to_path_buf)
        };
        Ok((program, runtime_root))
    }

    /// The binds of an instance's root: the image's top-level entries (from `source`, where
    /// its root is seen by the sandbox) and, for a function, the host's system directories,
    /// in place of the image's (a function built on a runtime base image runs here on the
    /// host's interpreter all the same, which needs the host's libraries).
    fn binds(&self, image: &Unpacked, source: &Path, function: bool) -> Result<Vec<OsString>, RunnerError> {
        let mut taken = HashSet::new();
        let mut line: Vec<OsString> = Vec::new();
        for entry in std::fs::read_dir(&image.root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ["proc", "dev", "tmp", "sys"].contains(&name.as_str()) {
                continue;
            }
            let target = format!("/{name}");
            if function && SYSTEM_PATHS.contains(&target.as_str()) && Path::new(&target).exists() {
                continue;
            }
            match std::fs::read_link(entry.path()) {
                Ok(link) => line.extend(["--symlink".into(), link.into_os_string(), target.clone().into()]),
                Err(_) => line.extend([
                    "--ro-bind".into(),
                    source.join(&name).into_os_string(),
                    target.clone().into(),
                ]),
            }
            taken.insert(target);
        }
        if function {
            for system in SYSTEM_PATHS {
                if taken.contains(system) || !Path::new(system).exists() {
                    continue;
                }
                match std::fs::read_link(system) {
                    Ok(link) => line.extend(["--symlink".into(), link.into_os_string(), system.into()]),
                    Err(_) => line.extend(["--ro-bind", system, system].map(OsString::from)),
                }
            }
        }
        Ok(line)
    }

    /// bubblewrap's command line for `image` (the chain stages its root when it can).
    fn bubblewrap_line(
        &self,
        bubblewrap: &Path,
        spec: &Spec,
        image: &Unpacked,
        program: PathBuf,
        runtime_root: Option<&Path>,
    ) -> Result<Vec<OsString>, RunnerError> {
        let staged = self.tools.isolates_network();
        let root_source = if staged {
            Path::new(sandbox::STAGED_ROOT)
        } else {
            &image.root
        };
        let function = spec.kind() != Kind::Container;
        let (uid, gid) = (image.user.0.to_string(), image.user.1.to_string());
        let mut line: Vec<OsString> = vec![bubblewrap.into()];
        line.extend(
            [
                "--clearenv",
                "--args",
                "3",
                "--seccomp",
                "4",
                "--unshare-all",
                "--unshare-user",
                "--share-net",
                "--disable-userns",
                "--die-with-parent",
                "--new-session",
                "--uid",
                &uid,
                "--gid",
                &gid,
            ]
            .map(OsString::from),
        );
        line.extend(self.binds(image, root_source, function)?);
        if let Some(root) = runtime_root {
            let source = if staged {
                Path::new(sandbox::STAGED_RUNTIME)
            } else {
                root
            };
            line.extend(["--ro-bind".into(), source.into(), root.into()]);
        }
        let tmp_bytes = tmp_bytes(spec).to_string();
        line.extend(
            [
                "--proc", "/proc", "--dev", "/dev", "--size", &tmp_bytes, "--tmpfs", "/tmp",
            ]
            .map(OsString::from),
        );
        line.extend(["--chdir", &image.working_dir, "--"].map(OsString::from));
        line.push(program.into());
        line.extend(image.command_for(spec).iter().skip(1).map(OsString::from));
        Ok(line)
    }

    /// gVisor's: writes the instance's bundle into `directory`.
    fn gvisor_line(
        &self,
        runsc: &Path,
        spec: &Spec,
        image: &Unpacked,
        environment: &[(String, String)],
        directory: &Path,
        instance_id: &str,
    ) -> Result<Vec<OsString>, RunnerError> {
        let (program, runtime_root) = self.program(spec, image)?;
        let mut binds: Vec<PathBuf> = Vec::new();
        if spec.kind() != Kind::Container {
            // The host's, over the image's own (see `binds`).
            binds.extend(SYSTEM_PATHS.iter().map(PathBuf::from).filter(|system| system.exists()));
            binds.extend(runtime_root);
        }
        let mut command = vec![program.to_string_lossy().into_owned()];
        command.extend(image.command_for(spec).into_iter().skip(1));
        crate::gvisor::write_bundle(
            directory,
            &crate::gvisor::Bundle {
                root: &image.root,
                binds: &binds,
                user: (self.config.instance_uid, self.config.instance_gid),
                command,
                environment,
                working_dir: &image.working_dir,
                tmp_bytes: tmp_bytes(spec),
                open_files: u64::from(self.config.max_open_files),
            },
        )?;
        Ok(crate::gvisor::command(
            runsc,
            &self.work_dir.join("runsc"),
            directory,
            instance_id,
        ))
    }

    /// Everything that starts one instance of `spec` in `sandbox` (`None`: a plain process):
    /// its files, its cgroups, its command line.
    fn prepare(
        &self,
        spec: &Spec,
        image: &Unpacked,
        (instance_id, sandbox): (&str, Option<SandboxKind>),
        cgroups: &[PathBuf],
    ) -> Result<Prepared, RunnerError> {
        let isolated = self.tools.isolates_network();
        // In its own network namespace an instance listens where its spec says; sharing the
        // host's, it gets a free port through `PORT`.
        let port = match u16::try_from(spec.port) {
            _ if !isolated => free_port()?,
            Ok(0) | Err(_) => INSTANCE_PORT,
            Ok(port) => port,
        };
        let environment = environment(spec, image, port, &self.sealing)?;
        let directory = self.work_dir.join("instances").join(instance_id);
        std::fs::create_dir_all(&directory)?;
        let args = directory.join("args");
        sandbox::write_arguments(&args, &environment)?;
        // Outlives `chain`, which borrows it.
        let runtime_root: Option<PathBuf>;
        let scratch = directory.join("overlay");
        let mut chain = Chain {
            cgroups,
            root: None,
            runtime: None,
            overlay: None,
            args: &args,
            filter: &self.filter,
            open_files: self.config.max_open_files,
        };
        let (mut plain_environment, mut working_dir) = (None, None);
        let line = match sandbox {
            Some(kind @ SandboxKind::Gvisor) => {
                let runsc = self.sandbox_program(kind)?;
                std::fs::create_dir(&scratch)?;
                chain.overlay = Some((&image.root, &scratch));
                self.gvisor_line(runsc, spec, image, &environment, &directory, instance_id)?
            }
            Some(kind @ SandboxKind::Bubblewrap) => {
                let bubblewrap = self.sandbox_program(kind)?;
                self.give_image(&image.root)?;
                let (program, root) = self.program(spec, image)?;
                runtime_root = root;
                let line = self.bubblewrap_line(bubblewrap, spec, image, program, runtime_root.as_deref())?;
                chain.root = Some(&image.root);
                chain.runtime = runtime_root.as_deref();
                line
            }
            None => {
                let (line, directory, environment) = plain(spec, image, environment, &self.program(spec, image)?.0);
                (plain_environment, working_dir) = (Some(environment), Some(directory));
                line
            }
        };
        // The chain's staging reads `chain.root`, which only bubblewrap sets.
        let line = self.tools.chain(&self.config, &chain, line);
        Ok(Prepared {
            line,
            plain_environment,
            working_dir,
            address: InstanceAddress {
                socket: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                namespace: None,
            },
            directory,
            instance_id: instance_id.to_owned(),
        })
    }

    /// Returns the program of `kind`, which [`LocalBackend::new`] found for every sandbox offered.
    fn sandbox_program(&self, kind: SandboxKind) -> Result<&Path, RunnerError> {
        self.tools.program_of(kind).ok_or(RunnerError::SandboxMissing {
            setting: "runner.sandboxes",
            sandbox: kind.name(),
            program: kind.program(),
        })
    }

    /// Gives the image's files to the instance user (once per image: see
    /// [`sandbox::give_image_to`]), where instances run as that user.
    fn give_image(&self, root: &Path) -> Result<(), RunnerError> {
        if !self.tools.isolates_network() {
            return Ok(());
        }
        sandbox::give_image_to(root, self.config.instance_uid, self.config.instance_gid)
    }
}

/// Asks `path` of the instance at `address` until it answers 2xx or 3xx: `check`'s
/// `failure_threshold` tries, `interval_ms` apart, each given that long to answer.
async fn healthy(
    address: &InstanceAddress,
    path: &str,
    check: &nuage_proto::common::v1::HealthCheck,
    child: &mut Child,
    tail: &Tail,
) -> Result<(), RunnerError> {
    let interval = Duration::from_millis(check.interval_ms.max(1));
    let tries = check.failure_threshold.max(1);
    let mut last = String::new();
    for attempt in 1..=tries {
        if let Ok(Some(status)) = child.try_wait() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err(RunnerError::ExitedEarly {
                exit: describe_exit(Ok(status)),
                output: last_output(tail),
            });
        }
        match tokio::time::timeout(interval, http_status(address, path)).await {
            Ok(Ok(status)) if (200..400).contains(&status) => return Ok(()),
            Ok(Ok(status)) => last = format!("it answered {status}"),
            Ok(Err(error)) => last = error.to_string(),
            Err(_) => last = format!("no answer within {} ms", interval.as_millis()),
        }
        if attempt < tries {
            tokio::time::sleep(interval).await;
        }
    }
    Err(RunnerError::Unhealthy {
        path: path.to_owned(),
        tries,
        last,
        output: last_output(tail),
    })
}

/// Sends `GET path` to the instance at `address` and returns the status of its answer.
async fn http_status(address: &InstanceAddress, path: &str) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = address.connect().await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: nuage-health-check\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut buffer = [0_u8; 256];
    while !head.windows(2).any(|pair| pair == b"\r\n") && head.len() < 4096 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .filter(|_| line.starts_with("HTTP/"))
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "it did not answer HTTP"))
}

/// The instance's variables: defaults, the image's, the spec's (namespace < application <
/// platform, merged already), its secrets opened (namespace's < application's), then `PORT`;
/// each name once, the last given winning.
fn environment(
    spec: &Spec,
    image: &Unpacked,
    port: u16,
    sealing: &[u8; 32],
) -> Result<Vec<(String, String)>, RunnerError> {
    let mut environment: Vec<(String, String)> = vec![
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("HOME".to_owned(), "/tmp".to_owned()),
    ];
    environment.extend(image.environment.iter().cloned());
    environment.extend(opened_environment(spec, sealing)?);
    environment.push(("PORT".to_owned(), port.to_string()));
    let environment = last_wins(environment);
    // The API refuses such values; an image's config is checked here. A NUL would end a value
    // early in bubblewrap's `--args` file, and what follows would be read as its own options.
    if let Some((name, _)) = environment
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        return Err(RunnerError::NulInVariable {
            name: name.replace('\0', "\\0"),
        });
    }
    Ok(environment)
}

/// A plain process (no sandbox: development machines only): the image's paths are found under
/// its root. Returns the command line, the working directory and the environment.
fn plain(
    spec: &Spec,
    image: &Unpacked,
    mut environment: Vec<(String, String)>,
    program: &Path,
) -> (Vec<OsString>, PathBuf, Vec<(String, String)>) {
    let inside = |value: &str| -> Option<PathBuf> {
        let candidate = image.root.join(value.trim_start_matches('/'));
        (value.starts_with('/') && value.len() > 1 && candidate.exists()).then_some(candidate)
    };
    for (_, value) in &mut environment {
        if let Some(candidate) = inside(value) {
            *value = candidate.to_string_lossy().into_owned();
        }
    }
    let program = match spec.kind() {
        Kind::Container => inside(&program.to_string_lossy()).unwrap_or_else(|| program.to_path_buf()),
        _ => program.to_path_buf(),
    };
    let mut line = vec![program.into_os_string()];
    line.extend(
        image
            .command_for(spec)
            .iter()
            .skip(1)
            .map(|argument| inside(argument).map_or_else(|| OsString::from(argument), PathBuf::into_os_string)),
    );
    let working_dir = image.root.join(image.working_dir.trim_start_matches('/'));
    let working_dir = if working_dir.is_dir() {
        working_dir
    } else {
        image.root.clone()
    };
    (line, working_dir, environment)
}

fn free_port() -> Result<u16, RunnerError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn describe_exit(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => match status.code() {
            // The chain's own steps exit 125 when they fail (see `sandbox::STAGE`).
            Some(125) => "could not be set up (exit status 125)".to_owned(),
            Some(code) => format!("exited with status {code}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                format!("killed by signal {}", status.signal().unwrap_or(0))
            }
        },
        Err(error) => format!("could not be waited for: {error}"),
    }
}

impl LocalBackend {
    /// Spawns the prepared command with its output pumped to the logs.
    fn spawn(&self, prepared: &Prepared, spec: &Spec, instance_id: &str) -> Result<(Child, Tail), RunnerError> {
        let mut command = Command::new(&prepared.line[0]);
        command.args(&prepared.line[1..]).env_clear();
        match &prepared.plain_environment {
            Some(environment) => command.envs(environment.iter().map(|(k, v)| (k, v))),
            // Nothing of nuage's own environment reaches an instance.
            None => command.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        };
        if let Some(working_dir) = &prepared.working_dir {
            command.current_dir(working_dir);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(RunnerError::Spawn)?;
        let tail = Tail::default();
        for (reader, stream) in [
            (
                child
                    .stdout
                    .take()
                    .map(|out| Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                Stream::Stdout,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|err| Box::new(err) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                Stream::Stderr,
            ),
        ] {
            if let Some(reader) = reader {
                pump(
                    reader,
                    stream,
                    spec,
                    instance_id,
                    self.output.clone(),
                    tail.clone(),
                    self.logs.clone(),
                );
            }
        }
        Ok((child, tail))
    }

    /// Waits until the instance accepts a connection (in its own namespace, once the chain has
    /// made it); returns its address, or why it never answered.
    async fn ready(
        &self,
        child: &mut Child,
        prepared: &Prepared,
        tail: &Tail,
    ) -> Result<(InstanceAddress, Option<Child>), RunnerError> {
        let mut address = prepared.address;
        let own = nuage_core::instance::own_namespace().map_err(RunnerError::Namespaces)?;
        let pid = child.id().unwrap_or_default();
        let started = Instant::now();
        let mut pause = Duration::from_micros(500);
        let mut egress = None;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                // Let the pumps catch the last lines.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Err(RunnerError::ExitedEarly {
                    exit: describe_exit(Ok(status)),
                    output: last_output(tail),
                });
            }
            if self.tools.isolates_network() && address.namespace.is_none() {
                // The chain's first step makes the namespace: until then the pid is still in ours.
                if let Ok(inode) = nuage_core::instance::namespace_of(pid)
                    && inode != own
                {
                    address.namespace = Some((pid, inode));
                    egress = self.connect_egress(&prepared.instance_id, pid);
                }
            }
            let known = address.namespace.is_some() || !self.tools.isolates_network();
            if known && address.connect().await.is_ok() {
                return Ok((address, egress));
            }
            if started.elapsed() > self.start_timeout {
                let _ = child.kill().await;
                return Err(RunnerError::NotListening {
                    port: address.socket.port(),
                    seconds: self.start_timeout.as_secs(),
                    output: last_output(tail),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// With public egress: starts `pasta` on the namespace of `pid` (it ends with it, or when
    /// its handle is dropped).
    fn connect_egress(&self, instance_id: &str, pid: u32) -> Option<Child> {
        let [attach, pasta] = self.tools.egress(instance_id, pid)?;
        let attached = std::process::Command::new(&attach[0]).args(&attach[1..]).status();
        if !attached.is_ok_and(|status| status.success()) {
            tracing::warn!(instance_id, "cannot name the instance's namespace: it has no egress");
            return None;
        }
        self.tools.filtered(instance_id);
        let started = Command::new(&pasta[0])
            .args(&pasta[1..])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match started {
            Ok(child) => Some(child),
            Err(error) => {
                tracing::warn!(%error, "cannot start pasta: the instance has no egress");
                None
            }
        }
    }

    /// Removes what an instance in `sandbox` left: its cgroups, its files, gVisor's state of it.
    fn cleanup(&self, sandbox: Option<SandboxKind>) -> impl Fn(&str) + Send + 'static {
        let cgroups = self.cgroups.clone();
        let tools = self.tools.clone();
        let instances = self.work_dir.join("instances");
        let runsc = (sandbox == Some(SandboxKind::Gvisor))
            .then(|| self.tools.runsc.clone())
            .flatten()
            .map(|runsc| (runsc, self.work_dir.join("runsc")));
        move |instance_id: &str| {
            if let Some(cgroups) = &cgroups {
                cgroups.remove(instance_id);
            }
            tools.forget_egress(instance_id);
            if let Some((runsc, state)) = &runsc {
                let _ = std::process::Command::new(runsc)
                    .arg(format!("--root={}", state.display()))
                    .args(["delete", "--force", instance_id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = std::fs::remove_dir_all(instances.join(instance_id));
        }
    }

    /// Watches a ready instance until it ends, on its own or when the returned sender is used
    /// (or dropped); then removes what it left (`cleanup`) and sends why it ended (with its
    /// last output) on the returned receiver.
    fn supervise(
        &self,
        started: Started,
        memory_mb: u32,
        cleanup: impl Fn(&str) + Send + 'static,
    ) -> (oneshot::Sender<()>, oneshot::Receiver<String>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let (exited_tx, exited) = oneshot::channel();
        let cgroups = self.cgroups.clone();
        let Started {
            instance_id,
            mut child,
            egress,
            tail,
            image,
        } = started;
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = stopped => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            drop(egress);
            let mut reason = describe_exit(status);
            if cgroups.is_some_and(|cgroups| cgroups.oom_killed(&instance_id)) {
                reason = format!("memory limit exceeded ({memory_mb} MB): {reason}");
            }
            // Its groups can go only once its last process has: the end is reported after.
            let _ = tokio::task::spawn_blocking(move || cleanup(&instance_id)).await;
            // Nothing of it reads its image any more: the copy may go, once its end is told.
            drop(image);
            let _ = exited_tx.send(format!("{reason}{}", last_output(&tail)));
        });
        (stop, exited)
    }
}

/// An instance that answered: its processes (the chain's first, and `pasta` with egress), the
/// tail of its output, and the image it runs (held until its processes are gone, so that the
/// copy its root is bound from stays).
struct Started {
    instance_id: String,
    child: Child,
    egress: Option<Child>,
    tail: Tail,
    image: Arc<Unpacked>,
}

impl Backend for LocalBackend {
    async fn start(&self, spec: &Spec, instance_id: &str) -> Result<Running, RunnerError> {
        // Refused before anything is made: a sandbox not offered is never swapped for another.
        let sandbox = self.offer.resolve(spec.sandbox)?;
        let image = self.images.get(&spec.image, &RegistryAuth::Anonymous).await?;
        let procs = match &self.cgroups {
            Some(cgroups) => cgroups.create(
                instance_id,
                Limits {
                    memory_mb: memory_mb(spec),
                    cpu_mcpu: spec.cpu_limit_mcpu,
                    processes: self.config.max_processes,
                },
            )?,
            None => Vec::new(),
        };
        let cleanup = self.cleanup(sandbox);
        let spawned = self
            .prepare(spec, &image, (instance_id, sandbox), &procs)
            .and_then(|prepared| Ok((self.spawn(&prepared, spec, instance_id)?, prepared)));
        let ((mut child, tail), prepared) = match spawned {
            Ok(spawned) => spawned,
            Err(error) => {
                cleanup(instance_id);
                return Err(error);
            }
        };
        let ready = async {
            let (address, egress) = self.ready(&mut child, &prepared, &tail).await?;
            if let Some(check) = spec.probe.as_ref()
                && let Some(path) = check.http_path.as_deref()
            {
                healthy(&address, path, check, &mut child, &tail).await?;
            }
            Ok::<_, RunnerError>((address, egress))
        };
        let (address, egress) = match ready.await {
            Ok(ready) => ready,
            Err(error) => {
                let _ = child.kill().await;
                tokio::task::spawn_blocking({
                    let instance_id = instance_id.to_owned();
                    move || cleanup(&instance_id)
                });
                return Err(error);
            }
        };
        // The sandbox read its variables at start (bubblewrap's arguments, gVisor's bundle
        // config): the files holding them, secrets opened, need not outlive that.
        for file in ["args", "config.json"] {
            let _ = std::fs::remove_file(prepared.directory.join(file));
        }
        let (stop, exited) = self.supervise(
            Started {
                instance_id: instance_id.to_owned(),
                child,
                egress,
                tail,
                image,
            },
            spec.memory_limit_mb,
            cleanup,
        );
        Ok(Running {
            address: address.to_string(),
            stop,
            exited,
        })
    }

    async fn pin(&self, image: &str) -> Result<String, RunnerError> {
        self.images.pin(image, &RegistryAuth::Anonymous).await
    }

    async fn component(&self, spec: &Spec) -> Result<Component, RunnerError> {
        let image = self.images.get(&spec.image, &RegistryAuth::Anonymous).await?;
        Component::read(&image, spec, &self.sealing, self.config.egress == Egress::Public).await
    }

    async fn release(&self, current: Current) {
        for copy in self.images.release(current.images).await {
            tracing::info!(copy = %copy.display(), "removed an unused image copy");
        }
    }
}
