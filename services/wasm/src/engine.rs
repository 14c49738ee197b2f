//! The one Wasmtime configuration. The builder compiles with it and the router loads with it:
//! `Component::deserialize` refuses code compiled under other settings (memory reservation,
//! guard, epoch checks, features), so both ends take them from here.

use crate::error::WasmError;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Address space reserved for each linear memory: bounds checks are elided within it, so
/// compiled code depends on it.
const MEMORY_RESERVATION: u64 = 4 << 30;
/// Unmapped bytes after each memory's reservation.
const MEMORY_GUARD: u64 = 32 << 20;
/// Bytes of each table and stack (and of each memory, where touched pages cannot be told)
/// that an instance's slot keeps when given back.
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
    /// Of each instance slot's linear memory, how much the pool may keep resident (not given
    /// back to the kernel) between instances, where the kernel tells which pages an
    /// instance touched (Linux 6.7+; elsewhere 64 KiB): the router's memory may then hold up
    /// to this per slot used at once (see `max_instances`), and instances of guests that
    /// touch this much start without page faults.
    pub keep_resident_mb: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_instances: 256,
            max_memory_mb: 4096,
            keep_resident_mb: 16,
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
        if self.keep_resident_mb > self.max_memory_mb {
            return Err(format!(
                "router.wasm.keep_resident_mb must be at most router.wasm.max_memory_mb ({}), got {}",
                self.max_memory_mb, self.keep_resident_mb
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
    // Where the kernel tells which pages an instance touched (PAGEMAP_SCAN, Linux 6.7+), only
    // those are reset, so a slot can keep far more of its memory resident: a guest that
    // touches megabytes (a JS engine's heap) then starts without page faults. Elsewhere the
    // first 64 KiB are reset whole, touched or not, so no more is kept.
    let scanned = PoolingAllocationConfig::is_pagemap_scan_available();
    let memory_kept = if scanned {
        (pool.keep_resident_mb as usize) << 20
    } else {
        KEEP_RESIDENT
    };
    pooling.pagemap_scan(if scanned { Enabled::Yes } else { Enabled::No });
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
        // A slot given back is reset by restoring what an instance touched of what it keeps
        // (memory, tables, stack) rather than by giving the pages back to the kernel: the
        // reset is then a memset, not an madvise, page faults on its next use and TLB
        // shootdowns across cores; and the pages given back are batched.
        .linear_memory_keep_resident(memory_kept)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT)
        .decommit_batch_size(16);
    let mut config = shared();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config).map_err(|error| WasmError::Engine(format!("{error:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_slot_keeps_resident_is_bounded_by_the_memory_an_instance_may_have() {
        assert!(PoolConfig::default().validate().is_ok());
        let over = PoolConfig {
            max_memory_mb: 64,
            keep_resident_mb: 65,
            ..PoolConfig::default()
        };
        let refused = over.validate().unwrap_err();
        assert!(refused.contains("router.wasm.keep_resident_mb"), "{refused}");
        // The engine takes it whether or not the kernel can tell touched pages.
        assert!(
            runtime(&PoolConfig {
                keep_resident_mb: 64,
                max_memory_mb: 64,
                max_instances: 4
            })
            .is_ok()
        );
    }
}
