//! The syscall filter every bubblewrap instance runs under: what container runtimes' default
//! profiles refuse, because a function never needs it and each is a way into the kernel or
//! around the sandbox (mounting, tracing other processes, loading BPF or kernel modules, keys,
//! performance counters, changing the clock or the host name, new namespaces).

use crate::error::RunnerError;
use seccompiler::TargetArch;

/// Refused on every architecture, with `EPERM`.
const REFUSED: &[&str] = &[
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setdomainname",
    "sethostname",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
    "vhangup",
];

/// Refused where the architecture has them.
#[cfg(target_arch = "x86_64")]
const REFUSED_HERE: &[&str] = &["iopl", "ioperm", "uselib", "lookup_dcookie", "_sysctl"];
#[cfg(not(target_arch = "x86_64"))]
const REFUSED_HERE: &[&str] = &[];

/// Returns the filter as the raw `struct sock_filter` array bubblewrap's `--seccomp` reads.
pub fn compile() -> Result<Vec<u8>, RunnerError> {
    let arch = if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else if cfg!(target_arch = "riscv64") {
        TargetArch::riscv64
    } else {
        TargetArch::x86_64
    };
    let rules: Vec<_> = REFUSED
        .iter()
        .chain(REFUSED_HERE)
        .map(|name| serde_json::json!({ "syscall": name }))
        .collect();
    let filter = serde_json::json!({
        "instance": {
            "mismatch_action": "allow",
            "match_action": { "errno": 1 },
            "filter": rules,
        }
    });
    let text = serde_json::to_vec(&filter).map_err(|error| RunnerError::Seccomp(error.to_string()))?;
    let mut programs =
        seccompiler::compile_from_json(&text[..], arch).map_err(|error| RunnerError::Seccomp(error.to_string()))?;
    let program = programs
        .remove("instance")
        .ok_or_else(|| RunnerError::Seccomp("no program".to_owned()))?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filter_compiles_to_whole_instructions() {
        let bytes = super::compile().unwrap();
        assert!(!bytes.is_empty());
        assert_eq!(bytes.len() % 8, 0);
    }
}
