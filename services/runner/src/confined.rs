//! Removals confined beneath a root: the kernel resolves every path with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), so no link, however chained through an image's
//! earlier entries, and no `..` leads outside the root; below that, trees are removed through
//! directory descriptors, never by path, so a link inside them is removed, not followed.

use rustix::fs::{AtFlags, Dir, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

/// Why a confined removal failed.
#[derive(Debug)]
pub enum RemoveError {
    /// The path leads outside the root (through a link or `..`), or names no entry below it.
    Outside,
    /// The file system refused.
    Io(std::io::Error),
}

impl From<Errno> for RemoveError {
    fn from(errno: Errno) -> Self {
        Self::Io(errno.into())
    }
}

/// Removes `path` (relative to `root`) and, for a directory, everything below it. A path that
/// does not exist is not an error: a whiteout may hide nothing.
pub fn remove_beneath(root: &Path, path: &Path) -> Result<(), RemoveError> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => parts.push(part),
            Component::ParentDir | Component::Prefix(_) => return Err(RemoveError::Outside),
        }
    }
    let Some((name, parents)) = parts.split_last() else {
        return Err(RemoveError::Outside);
    };
    let parent: std::path::PathBuf = parents.iter().collect();
    let root = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let parent = match rustix::fs::openat2(
        &root,
        if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &parent
        },
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(parent) => parent,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(()),
        // EXDEV: the resolution left the root; ELOOP: a magic link or a loop.
        Err(Errno::XDEV | Errno::LOOP) => return Err(RemoveError::Outside),
        Err(errno) => return Err(errno.into()),
    };
    remove_entry(&parent, *name)
}

/// Removes the entry `name` of the directory `parent`, recursively, without following links.
fn remove_entry(parent: &OwnedFd, name: impl rustix::path::Arg + Copy) -> Result<(), RemoveError> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        // unlink refuses directories (EISDIR on Linux, EPERM in POSIX).
        Err(Errno::ISDIR | Errno::PERM) => {
            let directory = rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            // Names first, removals after: a directory changed while it is read may skip entries.
            let names: Vec<CString> = Dir::read_from(directory.as_fd())?
                .map(|entry| entry.map(|entry| entry.file_name().to_owned()))
                .collect::<Result<_, _>>()?;
            for child in names.iter().filter(|name| !matches!(name.to_bytes(), b"." | b"..")) {
                remove_entry(&directory, child.as_c_str())?;
            }
            rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
            Ok(())
        }
        Err(errno) => Err(errno.into()),
    }
}
