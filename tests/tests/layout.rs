//! How the source is laid out, checked on the tree itself: no file of a crate imports one that
//! imports it back, directly or round a circle (a crate's files form layers), and no function
//! outside tests is longer than 80 lines. Both read the rustfmt-formatted sources as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a function outside tests may be, in lines from its signature to its closing
/// brace.
const MAX_FUNCTION_LINES: usize = 80;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The `src` folder of every crate of the workspace.
fn crate_sources() -> Vec<PathBuf> {
    let root = root();
    let mut sources = vec![root.join("src"), root.join("gateway/src"), root.join("tests/src")];
    let mut services: Vec<PathBuf> = std::fs::read_dir(root.join("services"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("src"))
        .filter(|path| path.is_dir())
        .collect();
    services.sort();
    sources.extend(services);
    sources
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The part of a file before its test module: what the crate itself is made of.
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or_default()
}

/// The top-level module a file of `src` belongs to (`proxy` for `src/proxy.rs` and for
/// `src/proxy/pool.rs`); `None` for the crate's root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .trim_end_matches(".rs");
    (!matches!(first, "lib" | "main")).then(|| first.to_owned())
}

/// The top-level modules that `text` names through `crate::` (in paths, `use` lines and
/// grouped imports alike).
fn named_modules(text: &str) -> BTreeSet<String> {
    let first_segment = |item: &str| -> String {
        item.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut named = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let items: Vec<String> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(first_segment)
                .collect(),
            None => vec![first_segment(rest)],
        };
        named.extend(items.into_iter().filter(|name| !name.is_empty()));
    }
    named
}

/// Returns a circle of modules in `graph` (each importing the next, the last the first), if
/// there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    /// Walks from `module`; `path` is the walk so far, `done` what was walked out of already.
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == module) {
            return Some(path[start..].to_vec());
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(circle) = walk(graph, next, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| walk(graph, module, &mut Vec::new(), &mut done))
}

/// Returns the import graph of the crate whose sources are `src`: which of its top-level
/// modules each one names.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    let modules: BTreeSet<String> = files.iter().filter_map(|file| module_of(src, file)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let named: Vec<String> = named_modules(without_tests(&text))
            .into_iter()
            .filter(|name| *name != module && modules.contains(name))
            .collect();
        graph.entry(module).or_default().extend(named);
    }
    graph
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    let mut circles = Vec::new();
    for src in crate_sources() {
        if let Some(circle) = circle(&import_graph(&src)) {
            circles.push(format!("{}: {}", src.display(), circle.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_check_finds_a_circle_and_passes_layers() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph.entry((*from).to_owned()).or_default().insert((*to).to_owned());
        }
        graph
    };
    let layers = graph(&[("handlers", "version"), ("version", "owner"), ("handlers", "owner")]);
    assert_eq!(circle(&layers), None);
    let round = graph(&[("config", "peers"), ("peers", "rollouts"), ("rollouts", "config")]);
    assert_eq!(circle(&round).unwrap().len(), 3);
    assert_eq!(
        named_modules("use crate::error::{A, B};\nlet x = crate::list::every_page(y);\nuse crate::{Config, cli};"),
        ["cli", "error", "list"].map(str::to_owned).into()
    );
}

/// Returns the name of the function whose signature starts `code` (a line without its
/// indentation), if it does: `fn`, after any of `pub`, `pub(crate)`, `pub(super)`, `async`,
/// `const` and `unsafe`.
fn function_name(code: &str) -> Option<String> {
    let (qualifiers, signature) = code.split_once("fn ")?;
    let qualified = qualifiers
        .split_whitespace()
        .all(|word| matches!(word, "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe"));
    qualified.then(|| {
        signature
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            .collect()
    })
}

/// Returns each function of `text` (outside its test module) longer than
/// [`MAX_FUNCTION_LINES`], as `line: name (N lines)`. A function runs from its `fn` line to
/// the line that closes its body at the `fn` line's indentation, as rustfmt writes them; a
/// declaration without a body (a trait's) is none.
fn long_functions(text: &str) -> Vec<String> {
    let lines: Vec<&str> = without_tests(text).lines().collect();
    let mut long = Vec::new();
    for (number, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = line.len() - code.len();
        let Some(name) = function_name(code) else {
            continue;
        };
        // The signature ends at the first line that opens the body or ends a declaration.
        let opened = lines[number..]
            .iter()
            .map(|line| line.trim_end())
            .find(|line| line.ends_with('{') || line.ends_with(';') || line.ends_with('}'));
        if !opened.is_some_and(|line| line.ends_with('{')) {
            continue;
        }
        let closed = lines[number + 1..].iter().position(|line| {
            line.len() > indent && line[..indent].trim().is_empty() && line[indent..].starts_with('}')
        });
        let Some(closed) = closed else {
            continue;
        };
        let length = closed + 2;
        if length > MAX_FUNCTION_LINES {
            long.push(format!("{}: {name} ({length} lines)", number + 1));
        }
    }
    long
}

#[test]
fn no_function_outside_tests_is_longer_than_80_lines() {
    let mut long = Vec::new();
    // The suites' own helpers (tests/src) are tests too.
    for src in crate_sources()
        .into_iter()
        .filter(|src| !src.starts_with(root().join("tests")))
    {
        for file in rust_files(&src) {
            let text = std::fs::read_to_string(&file).unwrap();
            long.extend(
                long_functions(&text)
                    .into_iter()
                    .map(|function| format!("{}:{function}", file.display())),
            );
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_counts_from_the_signature_to_the_closing_brace() {
    let body = |lines: usize| "        let x = 1;\n".repeat(lines);
    let fits = format!("    fn fits() {{\n{}    }}\n", body(MAX_FUNCTION_LINES - 2));
    assert!(long_functions(&fits).is_empty());
    let over = format!(
        "    pub(crate) async fn over(\n        x: u8,\n    ) -> u8 {{\n{}    }}\n",
        body(MAX_FUNCTION_LINES - 3)
    );
    assert_eq!(
        long_functions(&over),
        [format!("1: over ({} lines)", MAX_FUNCTION_LINES + 1)]
    );
    let declared = format!("    fn declared(\n        x: u8,\n    ) -> u8;\n{fits}");
    assert!(long_functions(&declared).is_empty());
    let tested = format!("#[cfg(test)]\nmod tests {{\n{}}}\n", over.repeat(2));
    assert!(long_functions(&tested).is_empty());
}
