//! Ahead-of-time compilation of a tenant's component (the builder's side).

use crate::engine;
use crate::error::WasmError;
use crate::host;
use wasmtime::component::Component;

/// Returns Wasmtime's precompiled form of the component `wasm` (the file `handler` of the
/// archive), once it is known to be a valid component for the `wasi:http/proxy` world.
pub fn precompile(handler: &str, wasm: &[u8]) -> Result<Vec<u8>, WasmError> {
    let engine = engine::compiler()?;
    let component = Component::new(&engine, wasm).map_err(|error| WasmError::NotComponent {
        handler: handler.to_owned(),
        reason: first_line(&format!("{error:#}")),
    })?;
    host::check(&engine, &component).map_err(|reason| WasmError::NotProxy {
        handler: handler.to_owned(),
        reason: first_line(&reason),
    })?;
    component
        .serialize()
        .map_err(|error| WasmError::Engine(format!("cannot write the compiled component: {error:#}")))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}
