//! Why a component could not be compiled, loaded or run.

use thiserror::Error;

/// A failure of this crate; each message is what the tenant or the operator reads.
#[derive(Debug, Error)]
pub enum WasmError {
    /// The engine could not be made (the pool does not fit the machine's address space).
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    /// The handler is not a WebAssembly component (a core module, or not WebAssembly).
    #[error("`{handler}` is not a WebAssembly component: {reason}")]
    NotComponent {
        /// The file.
        handler: String,
        /// What the validator said.
        reason: String,
    },
    /// The component is valid but is not for the `wasi:http/proxy` world.
    #[error(
        "`{handler}` does not fit the `wasi:http/proxy` world (it must export `wasi:http/incoming-handler` and import nothing else than that world, `wasi:cli/environment` and the other WASI 0.2 interfaces): {reason}"
    )]
    NotProxy {
        /// The file.
        handler: String,
        /// What the linker said.
        reason: String,
    },
    /// A precompiled component that this engine cannot load (another Wasmtime, other
    /// settings, or corrupt).
    #[error("cannot load the precompiled component: {0}")]
    Load(String),
}
