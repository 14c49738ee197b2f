//! Which runtimes this installation can build and run: those whose toolchain is installed.

use std::process::Command;

/// The runtime of WebAssembly functions: a `wasi:http/proxy` component that the router runs
/// in process (Wasmtime is part of nuage: no toolchain to install).
pub const WASM: &str = "wasm";

/// Node.js majors with a runtime name; a name is offered when the installed Node.js is at
/// least that major (Node keeps running code written for older majors).
const NODE_MAJORS: [u32; 8] = [8, 10, 12, 14, 16, 18, 20, 22];

/// The runtimes offered, in the order `GET /runtimes` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtimes(Vec<String>);

impl Runtimes {
    /// Returns a fixed set (for an installation that names its runtimes itself).
    pub fn new(names: Vec<String>) -> Self {
        Self(names)
    }

    /// Returns the names.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Returns whether `name` is offered.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|offered| offered == name)
    }
}

/// Returns the runtimes whose toolchain answers on this machine: `golang` (and `go1NN`) when
/// `go` runs, `python3` and `python3NN` for the installed Python 3, `python` when a Python 2
/// runs, and `node8` ... `nodeNN` up to the installed Node.js major; then `wasm` when `wasm`
/// is set (`functions.wasm`).
pub fn detect_runtimes(wasm: bool) -> Runtimes {
    let mut names = Vec::new();
    if let Some(version) = version_of("go", &["version"]) {
        names.push("golang".to_owned());
        if let Some((major, minor)) = major_minor(&version, " go") {
            names.push(format!("go{major}{minor}"));
        }
    }
    if version_of("python2", &["--version"]).is_some() {
        names.push("python".to_owned());
    }
    if let Some(version) = version_of("python3", &["--version"])
        && let Some((3, minor)) = major_minor(&version, "Python ")
    {
        names.push("python3".to_owned());
        names.push(format!("python3{minor}"));
    }
    if let Some(version) = version_of("node", &["--version"])
        && let Some((major, _)) = major_minor(&version, "v")
    {
        names.extend(
            NODE_MAJORS
                .iter()
                .filter(|offered| **offered <= major)
                .map(|offered| format!("node{offered}")),
        );
    }
    if wasm {
        names.push(WASM.to_owned());
    }
    Runtimes(names)
}

/// Returns what `program args` prints (stdout, else stderr: Python 2 prints its version
/// there), or `None` when it does not run.
fn version_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// Returns the `major.minor` that follows `prefix` in `text`.
fn major_minor(text: &str, prefix: &str) -> Option<(u32, u32)> {
    let start = text.find(prefix)? + prefix.len();
    let mut parts = text[start..].split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Returns what `GET /runtimes` of v1beta1 says of `runtime`: its language, version and
/// source extension, and the handler it calls when none is given.
pub(crate) fn describe(runtime: &str) -> nuage_proto::functions::v1::Runtime {
    let (language, extension, digits) = if let Some(digits) = runtime.strip_prefix("node") {
        ("Node", "js", digits)
    } else if let Some(digits) = runtime.strip_prefix("python") {
        ("Python", "py", digits)
    } else if let Some(digits) = runtime.strip_prefix("golang").or_else(|| runtime.strip_prefix("go")) {
        ("Go", "go", digits)
    } else if runtime == WASM {
        ("WebAssembly", "wasm", "")
    } else {
        ("", "", "")
    };
    // `python311` is 3.11 and `go122` is 1.22: the first digit is the major; Node majors are
    // whole (`node22`).
    let version = match (language, digits.len()) {
        (_, 0) => String::new(),
        ("Node", _) => digits.to_owned(),
        (_, 1) => digits.to_owned(),
        _ => format!("{}.{}", &digits[..1], &digits[1..]),
    };
    nuage_proto::functions::v1::Runtime {
        name: runtime.to_owned(),
        language: language.to_owned(),
        version,
        default_handler: default_handler(runtime).to_owned(),
        extension: extension.to_owned(),
    }
}

/// Returns the handler a runtime uses when none is given.
pub(crate) fn default_handler(runtime: &str) -> &'static str {
    if is_go(runtime) {
        "."
    } else if runtime == WASM {
        "handler.wasm"
    } else {
        "handler.handle"
    }
}

fn is_go(runtime: &str) -> bool {
    runtime == "golang" || runtime.starts_with("go")
}

/// Checks that `handler` fits `runtime`: `path/file.function` for Node.js and Python, a
/// package directory (`.` or a relative path) for Go, the relative path of a `.wasm` file for
/// WebAssembly.
pub(crate) fn check_handler(runtime: &str, handler: &str) -> Result<(), String> {
    const MAX: usize = 100;
    if handler.is_empty() || handler.len() > MAX {
        return Err(format!("must be 1 to {MAX} characters"));
    }
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment != ".."
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if is_go(runtime) {
        if handler == "." || (!handler.starts_with('/') && handler.split('/').all(segment_ok)) {
            return Ok(());
        }
        return Err(format!(
            "`{handler}` is not a Go package directory: use `.` or a relative path such as `handlers/hello`"
        ));
    }
    if runtime == WASM {
        if handler.ends_with(".wasm") && !handler.starts_with('/') && handler.split('/').all(segment_ok) {
            return Ok(());
        }
        return Err(format!(
            "`{handler}` is not the path of a component in the archive: use a relative path ending in `.wasm`, such as `handler.wasm`"
        ));
    }
    let shape = format!("`{handler}` must be `<file>.<function>`, optionally under a folder, such as `handler.handle`");
    let (path, function) = handler.rsplit_once('.').ok_or_else(|| shape.clone())?;
    let function_ok = function.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && function.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !function_ok || path.starts_with('/') || !path.split('/').all(segment_ok) {
        return Err(shape);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_are_described_by_language_and_version() {
        let python = describe("python311");
        assert_eq!((python.language.as_str(), python.version.as_str()), ("Python", "3.11"));
        assert_eq!(
            (python.extension.as_str(), python.default_handler.as_str()),
            ("py", "handler.handle")
        );
        let node = describe("node22");
        assert_eq!((node.language.as_str(), node.version.as_str()), ("Node", "22"));
        let go = describe("go122");
        assert_eq!(
            (go.language.as_str(), go.version.as_str(), go.default_handler.as_str()),
            ("Go", "1.22", ".")
        );
        assert_eq!(describe("golang").version, "");
        assert_eq!(describe("python3").version, "3");
    }

    #[test]
    fn versions_parse() {
        assert_eq!(major_minor("go version go1.19.8 linux/amd64", " go"), Some((1, 19)));
        assert_eq!(major_minor("Python 3.11.7\n", "Python "), Some((3, 11)));
        assert_eq!(major_minor("v20.20.2\n", "v"), Some((20, 20)));
    }

    #[test]
    fn handlers_fit_their_runtime() {
        assert!(check_handler("node20", "handler.handle").is_ok());
        assert!(check_handler("python3", "src/app.main").is_ok());
        for bad in [
            "handler",
            "handler.",
            ".handle",
            "../x.handle",
            "/abs.handle",
            "a b.handle",
        ] {
            assert!(check_handler("python3", bad).is_err(), "{bad} accepted");
        }
        assert!(check_handler("golang", ".").is_ok());
        assert!(check_handler("golang", "handlers/hello").is_ok());
        assert!(check_handler("golang", "../up").is_err());
        assert_eq!(default_handler("golang"), ".");
        assert_eq!(default_handler("node8"), "handler.handle");
        assert!(check_handler("wasm", "handler.wasm").is_ok());
        assert!(check_handler("wasm", "dist/app.wasm").is_ok());
        for bad in ["handler.handle", "../x.wasm", "/abs.wasm", ".wasm/"] {
            assert!(check_handler("wasm", bad).is_err(), "{bad} accepted");
        }
        assert_eq!(default_handler("wasm"), "handler.wasm");
        assert_eq!(describe("wasm").language, "WebAssembly");
    }
}
