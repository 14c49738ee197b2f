//! The one Wasmtime configuration. The builder compiles with it and the router loads with it:
//! `Component::deserialize` refuses code compiled under other settings (memory reservation,
//! guard, epoch checks, features), so both ends take them from here.

use crate::error::WasmError;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Address space reserved for each linear memory: bounds checks are elided within it, so
/// compiled code depends on it.
const MEMORY_RESERVATION: u64 = 4 << 30;
/// Unmapped bytes after each memory's reservation.
const MEMORY_GUARD: u64 = 32 << 20;
/// Bytes of each memory, table and stack that an instance's slot keeps when given back.
const KEEP_RESIDENT: usize = 64 << 10;
/// How often the epoch advances: a guest that runs past its deadline stops within about this.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The `[router.wasm]` section of `nuage.toml`: the pool WebAssembly instances come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Instances that may run at once across every WebAssembly function (each request has
    /// its own); a request beyond them waits for one.
    pub max_instances: u32,
    /// The largest linear memory an instance may grow, whatever its function's
    /// `memory_limit` (a function's own limit is its cap below this).
    pub max_memory_mb: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_instances: 256,
            max_memory_mb: 4096,
        }
    }
}

impl PoolConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_instances == 0 || self.max_instances > 10_000 {
            return Err(format!(
                "router.wasm.max_instances must be 1 to 10000, got {}",
                self.max_instances
            ));
        }
        if self.max_memory_mb == 0 || u64::from(self.max_memory_mb) << 20 > MEMORY_RESERVATION {
            return Err(format!(
                "router.wasm.max_memory_mb must be 1 to {}, got {}",
                MEMORY_RESERVATION >> 20,
                self.max_memory_mb
            ));
        }
        Ok(())
    }
}

/// Returns the settings both ends share.
fn shared() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.memory_reservation(MEMORY_RESERVATION);
    config.memory_guard_size(MEMORY_GUARD);
    config
}

/// Returns the engine components are compiled with (the builder's).
#[cfg(feature = "compile")]
pub fn compiler() -> Result<Engine, WasmError> {
    Engine::new(&shared()).map_err(|error| WasmError::Engine(format!("{error:#}")))
}

/// Returns the engine precompiled components are loaded and run with: instances come from a
/// pool sized by `pool`.
pub fn runtime(pool: &PoolConfig) -> Result<Engine, WasmError> {
    let instances = pool.max_instances;
    let mut pooling = PoolingAllocationConfig::default();
    // A component made by componentize-js or componentize-py holds a few core instances
    // (the program, the WASI adapter, shims), each with memories and tables of its own.
    pooling
        .total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_memories_per_module(2)
        .max_tables_per_module(4)
        .table_elements(200_000)
        .max_core_instance_size(4 << 20)
        .max_component_instance_size(4 << 20)
        .max_memory_size((pool.max_memory_mb as usize) << 20)
        // A slot given back is reset by zeroing what an instance touched of its first 64 KiB
        // (memory, tables, stack) rather than by giving the pages back to the kernel: a
        // small instance's reset is then a memset, not an madvise, page faults on its next
        // use and TLB shootdowns across cores; and the pages given back are batched.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT)
        .decommit_batch_size(16);
    let mut config = shared();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config).map_err(|error| WasmError::Engine(format!("{error:#}")))
}
