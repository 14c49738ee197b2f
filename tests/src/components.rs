//! The WebAssembly component the `wasm` suite deploys, built from `tests/wasm` (handler.js,
//! its world, the pinned componentize-js) with the tenants' own tool, once per source: the
//! result is kept under the system's temporary directory by a digest of what it is built
//! from, and test processes that need it at once build it once (a file lock).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The files the component is built from, relative to `tests/wasm`.
const SOURCES: [&str; 4] = ["handler.js", "wit/world.wit", "package-lock.json", "build.sh"];

/// Returns the test component's bytes, building it if this source was never built here.
pub fn test_component() -> Vec<u8> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("wasm");
    let mut digest = Sha256::new();
    for source in SOURCES {
        digest.update(std::fs::read(here.join(source)).expect("a source of the test component"));
    }
    let cache = std::env::temp_dir().join("nuage-test-components");
    std::fs::create_dir_all(&cache).unwrap();
    let built = cache.join(format!("handler-{}.wasm", hex::encode(&digest.finalize()[..12])));
    let lock = std::fs::File::create(cache.join("lock")).unwrap();
    lock.lock().expect("the component cache's lock");
    if !built.exists() {
        build(&here, &built);
    }
    drop(lock);
    std::fs::read(&built).unwrap()
}

/// Builds the component into `out` (`npm ci` first when the tools are not installed).
fn build(here: &Path, out: &PathBuf) {
    if !here.join("node_modules/@bytecodealliance/componentize-js").exists() {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(here));
    }
    let partial = out.with_extension("partial");
    run(Command::new(here.join("build.sh")).arg(&partial));
    std::fs::rename(&partial, out).unwrap();
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
