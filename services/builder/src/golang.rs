//! Go functions: compiled at build time with the installed toolchain. The handler is
//! `func Handle(http.ResponseWriter, *http.Request)` in the package the function's handler
//! names (`.` for the module root); nuage adds a `main` package that serves it on `$PORT`.

use crate::checks::Entry;
use crate::error::BuilderError;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The longest a `go build` may run.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// Compiles `entries` into a static binary that serves the handler package; the error's
/// message is for the function's `error_message`.
pub fn build(entries: &[Entry], handler: &str, cache: &Path) -> Result<Vec<u8>, BuilderError> {
    let package = handler_package(entries, handler)?;
    let work = tempfile::tempdir().map_err(BuilderError::io("build directory"))?;
    let source = work.path().join("src");
    write_sources(entries, &package, &source)?;
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
        return Err(BuilderError::GoBuildFailed {
            output: first.join("\n"),
        });
    }
    std::fs::read(&output).map_err(BuilderError::io("reading the built binary"))
}

/// Returns the import path of the package `handler` names, under the module of `go.mod`.
fn handler_package(entries: &[Entry], handler: &str) -> Result<String, BuilderError> {
    let go_mod = entries
        .iter()
        .find_map(|entry| match entry {
            Entry::File { path, data, .. } if path == "go.mod" => Some(String::from_utf8_lossy(data).into_owned()),
            _ => None,
        })
        .ok_or(BuilderError::NoGoMod)?;
    let module = go_mod
        .lines()
        .find_map(|line| line.trim().strip_prefix("module "))
        .map(|module| module.trim().trim_matches('"').to_owned())
        .ok_or(BuilderError::NoGoModule)?;
    Ok(match handler.trim_start_matches("./").trim_end_matches('/') {
        "" | "." => module,
        directory => format!("{module}/{directory}"),
    })
}

/// Writes `entries` under `source`, and beside them the `main` package (`nuage_main`) that
/// serves `package`'s `Handle` on `$PORT`.
fn write_sources(entries: &[Entry], package: &str, source: &Path) -> Result<(), BuilderError> {
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
        written.map_err(|source| BuilderError::GoUnpack {
            path: entry.path().to_owned(),
            source,
        })?;
    }
    let main = source.join("nuage_main");
    std::fs::create_dir_all(&main).map_err(BuilderError::io("build directory"))?;
    std::fs::write(
        main.join("main.go"),
        format!(
            "package main\n\nimport (\n\t\"net/http\"\n\t\"os\"\n\n\thandler \"{package}\"\n)\n\n\
             func main() {{\n\tport := os.Getenv(\"PORT\")\n\tif port == \"\" {{\n\t\tport = \"8080\"\n\t}}\n\
             \thttp.HandleFunc(\"/\", handler.Handle)\n\tif err := http.ListenAndServe(\":\"+port, nil); err != nil {{\n\
             \t\tpanic(err)\n\t}}\n}}\n"
        ),
    )
    .map_err(BuilderError::io("build directory"))
}

/// Runs `command`, killing it after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Result<std::process::Output, BuilderError> {
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(BuilderError::io("cannot run `go`"))?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                return Err(BuilderError::GoTimeout {
                    seconds: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(BuilderError::io("waiting for `go build`")(error)),
        }
    }
    child
        .wait_with_output()
        .map_err(BuilderError::io("reading `go build` output"))
}
