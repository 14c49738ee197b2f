//! Archive checks: what a tenant's zip must be before anything is built from it. Each refusal
//! names the rule, for the function's `error_message`.

use crate::error::BuilderError;
use std::collections::HashMap;
use std::io::Read;

/// Most links followed while resolving one path: Linux's own limit.
const MAX_LINK_HOPS: u32 = 40;

/// Bounds on an archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest archive, compressed.
    pub max_compressed_bytes: u64,
    /// Largest archive, expanded.
    pub max_expanded_bytes: u64,
    /// Most entries.
    pub max_entries: usize,
    /// Largest expansion ratio of one entry (expanded / compressed) for entries over 1 MiB.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_compressed_bytes: 100 * 1024 * 1024,
            max_expanded_bytes: 500 * 1024 * 1024,
            max_entries: 20_000,
            max_ratio: 200,
        }
    }
}

/// One entry of an accepted archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File {
        /// Relative, `/`-separated.
        path: String,
        /// 0o644 or 0o755.
        mode: u32,
        /// The content.
        data: Vec<u8>,
    },
    /// A directory.
    Directory {
        /// Relative, `/`-separated.
        path: String,
    },
    /// A symbolic link that stays inside the code directory.
    Link {
        /// Relative, `/`-separated.
        path: String,
        /// Where it points, relative.
        target: String,
    },
}

impl Entry {
    /// Returns the entry's path.
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Directory { path } | Self::Link { path, .. } => path,
        }
    }
}

/// Returns the entries of `archive`, or why it is refused.
pub fn read_archive(archive: &[u8], limits: &Limits) -> Result<Vec<Entry>, BuilderError> {
    const MIB: u64 = 1024 * 1024;
    if archive.len() as u64 > limits.max_compressed_bytes {
        return Err(BuilderError::TooLarge {
            bytes: archive.len(),
            max_mib: limits.max_compressed_bytes / MIB,
        });
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).map_err(|_| BuilderError::NotZip)?;
    if zip.len() > limits.max_entries {
        return Err(BuilderError::TooManyEntries {
            entries: zip.len(),
            max: limits.max_entries,
        });
    }
    let mut expanded = 0u64;
    let mut entries = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let mut file = zip
            .by_index(index)
            .map_err(|source| BuilderError::UnreadableEntry { index, source })?;
        let name = file.name().replace('\\', "/");
        let path = checked_path(&name)?;
        let declared = file.size();
        expanded = expanded.saturating_add(declared);
        if expanded > limits.max_expanded_bytes {
            return Err(BuilderError::ExpandsBeyond {
                max_mib: limits.max_expanded_bytes / MIB,
            });
        }
        let compressed = file.compressed_size().max(1);
        if declared > MIB && declared / compressed > limits.max_ratio {
            return Err(BuilderError::ZipBomb {
                path,
                ratio: declared / compressed,
                max: limits.max_ratio,
            });
        }
        if file.is_dir() {
            if !path.is_empty() {
                entries.push(Entry::Directory { path });
            }
            continue;
        }
        // Never trust the declared size: read at most one byte more than it.
        let mut data = Vec::with_capacity(usize::try_from(declared.min(MIB)).unwrap_or_default());
        (&mut file)
            .take(declared + 1)
            .read_to_end(&mut data)
            .map_err(|source| BuilderError::CannotExpand {
                path: path.clone(),
                source,
            })?;
        if data.len() as u64 > declared {
            return Err(BuilderError::LargerThanDeclared { path });
        }
        if file.is_symlink() {
            let Ok(target) = String::from_utf8(data) else {
                return Err(BuilderError::LinkNotText { path });
            };
            entries.push(Entry::Link { path, target });
        } else {
            let mode = file
                .unix_mode()
                .map_or(0o644, |mode| if mode & 0o111 != 0 { 0o755 } else { 0o644 });
            entries.push(Entry::File { path, mode, data });
        }
    }
    check_paths(&entries)?;
    Ok(entries)
}

/// Returns `name` as a clean relative path, or refuses absolute paths and `..`.
fn checked_path(name: &str) -> Result<String, BuilderError> {
    if name.starts_with('/') || name.contains(':') {
        return Err(BuilderError::AbsolutePath { name: name.to_owned() });
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(BuilderError::ParentPath { name: name.to_owned() });
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// Why a path cannot be resolved inside the code directory.
enum Escape {
    /// It leads above the code directory, or to an absolute path.
    Outside,
    /// It goes through more than [`MAX_LINK_HOPS`] links (a loop, or a chain built to tire us).
    TooManyLinks,
}

/// The links of an archive, by path: resolves paths as the kernel will once they are unpacked.
#[derive(Default)]
struct Links(HashMap<String, String>);

impl Links {
    /// Returns the components `target` resolves to from the directory `base` (components
    /// below the code directory), following links.
    fn resolve(&self, mut base: Vec<String>, target: &str, hops: &mut u32) -> Result<Vec<String>, Escape> {
        if target.starts_with('/') {
            return Err(Escape::Outside);
        }
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    base.pop().ok_or(Escape::Outside)?;
                }
                name => {
                    base.push(name.to_owned());
                    if let Some(link) = self.0.get(&base.join("/")) {
                        *hops += 1;
                        if *hops > MAX_LINK_HOPS {
                            return Err(Escape::TooManyLinks);
                        }
                        base.pop();
                        base = self.resolve(base, link, hops)?;
                    }
                }
            }
        }
        Ok(base)
    }

    /// Refuses `path` when its directory, or its `target` for a link, resolves outside the
    /// code directory through the links known so far.
    fn check(&self, path: &str, target: Option<&str>) -> Result<(), BuilderError> {
        let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
        let mut hops = 0;
        let directory = self.resolve(Vec::new(), parent, &mut hops).map_err(|escape| {
            let path = path.to_owned();
            match escape {
                Escape::Outside => BuilderError::UnderOutsideLink { path },
                Escape::TooManyLinks => BuilderError::UnderTooManyLinks { path },
            }
        })?;
        let Some(target) = target else {
            return Ok(());
        };
        self.resolve(directory, target, &mut hops).map(drop).map_err(|escape| {
            let (path, target) = (path.to_owned(), target.to_owned());
            match escape {
                Escape::Outside if target.starts_with('/') => BuilderError::LinkToAbsolute { path, target },
                Escape::Outside => BuilderError::LinkOutside { path, target },
                Escape::TooManyLinks => BuilderError::LinkTooDeep { path, target },
            }
        })
    }
}

/// Refuses, naming the first such entry in archive order, an archive where a link, resolved
/// through the entries before it (links included), leads outside the code directory, where an
/// entry is written through such a path, or where an entry is a whiteout (`.wh.*`: the code
/// becomes an image layer, where such a name deletes what it names). Links are checked again
/// against the whole archive: a later link can change where an earlier one leads.
fn check_paths(entries: &[Entry]) -> Result<(), BuilderError> {
    let mut links = Links::default();
    for entry in entries {
        let path = entry.path();
        if path.split('/').any(|part| part.starts_with(".wh.")) {
            return Err(BuilderError::Whiteout { path: path.to_owned() });
        }
        match entry {
            Entry::Link { path, target } => {
                links.check(path, Some(target))?;
                links.0.insert(path.clone(), target.clone());
            }
            // Unpacking a file or directory over a link replaces the link.
            other => {
                links.check(other.path(), None)?;
                links.0.remove(other.path());
            }
        }
    }
    for entry in entries {
        if let Entry::Link { path, target } = entry
            && links.0.get(path) == Some(target)
        {
            links.check(path, Some(target))?;
        }
    }
    Ok(())
}

/// Checks that the handler `runtime` will call exists in `entries`.
pub fn check_handler(runtime: &str, handler: &str, entries: &[Entry]) -> Result<(), BuilderError> {
    let file = |candidates: &[String]| {
        entries.iter().find_map(|entry| match entry {
            Entry::File { path, data, .. } if candidates.contains(path) => Some((path.clone(), data.clone())),
            _ => None,
        })
    };
    if runtime == "wasm" {
        return component(handler, entries).map(drop);
    }
    if runtime == "golang" || runtime.starts_with("go") {
        let directory = handler.trim_start_matches("./").trim_end_matches('/');
        let has_go = entries.iter().any(|entry| {
            let path = entry.path();
            let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            path.ends_with(".go") && (parent == directory || (directory == "." && !path.contains('/')))
        });
        return if has_go {
            Ok(())
        } else {
            Err(BuilderError::NoGoPackage {
                handler: handler.to_owned(),
            })
        };
    }
    let (module, function) = handler.rsplit_once('.').ok_or_else(|| BuilderError::HandlerFormat {
        handler: handler.to_owned(),
    })?;
    let (candidates, shown): (Vec<String>, String) = if runtime.starts_with("node") {
        (
            ["js", "mjs", "cjs"]
                .iter()
                .map(|ext| format!("{module}.{ext}"))
                .collect(),
            format!("{module}.js"),
        )
    } else {
        (vec![format!("{module}.py")], format!("{module}.py"))
    };
    let (path, data) = file(&candidates).ok_or(BuilderError::HandlerFileMissing { file: shown })?;
    let source = String::from_utf8_lossy(&data);
    let defined = if runtime.starts_with("node") {
        node_exports(&source, function)
    } else {
        source.lines().any(|line| {
            let line = line.trim_start_matches("async ");
            line.starts_with(&format!("def {function}(")) || line.starts_with(&format!("{function} ="))
        })
    };
    if defined {
        Ok(())
    } else {
        Err(BuilderError::HandlerUndefined {
            path,
            function: function.to_owned(),
        })
    }
}

/// Returns the bytes of the component file `handler` names (a `wasm` function's).
pub fn component<'a>(handler: &str, entries: &'a [Entry]) -> Result<&'a [u8], BuilderError> {
    let handler = handler.trim_start_matches("./");
    entries
        .iter()
        .find_map(|entry| match entry {
            Entry::File { path, data, .. } if path == handler => Some(data.as_slice()),
            _ => None,
        })
        .ok_or_else(|| BuilderError::HandlerFileMissing {
            file: handler.to_owned(),
        })
}

/// Returns whether a Node.js module appears to export `name` (CommonJS or ESM).
fn node_exports(source: &str, name: &str) -> bool {
    let compact: String = source.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        format!("exports.{name} "),
        format!("exports.{name}="),
        format!("exports[\"{name}\"]"),
        format!("exports['{name}']"),
        format!("export function {name}("),
        format!("export async function {name}("),
        format!("export const {name} "),
        format!("export let {name} "),
    ]
    .iter()
    .any(|pattern| compact.contains(pattern.as_str()))
        || (compact.contains("module.exports") && compact.contains(name))
        || (compact.contains("export {") && compact.contains(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        for (name, data) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn archives_are_checked_rule_by_rule() {
        let limits = Limits::default();
        let good = zip(&[("handler.js", b"exports.handle = () => 'hi';"), ("lib/a.js", b"x")]);
        let entries = read_archive(&good, &limits).unwrap();
        check_handler("node20", "handler.handle", &entries).unwrap();
        assert!(
            check_handler("node20", "handler.other", &entries)
                .unwrap_err()
                .to_string()
                .contains("`other`")
        );
        assert!(
            check_handler("node20", "src/handler.handle", &entries)
                .unwrap_err()
                .to_string()
                .contains("handler file `src/handler.js` not found")
        );
        assert_eq!(
            read_archive(b"not a zip", &limits).unwrap_err().to_string(),
            "the archive is not a zip file"
        );
        assert!(
            read_archive(&zip(&[("../evil", b"x")]), &limits)
                .unwrap_err()
                .to_string()
                .contains("`..`")
        );
        assert!(
            read_archive(&zip(&[("/etc/passwd", b"x")]), &limits)
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        let small = Limits {
            max_expanded_bytes: 10,
            ..limits
        };
        assert!(
            read_archive(&zip(&[("big", &[0u8; 11])]), &small)
                .unwrap_err()
                .to_string()
                .contains("expands beyond")
        );
        let few = Limits {
            max_entries: 1,
            ..limits
        };
        assert!(read_archive(&good, &few).unwrap_err().to_string().contains("2 entries"));
        let bomb = zip(&[("zeros", &vec![0u8; 4 * 1024 * 1024])]);
        assert!(
            read_archive(&bomb, &limits)
                .unwrap_err()
                .to_string()
                .contains("zip bomb")
        );
        let python = read_archive(
            &zip(&[("src/app.py", b"import os\n\ndef main(event, context):\n    return 1\n")]),
            &limits,
        )
        .unwrap();
        check_handler("python3", "src/app.main", &python).unwrap();
        assert!(check_handler("python3", "src/app.handle", &python).is_err());
    }

    /// Returns a zip of `links` (path, target) followed by `files` (path, content).
    fn zip_with_links(links: &[(&str, &str)], files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        for (path, target) in links {
            writer.add_symlink(*path, *target, options).unwrap();
        }
        for (name, data) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn refusal(links: &[(&str, &str)], files: &[(&str, &[u8])]) -> String {
        read_archive(&zip_with_links(links, files), &Limits::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn links_stay_inside() {
        let entries = read_archive(
            &zip_with_links(&[("a/b", "../c"), ("d", "a/b"), ("e", "a/./b/../b")], &[("c", b"x")]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            refusal(&[("a/b", "../../c")], &[]),
            "link `a/b` points to `../../c`, outside the code directory"
        );
        assert!(refusal(&[("a", "/etc/passwd")], &[]).contains("absolute path `/etc/passwd`"));
        assert_eq!(
            refusal(&[("l", "l/x")], &[]),
            "link `l` points to `l/x` through too many levels of links"
        );
    }

    #[test]
    fn chained_links_are_resolved_through_earlier_links() {
        // Each link alone climbs no higher than the code directory; resolved through the
        // ones before it, `u1` is already its parent.
        let chain = [("a/l", ".."), ("u1", "a/l/.."), ("u2", "u1/.."), ("u3", "u2/..")];
        assert_eq!(
            refusal(&chain, &[]),
            "link `u1` points to `a/l/..`, outside the code directory"
        );
        // Two links that each stay inside, one resolved through the other.
        assert_eq!(
            refusal(&[("a/l", ".."), ("a/m", "l/..")], &[]),
            "link `a/m` points to `l/..`, outside the code directory"
        );
        // A later link changes where an earlier one leads.
        assert_eq!(
            refusal(&[("x", "p/q/../.."), ("p/q", ".")], &[]),
            "link `x` points to `p/q/../..`, outside the code directory"
        );
    }

    #[test]
    fn entries_cannot_be_written_through_a_link_or_be_whiteouts() {
        assert_eq!(
            refusal(&[], &[("u6/.wh.victim", b"")]),
            "entry `u6/.wh.victim` is named `.wh.*`, which image layers reserve for deletions"
        );
        assert!(refusal(&[], &[(".wh..wh..opq", b"")]).contains("`.wh..wh..opq`"));
        assert!(refusal(&[], &[(".wh.dir/file", b"")]).contains("`.wh.dir/file`"));
        // A link inside, a file written through it: fine; through a link out: refused.
        read_archive(
            &zip_with_links(&[("d", "sub")], &[("d/file", b"x")]),
            &Limits::default(),
        )
        .unwrap();
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        writer.add_symlink("up", "x/../..", options).unwrap();
        let refused = read_archive(&writer.finish().unwrap().into_inner(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("link `up`"), "{refused}");
    }
}
