//! The `local` backend: each instance is a process on this machine, in a bubblewrap sandbox
//! when it is installed (its own root, `/tmp`, no capabilities, user 1000), memory-capped with
//! cgroups where they are writable, listening on a loopback port of its own.

use crate::backend::{Backend, Running};
use crate::config::{RunnerConfig, Sandbox};
use crate::images::{Images, Unpacked};
use nuage_core::logsink::LogSink;
use nuage_proto::logs::v1::Line;
use nuage_proto::runner::v1::{Kind, OutputLine, Spec, Stream};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, oneshot};

/// Lines of output kept per instance to explain why it failed.
const KEPT_LINES: usize = 20;
/// Longest output line passed on; the rest is cut.
const MAX_LINE: usize = 64 * 1024;
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
    images: Images,
    bubblewrap: Option<PathBuf>,
    setpriv: Option<PathBuf>,
    cgroups: Option<Cgroups>,
    start_timeout: Duration,
    interpreters: Mutex<HashMap<String, PathBuf>>,
    output: broadcast::Sender<OutputLine>,
    logs: Option<LogShipping>,
}

/// Where per-instance memory cgroups are made.
#[derive(Debug, Clone)]
struct Cgroups {
    base: PathBuf,
    v2: bool,
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

impl Cgroups {
    /// Returns the memory hierarchy when this process may create groups in it.
    fn detect() -> Option<Self> {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (base, v2) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.join("nuage"), false)
        } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (PathBuf::from("/sys/fs/cgroup/nuage"), true)
        } else {
            return None;
        };
        std::fs::create_dir_all(&base).ok()?;
        if v2 {
            std::fs::write(base.join("cgroup.subtree_control"), "+memory").ok()?;
        }
        let probe = base.join(format!("probe-{}", std::process::id()));
        std::fs::create_dir(&probe).ok()?;
        let _ = std::fs::remove_dir(&probe);
        Some(Self { base, v2 })
    }

    /// Makes the group of one instance, capped at `megabytes`; returns its `cgroup.procs`.
    fn create(&self, instance_id: &str, megabytes: u32) -> Result<PathBuf, String> {
        let group = self.base.join(instance_id);
        std::fs::create_dir_all(&group).map_err(|error| format!("creating cgroup: {error}"))?;
        let bytes = (u64::from(megabytes) << 20).to_string();
        let file = if self.v2 { "memory.max" } else { "memory.limit_in_bytes" };
        std::fs::write(group.join(file), &bytes).map_err(|error| format!("capping memory: {error}"))?;
        if !self.v2 {
            // Swap counts too where the kernel accounts it.
            let _ = std::fs::write(group.join("memory.memsw.limit_in_bytes"), &bytes);
        }
        Ok(group.join("cgroup.procs"))
    }

    /// Whether the group's memory cap killed a process of it.
    fn oom_killed(&self, instance_id: &str) -> bool {
        let group = self.base.join(instance_id);
        let file = if self.v2 { "memory.events" } else { "memory.oom_control" };
        let counter = |text: String| {
            text.lines().any(|line| {
                line.strip_prefix("oom_kill ")
                    .is_some_and(|count| count.trim().parse::<u64>().is_ok_and(|n| n > 0))
            })
        };
        std::fs::read_to_string(group.join(file)).is_ok_and(counter)
    }

    fn remove(&self, instance_id: &str) {
        let group = self.base.join(instance_id);
        for _ in 0..50 {
            if std::fs::remove_dir(&group).is_ok() || !group.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::warn!(group = %group.display(), "cannot remove an instance's cgroup");
    }
}

impl LocalBackend {
    /// Returns the backend; `work_dir` holds unpacked images, `registry_dir` the builder's
    /// image layouts. Fails when `sandbox = "bubblewrap"` and it is not installed.
    pub fn new(
        config: &RunnerConfig,
        work_dir: PathBuf,
        registry_dir: PathBuf,
        output: broadcast::Sender<OutputLine>,
        logs: Option<LogShipping>,
    ) -> Result<Self, String> {
        let bubblewrap = match config.sandbox {
            Sandbox::None => None,
            Sandbox::Auto | Sandbox::Bubblewrap => find_program("bwrap"),
        };
        if bubblewrap.is_none() {
            if config.sandbox == Sandbox::Bubblewrap {
                return Err("runner.sandbox is `bubblewrap` but `bwrap` is not installed".to_owned());
            }
            tracing::warn!(
                "NO SANDBOX: bubblewrap (`bwrap`) is not installed, so functions and containers run as plain \
                 processes that can see this machine; install bubblewrap"
            );
        }
        let cgroups = if config.memory_limits { Cgroups::detect() } else { None };
        if cgroups.is_none() {
            tracing::warn!("cgroups are not writable here: instances run without a memory cap");
        }
        Ok(Self {
            images: Images::new(work_dir, registry_dir, config.registry_insecure),
            bubblewrap,
            setpriv: find_program("setpriv"),
            cgroups,
            start_timeout: Duration::from_secs(config.start_timeout_seconds.max(1)),
            interpreters: Mutex::new(HashMap::new()),
            output,
            logs,
        })
    }

    /// Why instances are less isolated than they should be, if they are.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.bubblewrap.is_none() {
            warnings.push("no sandbox: bubblewrap is not installed, instances run as plain processes".to_owned());
        }
        if self.cgroups.is_none() {
            warnings.push("no memory cap: cgroups are not writable".to_owned());
        }
        warnings
    }

    /// Returns the absolute path of a language runtime, as the runtime itself reports it
    /// (a version manager's shim would cost a start-up of its own on every instance).
    fn interpreter(&self, name: &str) -> Result<PathBuf, String> {
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
        .ok_or_else(|| format!("`{name}` is not installed on this machine"))?;
        self.interpreters
            .lock()
            .expect("interpreters lock")
            .insert(name.to_owned(), path.clone());
        Ok(path)
    }

    /// The program and arguments that run `image` for `spec` on `port`.
    fn command_line(
        &self,
        spec: &Spec,
        image: &Unpacked,
        environment: &[(String, String)],
    ) -> Result<Vec<OsString>, String> {
        let function = spec.kind() != Kind::Container;
        let mut program = PathBuf::from(&image.command[0]);
        let mut interpreter_root = None;
        if function && !program.is_absolute() {
            program = self.interpreter(&image.command[0])?;
            // A runtime outside the system directories (pyenv's, say) is bound whole.
            if !SYSTEM_PATHS.iter().any(|system| program.starts_with(system)) {
                interpreter_root = program.parent().and_then(Path::parent).map(Path::to_path_buf);
            }
        }
        let arguments = &image.command[1..];
        let Some(bubblewrap) = &self.bubblewrap else {
            // No sandbox: paths of the image are found under its root.
            let inside = |value: &str| -> OsString {
                let candidate = image.root.join(value.trim_start_matches('/'));
                if value.starts_with('/') && value.len() > 1 && candidate.exists() {
                    candidate.into_os_string()
                } else {
                    value.into()
                }
            };
            let mut line = vec![if program.is_absolute() && !function {
                inside(&program.to_string_lossy())
            } else {
                program.into_os_string()
            }];
            line.extend(arguments.iter().map(|argument| inside(argument)));
            return Ok(line);
        };
        let mut line: Vec<OsString> = vec![bubblewrap.into()];
        let mut push = |items: &[&str]| line.extend(items.iter().map(OsString::from));
        push(&["--unshare-all", "--share-net", "--die-with-parent", "--new-session"]);
        let (uid, gid) = (image.user.0.to_string(), image.user.1.to_string());
        push(&["--unshare-user", "--uid", &uid, "--gid", &gid]);
        let mut taken = std::collections::HashSet::new();
        let entries = std::fs::read_dir(&image.root).map_err(|error| format!("reading the image root: {error}"))?;
        let mut binds = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ["proc", "dev", "tmp", "sys"].contains(&name.as_str()) {
                continue;
            }
            taken.insert(format!("/{name}"));
            binds.push((entry.path(), format!("/{name}")));
        }
        if function {
            for system in SYSTEM_PATHS {
                if !taken.contains(system) && Path::new(system).exists() {
                    binds.push((PathBuf::from(system), system.to_owned()));
                }
            }
            if let Some(root) = &interpreter_root {
                binds.push((root.clone(), root.to_string_lossy().into_owned()));
            }
        }
        for (source, target) in &binds {
            match std::fs::read_link(source) {
                Ok(link) => push(&["--symlink", &link.to_string_lossy(), target]),
                Err(_) => push(&["--ro-bind", &source.to_string_lossy(), target]),
            }
        }
        push(&[
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--chdir",
            &image.working_dir,
        ]);
        push(&["--clearenv"]);
        for (key, value) in environment {
            push(&["--setenv", key, value]);
        }
        push(&["--"]);
        line.push(program.into_os_string());
        line.extend(arguments.iter().map(OsString::from));
        Ok(line)
    }
}

/// Where an instance's lines go beyond the broadcast: the logs service, at most `rate` lines
/// a second per stream (a burst of as many), so that one flooding instance cannot crowd out
/// the lines of others; lines over the rate are dropped and counted.
#[derive(Debug, Clone)]
pub struct LogShipping {
    /// The sink to the logs service.
    pub sink: LogSink,
    /// Lines per second per stream of an instance.
    pub rate: u32,
}

/// A token bucket: `rate` lines a second, bursts of `rate`.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            tokens: rate,
            rate,
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Reads the next line into `line` (without its newline), keeping at most [`MAX_LINE`] bytes
/// of it; returns how many bytes were cut, or `None` at the end of the stream.
async fn next_line(reader: &mut (impl AsyncBufRead + Unpin), line: &mut Vec<u8>) -> std::io::Result<Option<u64>> {
    line.clear();
    let mut cut = 0_u64;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((!line.is_empty() || cut > 0).then_some(cut));
        }
        let newline = available.iter().position(|byte| *byte == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let take = chunk.len().min(MAX_LINE.saturating_sub(line.len()));
        line.extend_from_slice(&chunk[..take]);
        cut += (chunk.len() - take) as u64;
        let consumed = newline.map_or(available.len(), |at| at + 1);
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(Some(cut));
        }
    }
}

/// Reads `stream` line by line into the broadcast, the kept tail and the logs service.
fn pump(
    reader: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    stream: Stream,
    spec: &Spec,
    instance_id: &str,
    output: broadcast::Sender<OutputLine>,
    tail: Arc<Mutex<VecDeque<String>>>,
    logs: Option<LogShipping>,
) {
    let application_id = spec.application_id.clone();
    let instance_id = instance_id.to_owned();
    tokio::spawn(async move {
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let mut buffer = Vec::new();
        let mut bucket = logs.as_ref().map(|logs| Bucket::new(logs.rate));
        let stream_name = match stream {
            Stream::Stderr => "stderr",
            _ => "stdout",
        };
        // Reading never waits on anyone: the instance is never held up by its own output.
        while let Ok(Some(cut)) = next_line(&mut reader, &mut buffer).await {
            let timestamp = nuage_core::clock::now_micros();
            if let (Some(logs), Some(bucket)) = (&logs, bucket.as_mut()) {
                if bucket.take() {
                    logs.sink.push_line(Line {
                        application_id: application_id.clone(),
                        source_id: instance_id.clone(),
                        stream: stream_name.to_owned(),
                        timestamp,
                        message: buffer.clone(),
                        cut_bytes: cut,
                    });
                } else {
                    logs.sink.count_dropped(1);
                }
            }
            let mut message = String::from_utf8_lossy(&buffer).into_owned();
            if cut > 0 {
                message.push_str(" [line cut at 64 KiB]");
            }
            {
                let mut tail = tail.lock().expect("tail lock");
                if tail.len() == KEPT_LINES {
                    tail.pop_front();
                }
                tail.push_back(message.clone());
            }
            if output.receiver_count() > 0 {
                let _ = output.send(OutputLine {
                    application_id: application_id.clone(),
                    instance_id: instance_id.clone(),
                    stream: stream.into(),
                    message,
                    timestamp,
                });
            }
        }
    });
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("no free port: {error}"))
}

fn describe_exit(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                format!("killed by signal {}", status.signal().unwrap_or(0))
            }
        },
        Err(error) => format!("could not be waited for: {error}"),
    }
}

impl Backend for LocalBackend {
    async fn start(&self, spec: &Spec, instance_id: &str) -> Result<Running, String> {
        let image = self.images.get(&spec.image).await?;
        let port = free_port()?;
        let mut environment: Vec<(String, String)> = vec![
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), "/tmp".to_owned()),
        ];
        environment.extend(image.environment.iter().cloned());
        let mut extra: Vec<_> = spec.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        extra.sort();
        environment.extend(extra);
        environment.push(("PORT".to_owned(), port.to_string()));
        if self.bubblewrap.is_none() {
            // Without a sandbox the image's paths live under its root.
            for (_, value) in &mut environment {
                if value.starts_with('/') && value.len() > 1 {
                    let candidate = image.root.join(value.trim_start_matches('/'));
                    if candidate.exists() {
                        *value = candidate.to_string_lossy().into_owned();
                    }
                }
            }
        }
        let line = self.command_line(spec, &image, &environment)?;
        let procs = match &self.cgroups {
            Some(cgroups) => Some(cgroups.create(instance_id, spec.memory_limit_mb.max(64))?),
            None => None,
        };
        let mut command = match (&self.setpriv, &procs) {
            (Some(setpriv), _) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]);
                command
            }
            (None, _) => Command::new("env"),
        };
        if let Some(procs) = &procs {
            // Join the instance's cgroup, then become the sandbox: every process of it is capped.
            command.args(["sh", "-c", "echo $$ > \"$0\" && exec \"$@\""]).arg(procs);
        }
        command.args(&line);
        if self.bubblewrap.is_none() {
            command.env_clear().envs(environment.iter().map(|(k, v)| (k, v)));
            let working_dir = image.root.join(image.working_dir.trim_start_matches('/'));
            command.current_dir(if working_dir.is_dir() {
                working_dir
            } else {
                image.root.clone()
            });
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child: Child = command
            .spawn()
            .map_err(|error| format!("starting the instance: {error}"))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stdout) = child.stdout.take() {
            pump(
                stdout,
                Stream::Stdout,
                spec,
                instance_id,
                self.output.clone(),
                tail.clone(),
                self.logs.clone(),
            );
        }
        if let Some(stderr) = child.stderr.take() {
            pump(
                stderr,
                Stream::Stderr,
                spec,
                instance_id,
                self.output.clone(),
                tail.clone(),
                self.logs.clone(),
            );
        }
        let address = format!("127.0.0.1:{port}");
        let failed = |reason: String, tail: &Arc<Mutex<VecDeque<String>>>| {
            let lines: Vec<String> = tail.lock().expect("tail lock").iter().cloned().collect();
            if lines.is_empty() {
                reason
            } else {
                format!("{reason}; its last output:\n{}", lines.join("\n"))
            }
        };
        // Ready when it accepts a connection on its port.
        let started = Instant::now();
        let mut pause = Duration::from_micros(500);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                // Let the pumps catch the last lines.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Some(cgroups) = &self.cgroups {
                    cgroups.remove(instance_id);
                }
                return Err(failed(
                    format!("the instance {} before listening on $PORT", describe_exit(Ok(status))),
                    &tail,
                ));
            }
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                break;
            }
            if started.elapsed() > self.start_timeout {
                let _ = child.kill().await;
                if let Some(cgroups) = &self.cgroups {
                    cgroups.remove(instance_id);
                }
                return Err(failed(
                    format!(
                        "the instance did not listen on $PORT ({port}) within {} s",
                        self.start_timeout.as_secs()
                    ),
                    &tail,
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(1));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let (exited_tx, exited) = oneshot::channel();
        let cgroups = self.cgroups.clone();
        let instance = instance_id.to_owned();
        let memory = spec.memory_limit_mb;
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = stopped => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let mut reason = describe_exit(status);
            if let Some(cgroups) = cgroups {
                if cgroups.oom_killed(&instance) {
                    reason = format!("memory limit exceeded ({memory} MB): {reason}");
                }
                tokio::task::spawn_blocking(move || cgroups.remove(&instance));
            }
            let _ = exited_tx.send(failed(reason, &tail));
        });
        Ok(Running { address, stop, exited })
    }
}
