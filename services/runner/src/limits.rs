//! What one instance may use, whichever backend runs it: the same figures cap a local
//! instance's cgroup and a pod's resources.

use nuage_proto::runner::v1::Spec;

/// Returns the memory an instance of `spec` may use, in MB (64 at least).
pub fn memory_mb(spec: &Spec) -> u32 {
    spec.memory_limit_mb.max(64)
}

/// Returns the size of an instance's `/tmp`, in bytes: half its memory (what it writes there
/// is memory, charged to its cap: the other half is left to run in).
pub fn tmp_bytes(spec: &Spec) -> u64 {
    u64::from(memory_mb(spec)) << 19
}
