//! From a checked path to a file or directory on disk, never outside the root.

use std::io;
use std::path::{Path, PathBuf};

use crate::path::{self, SafePath};

/// What may happen with symbolic links under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SymlinkPolicy {
    /// Follow links, but only to targets that stay under the canonical root (default).
    #[default]
    WithinRoot,
    /// Never follow a link: any link on the path is treated as absent.
    Never,
}

/// What a path names on disk.
#[derive(Debug)]
pub(crate) enum Found {
    File { path: PathBuf, meta: std::fs::Metadata },
    Dir { path: PathBuf },
}

/// Why a path names nothing servable.
#[derive(Debug)]
pub(crate) enum NotFound {
    /// Absent, outside the root, or behind a refused link: 404.
    Absent,
    /// The OS refused access: 403.
    Forbidden,
    /// Any other I/O failure: 500.
    Io(io::Error),
}

impl From<io::Error> for NotFound {
    fn from(e: io::Error) -> Self {
        // Bug fix (symlink_loop_is_404_not_500): a link cycle under the root made
        // `canonicalize` fail with ELOOP, whose kind is not matched below, so every
        // request through it got a 500 and an error log line. A path through a
        // cycle names nothing: 404, like a dangling link.
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return NotFound::Absent;
        }
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
                NotFound::Absent
            }
            io::ErrorKind::PermissionDenied => NotFound::Forbidden,
            _ => NotFound::Io(e),
        }
    }
}

/// Finds `rel` (components under `root`, already checked) on disk.
/// `root` must be canonical. Where links lead passes the request path's rules: it
/// stays under the root, and it is no dot name (nor inside one) unless `dotfiles`.
pub(crate) fn find(
    root: &Path,
    rel: &[&str],
    policy: SymlinkPolicy,
    dotfiles: bool,
) -> Result<Found, NotFound> {
    let mut joined = root.to_path_buf();
    for seg in rel {
        joined.push(seg);
        if policy == SymlinkPolicy::Never && std::fs::symlink_metadata(&joined)?.file_type().is_symlink() {
            return Err(NotFound::Absent);
        }
    }
    let canonical = match policy {
        SymlinkPolicy::WithinRoot => {
            let c = std::fs::canonicalize(&joined)?;
            if !c.starts_with(root) {
                tracing::warn!(path = %joined.display(), "link leads outside the root; refused");
                return Err(NotFound::Absent);
            }
            c
        }
        SymlinkPolicy::Never => joined,
    };
    if !dotfiles && leads_to_hidden(root, &canonical) {
        tracing::warn!(path = %canonical.display(), "path resolves to a hidden name; refused");
        return Err(NotFound::Absent);
    }
    let meta = std::fs::metadata(&canonical)?;
    if meta.is_dir() {
        Ok(Found::Dir { path: canonical })
    } else if meta.is_file() {
        Ok(Found::File {
            path: canonical,
            meta,
        })
    } else {
        // Sockets, FIFOs, devices: never served.
        Err(NotFound::Absent)
    }
}

/// Whether `path` (under `root`) is, or is inside, a hidden name.
fn leads_to_hidden(root: &Path, path: &Path) -> bool {
    // Always under the root here; a path that were not would count as hidden.
    path.strip_prefix(root).map_or(true, |rel| {
        rel.components()
            .enumerate()
            .any(|(i, c)| path::is_hidden(i, c.as_os_str().as_encoded_bytes()))
    })
}

/// Segments of a checked path as string slices.
pub(crate) fn segments(p: &SafePath) -> Vec<&str> {
    p.segments.iter().map(String::as_str).collect()
}
