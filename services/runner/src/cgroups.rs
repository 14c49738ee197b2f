//! Per-instance control groups: a memory cap (`memory_limit`), a CPU quota (`cpu_limit`) and a
//! process limit, on cgroup v2 (one hierarchy) or v1 (one hierarchy per controller).

use crate::error::RunnerError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The CPU quota's period, in microseconds: a quota of 140 000 is 14 % of a core. A whole
/// second, so that a start (node takes some 60 ms of CPU) fits in one period's budget even
/// at 140 thousandths of a core, rather than being spread over many 100 ms periods (cold
/// starts took 300 ms instead of 60); a sustained busy loop still gets its share and no more.
const CPU_PERIOD_US: u64 = 1_000_000;
/// The smallest quota the kernel takes.
const MIN_CPU_QUOTA_US: u64 = 1_000;

/// What one instance may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Memory, in MB.
    pub memory_mb: u32,
    /// CPU in thousandths of a core; 0: no quota.
    pub cpu_mcpu: u32,
    /// Processes (and threads) at once.
    pub processes: u32,
}

/// Where per-instance groups are made: the controllers this process may create groups in.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// cgroup v2: the one `nuage` group; v1: `nuage` in the memory hierarchy.
    memory: PathBuf,
    /// The `nuage` group of the v1 cpu hierarchy, when there is one.
    cpu: Option<PathBuf>,
    /// The `nuage` group of the v1 pids hierarchy, when there is one.
    pids: Option<PathBuf>,
    v2: bool,
}

/// Makes `base` (a `nuage` group) and checks that groups can be made in it.
fn writable(base: &Path) -> Option<PathBuf> {
    std::fs::create_dir_all(base).ok()?;
    let probe = base.join(format!("probe-{}", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    let _ = std::fs::remove_dir(&probe);
    Some(base.to_path_buf())
}

impl Cgroups {
    /// Returns the hierarchies when this process may create groups in them.
    pub fn detect() -> Option<Self> {
        let root = Path::new("/sys/fs/cgroup");
        if root.join("memory/memory.limit_in_bytes").exists() {
            return Some(Self {
                memory: writable(&root.join("memory/nuage"))?,
                cpu: writable(&root.join("cpu/nuage")).filter(|group| group.join("cpu.cfs_quota_us").exists()),
                pids: writable(&root.join("pids/nuage")).filter(|group| group.join("pids.max").exists()),
                v2: false,
            });
        }
        if !root.join("cgroup.controllers").exists() {
            return None;
        }
        let base = root.join("nuage");
        std::fs::create_dir_all(&base).ok()?;
        std::fs::write(base.join("cgroup.subtree_control"), "+memory").ok()?;
        // Each controller on its own: a missing one must not cost the others.
        let cpu = std::fs::write(base.join("cgroup.subtree_control"), "+cpu").is_ok();
        let pids = std::fs::write(base.join("cgroup.subtree_control"), "+pids").is_ok();
        let base = writable(&base)?;
        Some(Self {
            cpu: cpu.then(|| base.clone()),
            pids: pids.then(|| base.clone()),
            memory: base,
            v2: true,
        })
    }

    /// What is not enforced here, if anything.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.cpu.is_none() {
            missing.push("no CPU quota: the cpu cgroup controller is not writable");
        }
        if self.pids.is_none() {
            missing.push("no process limit: the pids cgroup controller is not writable");
        }
        missing
    }

    /// The groups of one instance, one per hierarchy.
    fn groups(&self, instance_id: &str) -> Vec<PathBuf> {
        let mut groups = vec![self.memory.join(instance_id)];
        if !self.v2 {
            groups.extend(
                [&self.cpu, &self.pids]
                    .into_iter()
                    .flatten()
                    .map(|base| base.join(instance_id)),
            );
        }
        groups
    }

    /// Makes the groups of one instance with its limits; returns their `cgroup.procs`, which
    /// the instance's first process joins before it becomes the sandbox.
    pub fn create(&self, instance_id: &str, limits: Limits) -> Result<Vec<PathBuf>, RunnerError> {
        let fail = |doing, source| RunnerError::Cgroup { doing, source };
        for group in self.groups(instance_id) {
            std::fs::create_dir_all(&group).map_err(|error| fail("creating a cgroup", error))?;
        }
        let memory = self.memory.join(instance_id);
        let bytes = (u64::from(limits.memory_mb) << 20).to_string();
        let file = if self.v2 { "memory.max" } else { "memory.limit_in_bytes" };
        std::fs::write(memory.join(file), &bytes).map_err(|error| fail("capping memory", error))?;
        if !self.v2 {
            // Swap counts too where the kernel accounts it.
            let _ = std::fs::write(memory.join("memory.memsw.limit_in_bytes"), &bytes);
        }
        if let Some(cpu) = &self.cpu
            && limits.cpu_mcpu > 0
        {
            let quota = (u64::from(limits.cpu_mcpu) * CPU_PERIOD_US / 1000).max(MIN_CPU_QUOTA_US);
            let group = cpu.join(instance_id);
            let written = if self.v2 {
                std::fs::write(group.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))
            } else {
                std::fs::write(group.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())
                    .and_then(|()| std::fs::write(group.join("cpu.cfs_quota_us"), quota.to_string()))
            };
            written.map_err(|error| fail("setting the CPU quota", error))?;
        }
        if let Some(pids) = &self.pids {
            std::fs::write(pids.join(instance_id).join("pids.max"), limits.processes.to_string())
                .map_err(|error| fail("limiting processes", error))?;
        }
        Ok(self
            .groups(instance_id)
            .into_iter()
            .map(|group| group.join("cgroup.procs"))
            .collect())
    }

    /// Whether the group's memory cap killed a process of it.
    pub fn oom_killed(&self, instance_id: &str) -> bool {
        let group = self.memory.join(instance_id);
        let file = if self.v2 { "memory.events" } else { "memory.oom_control" };
        let counter = |text: String| {
            text.lines().any(|line| {
                line.strip_prefix("oom_kill ")
                    .is_some_and(|count| count.trim().parse::<u64>().is_ok_and(|n| n > 0))
            })
        };
        std::fs::read_to_string(group.join(file)).is_ok_and(counter)
    }

    /// Removes the groups of an instance whose processes all ended.
    pub fn remove(&self, instance_id: &str) {
        for group in self.groups(instance_id) {
            let mut removed = false;
            for _ in 0..50 {
                if std::fs::remove_dir(&group).is_ok() || !group.exists() {
                    removed = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if !removed {
                tracing::warn!(group = %group.display(), "cannot remove an instance's cgroup");
            }
        }
    }
}
