//! Temporary directories that clean up after themselves.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// A fresh directory under the system's temporary directory; removed, with all
/// it holds, on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates one whose name holds the test binary's name, the process id,
    /// `tag` and a count, so that parallel tests and runs never share one. The
    /// name has no hexadecimal part, so a test can look for a hex token in a
    /// message that quotes a path under it.
    pub fn new(tag: &str) -> TempDir {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        // Cargo names a test binary `NAME-HASH`.
        let exe = std::env::current_exe().ok();
        let stem = exe.as_deref().and_then(Path::file_stem).and_then(|s| s.to_str());
        let binary = stem.map_or("test", |s| s.rsplit_once('-').map_or(s, |(name, _)| name));
        let dir = std::env::temp_dir().join(format!(
            "rr-http-{binary}-{}-{tag}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `rel` under it.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes `data` to the file `rel` under it, parents created; its path.
    pub fn file(&self, rel: impl AsRef<Path>, data: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Creates the directory `rel` under it, parents included; its path.
    pub fn dir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let path = self.join(rel);
        std::fs::create_dir_all(&path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Paths [`remove_at_exit`] was given.
static AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `path` (a file or a whole directory) when the test process exits, for
/// what a process-wide fixture made once and no drop will clean: a directory held
/// in a `static` outlives every test that uses it.
pub fn remove_at_exit(path: impl Into<PathBuf>) {
    let mut paths = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    if paths.is_empty() {
        // SAFETY: `remove_registered` is an `extern "C" fn()` that never unwinds.
        let registered = unsafe { libc::atexit(remove_registered) };
        assert_eq!(registered, 0, "atexit failed");
    }
    paths.push(path.into());
}

extern "C" fn remove_registered() {
    let paths = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    for path in paths {
        let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_holds_files_and_goes_on_drop() {
        let dir = TempDir::new("self-test");
        let file = dir.file("a/b.txt", "b");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "b");
        assert!(dir.dir("c/d").is_dir());
        let path = dir.path().to_path_buf();
        assert_ne!(path, TempDir::new("self-test").path());
        drop(dir);
        assert!(!path.exists());
    }
}
