//! The WebAssembly components the `wasm` suite deploys, built from `tests/wasm`: handler.js
//! with the tenants' own tool (the pinned componentize-js), and small handlers written in
//! WebAssembly text (`wat/`, made components with the pinned jco), each once per source: the
//! result is kept under the system's temporary directory by a digest of what it is built
//! from, and test processes that need it at once build it once (a file lock).

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// The files the JavaScript component is built from, relative to `tests/wasm`.
const SOURCES: [&str; 4] = ["handler.js", "wit/world.wit", "package-lock.json", "build.sh"];

/// Returns the test component's bytes (handler.js), building it if this source was never
/// built here.
pub fn test_component() -> Vec<u8> {
    cached("handler", &SOURCES, |here, out| {
        run(Command::new(here.join("build.sh")).arg(out));
    })
}

/// Returns the bytes of the component `tests/wasm/wat/{name}.wat` is made into (by
/// `wat/build.mjs`, with jco), building it if this source was never built here: a handler
/// written by hand against the canonical ABI, a few kilobytes where handler.js's is 13 MB.
pub fn wat_component(name: &str) -> Vec<u8> {
    let source = format!("wat/{name}.wat");
    let sources = [source.as_str(), "wat/build.mjs", "wit/world.wit", "package-lock.json"];
    cached(name, &sources, |here, out| {
        run(Command::new("node")
            .arg(here.join("wat/build.mjs"))
            .arg(here.join(&source))
            .arg(out));
    })
}

/// Returns the component built from `sources` (relative to `tests/wasm`) by `build` (which
/// writes it to the path it is given), kept under `name` and a digest of the sources.
fn cached(name: &str, sources: &[&str], build: impl FnOnce(&Path, &Path)) -> Vec<u8> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("wasm");
    let mut digest = Sha256::new();
    for source in sources {
        digest.update(std::fs::read(here.join(source)).expect("a source of the test component"));
    }
    let cache = std::env::temp_dir().join("nuage-test-components");
    std::fs::create_dir_all(&cache).unwrap();
    let built = cache.join(format!("{name}-{}.wasm", hex::encode(&digest.finalize()[..12])));
    let lock = std::fs::File::create(cache.join("lock")).unwrap();
    lock.lock().expect("the component cache's lock");
    if !built.exists() {
        // The tools first, when they are not installed (`npm ci`).
        if !here.join("node_modules/@bytecodealliance/componentize-js").exists() {
            run(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&here));
        }
        let partial = built.with_extension("partial");
        build(&here, &partial);
        std::fs::rename(&partial, &built).unwrap();
    }
    drop(lock);
    std::fs::read(&built).unwrap()
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
