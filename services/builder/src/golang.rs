//! Go functions: compiled at build time with the installed toolchain. The handler is
//! `func Handle(http.ResponseWriter, *http.Request)` in the package the function's handler
//! names (`.` for the module root); nuage adds a `main` package that serves it on `$PORT`.

use crate::checks::Entry;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The longest a `go build` may run.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// Compiles `entries` into a static binary that serves the handler package; the error is a
/// message for the function's `error_message`.
pub fn build(entries: &[Entry], handler: &str, cache: &Path) -> Result<Vec<u8>, String> {
    let go_mod = entries
        .iter()
        .find_map(|entry| match entry {
            Entry::File { path, data, .. } if path == "go.mod" => Some(String::from_utf8_lossy(data).into_owned()),
            _ => None,
        })
        .ok_or_else(|| "Go archives need a go.mod at their root".to_owned())?;
    let module = go_mod
        .lines()
        .find_map(|line| line.trim().strip_prefix("module "))
        .map(|module| module.trim().trim_matches('"').to_owned())
        .ok_or_else(|| "go.mod names no module".to_owned())?;
    let package = match handler.trim_start_matches("./").trim_end_matches('/') {
        "" | "." => module.clone(),
        directory => format!("{module}/{directory}"),
    };
    let work = tempfile::tempdir().map_err(|error| format!("build directory: {error}"))?;
    let source = work.path().join("src");
    for entry in entries {
        let path = source.join(entry.path());
        let written = match entry {
            Entry::File { data, .. } => path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, data)),
            Entry::Directory { .. } => std::fs::create_dir_all(&path),
            Entry::Link { target, .. } => path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::os::unix::fs::symlink(target, &path)),
        };
        written.map_err(|error| format!("unpacking `{}`: {error}", entry.path()))?;
    }
    let main = source.join("nuage_main");
    std::fs::create_dir_all(&main).map_err(|error| format!("build directory: {error}"))?;
    std::fs::write(
        main.join("main.go"),
        format!(
            "package main\n\nimport (\n\t\"net/http\"\n\t\"os\"\n\n\thandler \"{package}\"\n)\n\n\
             func main() {{\n\tport := os.Getenv(\"PORT\")\n\tif port == \"\" {{\n\t\tport = \"8080\"\n\t}}\n\
             \thttp.HandleFunc(\"/\", handler.Handle)\n\tif err := http.ListenAndServe(\":\"+port, nil); err != nil {{\n\
             \t\tpanic(err)\n\t}}\n}}\n"
        ),
    )
    .map_err(|error| format!("build directory: {error}"))?;
    let output = work.path().join("handler");
    let vendored = source.join("vendor").is_dir();
    let mut command = Command::new("go");
    command
        .args(["build", "-trimpath", "-o"])
        .arg(&output)
        .arg("./nuage_main")
        .current_dir(&source)
        .env("CGO_ENABLED", "0")
        // No network: dependencies must be vendored (or be the standard library).
        .env("GOPROXY", "off")
        .env("GOFLAGS", if vendored { "-mod=vendor" } else { "-mod=mod" })
        .env("GOPATH", work.path().join("gopath"));
    // The build cache makes every build after the first fast (the first compiles the
    // standard library); `cache` is used when the environment names none.
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        command.env("GOCACHE", cache);
    }
    let result = run_bounded(command, BUILD_TIMEOUT)?;
    if !result.status.success() {
        let stderr = String::from_utf8_lossy(&result.stderr);
        let first: Vec<&str> = stderr.lines().take(8).collect();
        return Err(format!("`go build` failed: {}", first.join("\n")));
    }
    std::fs::read(&output).map_err(|error| format!("reading the built binary: {error}"))
}

/// Runs `command`, killing it after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Result<std::process::Output, String> {
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run `go`: {error}"))?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                return Err(format!(
                    "`go build` ran longer than {} s and was stopped",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("waiting for `go build`: {error}")),
        }
    }
    child
        .wait_with_output()
        .map_err(|error| format!("reading `go build` output: {error}"))
}
