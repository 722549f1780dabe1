//! Files kept in memory with their response headers pre-built, revalidated by
//! size, modification time, file identity and change time at most once per
//! revalidation interval.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_core::HeaderBlock;

use crate::encoding::Coding;

/// Most paths remembered; beyond it new files are served but not kept.
const MAX_ENTRIES: usize = 16 * 1024;
/// Longest request path used as a cache key.
const MAX_KEY_LEN: usize = 512;

/// What tells two versions of a file apart when their size and mtime agree: the
/// file's identity (device and inode: a new file renamed into place) and its
/// change time (a rewrite in place, even with the mtime set back). Neither can be
/// set by a user, unlike the mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Identity {
    dev: u64,
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Identity {
    #[cfg(unix)]
    fn of(meta: &Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }

    #[cfg(not(unix))]
    fn of(_meta: &Metadata) -> Identity {
        Identity::default()
    }

    /// A short mark of the inode and change time for the entity-tag. Mixed rather
    /// than written out, so the tag does not disclose inode numbers; fixed, so
    /// every server over the same files (and a restarted one) gives the same tag.
    /// The device is left out: its number may change across reboots.
    fn mark(&self) -> u32 {
        let mut h = 0x9e37_79b9_7f4a_7c15_u64;
        for v in [self.ino, self.ctime as u64, self.ctime_nsec as u64] {
            h = mix(h ^ v);
        }
        (h ^ (h >> 32)) as u32
    }
}

/// The splitmix64 finalizer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One representation of a file: the file itself or a precompressed sidecar.
#[derive(Debug)]
pub(crate) struct Variant {
    pub path: PathBuf,
    pub len: u64,
    pub modified: SystemTime,
    identity: Identity,
    pub etag: Bytes,
    pub content_type: Bytes,
    /// Every header of a 200 answer except those the driver writes.
    pub block: HeaderBlock,
    /// The same without `Content-Type`, for multipart answers.
    pub block_without_type: HeaderBlock,
    /// The content, when small enough to keep in memory.
    pub body: Option<Bytes>,
}

impl Variant {
    fn same_file(&self, path: &Path, meta: &Metadata) -> bool {
        self.path == path
            && self.len == meta.len()
            && meta.modified().ok() == Some(self.modified)
            && Identity::of(meta) == self.identity
    }

    fn memory(&self) -> u64 {
        self.body.as_ref().map_or(0, |b| b.len() as u64)
    }
}

/// A file and its sidecars.
#[derive(Debug)]
pub(crate) struct Entry {
    pub identity: Variant,
    br: Option<Variant>,
    gzip: Option<Variant>,
    codings: Vec<Coding>,
    checked_ms: AtomicU64,
}

impl Entry {
    /// The codings available besides identity.
    pub fn codings(&self) -> &[Coding] {
        &self.codings
    }

    pub fn variant(&self, c: Coding) -> &Variant {
        match c {
            Coding::Brotli => self.br.as_ref(),
            Coding::Gzip => self.gzip.as_ref(),
        }
        .unwrap_or(&self.identity)
    }

    fn memory(&self) -> u64 {
        self.identity.memory()
            + self.br.as_ref().map_or(0, Variant::memory)
            + self.gzip.as_ref().map_or(0, Variant::memory)
    }

    fn same_files(&self, path: &Path, meta: &Metadata, sidecars: &[(Coding, PathBuf, Metadata)]) -> bool {
        self.identity.same_file(path, meta)
            && self.codings.len() == sidecars.len()
            && sidecars.iter().all(|(c, p, m)| self.variant(*c).same_file(p, m))
    }
}

#[derive(Debug)]
pub(crate) struct Cache {
    /// foldhash rather than SipHash: the lookup sits on every request and SipHash
    /// cost 8 times as many instructions; keys are the paths of files that exist
    /// under the root, which clients cannot choose to collide, and the seed is
    /// random per process anyway.
    map: RwLock<HashMap<Box<str>, Arc<Entry>, foldhash::fast::RandomState>>,
    bytes: AtomicU64,
    /// Files answered from an entry (fresh, or revalidated unchanged).
    hits: AtomicU64,
    /// Files whose entry had to be built from the disk.
    misses: AtomicU64,
    /// Entries dropped to make room for others.
    evictions: AtomicU64,
    max_file: u64,
    capacity: u64,
    revalidate_ms: u64,
    base: Instant,
}

impl Cache {
    pub fn new(max_file: u64, capacity: u64, revalidate: Duration) -> Self {
        Cache {
            map: RwLock::new(HashMap::default()),
            bytes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            max_file,
            capacity,
            revalidate_ms: revalidate.as_millis() as u64,
            base: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// The entry for `key` if it was checked against the disk recently enough.
    pub fn get_fresh(&self, key: &str, now: Instant) -> Option<Arc<Entry>> {
        if self.capacity == 0 {
            return None;
        }
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let entry = map.get(key)?;
        // `now` is the driver's reading for this request: no clock read here.
        let now_ms = now.saturating_duration_since(self.base).as_millis() as u64;
        let fresh = now_ms.saturating_sub(entry.checked_ms.load(Ordering::Relaxed)) < self.revalidate_ms;
        if !fresh {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(entry.clone())
    }

    /// The entry for a file just found on disk: the cached one if the files are
    /// unchanged, else a new one (kept when the key and the budget allow).
    pub fn load(
        &self,
        key: &str,
        path: PathBuf,
        meta: Metadata,
        sidecars: Vec<(Coding, PathBuf, Metadata)>,
        common: &[(String, String)],
    ) -> io::Result<Arc<Entry>> {
        let cacheable = self.capacity > 0 && is_clean_key(key);
        if cacheable {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get(key) {
                if e.same_files(&path, &meta, &sidecars) {
                    e.checked_ms.store(self.now_ms(), Ordering::Relaxed);
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(e.clone());
                }
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let vary = !sidecars.is_empty();
        let identity = build_variant(&path, &path, &meta, None, vary, common, self.max_file)?;
        let mut entry = Entry {
            identity,
            br: None,
            gzip: None,
            codings: Vec::new(),
            checked_ms: AtomicU64::new(self.now_ms()),
        };
        for (coding, side_path, side_meta) in sidecars {
            let v = build_variant(
                &side_path,
                &path,
                &side_meta,
                Some(coding),
                vary,
                common,
                self.max_file,
            )?;
            match coding {
                Coding::Brotli => entry.br = Some(v),
                Coding::Gzip => entry.gzip = Some(v),
            }
            entry.codings.push(coding);
        }
        let entry = Arc::new(entry);
        if cacheable {
            self.insert(key, entry.clone());
        }
        Ok(entry)
    }

    fn insert(&self, key: &str, entry: Arc<Entry>) {
        let new = entry.memory();
        if new > self.capacity {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut used = self.bytes.load(Ordering::Relaxed) - map.remove(key).map_or(0, |e| e.memory());
        // Full: make room by dropping entries in the map's (effectively random)
        // order. Random eviction keeps no per-request bookkeeping on the hot path,
        // and a popular file that is dropped comes back on its next request.
        while used + new > self.capacity || map.len() >= MAX_ENTRIES {
            let Some(victim) = map.keys().next().cloned() else {
                break;
            };
            if let Some(e) = map.remove(&victim) {
                used -= e.memory();
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.bytes.store(used + new, Ordering::Relaxed);
        map.insert(key.into(), entry);
    }

    /// Forgets `key` (its file is gone), returning its memory to the budget.
    pub fn remove(&self, key: &str) {
        // Most misses were never cached: only those take the write lock.
        if !self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
        {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.remove(key) {
            self.bytes.fetch_sub(e.memory(), Ordering::Relaxed);
        }
    }

    #[cfg(test)]
    fn stats(&self) -> (usize, u64) {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        (map.len(), self.bytes.load(Ordering::Relaxed))
    }

    /// The counters and the size now, for metrics.
    pub fn counters(&self) -> CacheCounters {
        let entries = self.map.read().unwrap_or_else(|p| p.into_inner()).len();
        CacheCounters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries,
            memory_bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// What the cache has done and holds (see [`Cache::counters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CacheCounters {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub entries: usize,
    pub memory_bytes: u64,
}

/// Keys are request paths; only paths already in plain form are kept, so a file
/// cannot be cached under many spellings (`/a`, `//a`, `/%61`) to exhaust memory.
fn is_clean_key(key: &str) -> bool {
    key.len() <= MAX_KEY_LEN
        && key.starts_with('/')
        && !key.contains('%')
        && !key.contains("//")
        && !key.contains("/./")
}

/// The strong entity-tag of a file: size, modification time to the nanosecond,
/// and a mark of its inode and change time, so that new content with the same
/// size and mtime (renamed into place, or rewritten with the mtime set back) never
/// carries the old content's tag. The tag changes, harmlessly, on a change of
/// metadata only (chmod, a new hard link); servers sharing the files agree on it,
/// servers holding separate copies do not.
fn etag(len: u64, modified: SystemTime, identity: &Identity) -> String {
    let d = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "\"{:x}-{:x}.{:x}-{:x}\"",
        len,
        d.as_secs(),
        d.subsec_nanos(),
        identity.mark()
    )
}

/// `Content-Type` from the name of the (uncompressed) file.
fn content_type(name_path: &Path) -> String {
    let mime = mime_guess::from_path(name_path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let textual = mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "image/svg+xml"
                | "application/xhtml+xml"
        );
    if textual {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    }
}

/// Reads the file (when small) and pre-builds its headers.
fn build_variant(
    path: &Path,
    name_path: &Path,
    meta: &Metadata,
    coding: Option<Coding>,
    vary: bool,
    common: &[(String, String)],
    max_file: u64,
) -> io::Result<Variant> {
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let mut len = meta.len();
    let body = if len <= max_file {
        let mut data = Vec::with_capacity(len as usize);
        std::fs::File::open(path)?
            .take(max_file + 1)
            .read_to_end(&mut data)?;
        if data.len() as u64 > max_file {
            None
        } else {
            len = data.len() as u64;
            Some(Bytes::from(data))
        }
    } else {
        None
    };
    let identity = Identity::of(meta);
    let etag = etag(len, modified, &identity);
    let ctype = content_type(name_path);
    let last_modified = httpdate::fmt_http_date(modified);
    let build = |with_type: bool| {
        let mut b = HeaderBlock::builder();
        if with_type {
            b.push("Content-Type", ctype.as_bytes());
        }
        if let Some(c) = coding {
            b.push("Content-Encoding", c.token().as_bytes());
        }
        b.push("ETag", etag.as_bytes());
        b.push("Last-Modified", last_modified.as_bytes());
        b.push("Accept-Ranges", b"bytes");
        b.push("X-Content-Type-Options", b"nosniff");
        if vary {
            b.push("Vary", b"Accept-Encoding");
        }
        for (n, v) in common {
            b.push(n, v.as_bytes());
        }
        b.build()
    };
    Ok(Variant {
        path: path.to_path_buf(),
        len,
        modified,
        identity,
        block: build(true),
        block_without_type: build(false),
        etag: Bytes::from(etag.clone()),
        content_type: Bytes::from(ctype.clone()),
        body,
    })
}

/// Opens `path` positioned at `start`.
pub(crate) fn open_at(path: &Path, start: u64) -> io::Result<std::fs::File> {
    let mut f = std::fs::File::open(path)?;
    if start > 0 {
        f.seek(SeekFrom::Start(start))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, len: usize) -> (PathBuf, Metadata) {
        let p = dir.join(name);
        std::fs::write(&p, vec![b'x'; len]).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        (p, m)
    }

    /// Regression: a full cache used to refuse every new file for good, and the
    /// memory of deleted files was never given back.
    #[test]
    fn a_full_cache_evicts_and_a_removed_entry_frees_its_memory() {
        let dir = std::env::temp_dir().join(format!("ss-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cache = Cache::new(1000, 2500, Duration::from_secs(1));
        for i in 0..5 {
            let (p, m) = file(&dir, &format!("f{i}"), 1000);
            cache.load(&format!("/f{i}"), p, m, Vec::new(), &[]).unwrap();
            let (entries, bytes) = cache.stats();
            assert!(bytes <= 2500, "over budget: {bytes}");
            assert_eq!(bytes, entries as u64 * 1000);
        }
        // The newest file is always in; older ones made room for it.
        assert!(cache.get_fresh("/f4", Instant::now()).is_some());
        assert_eq!(cache.stats(), (2, 2000));
        let c = cache.counters();
        assert_eq!((c.hits, c.misses, c.evictions), (1, 5, 3));
        assert_eq!((c.entries, c.memory_bytes), (2, 2000));
        // Revalidated unchanged: a hit, not a miss.
        let (p, m) = (dir.join("f4"), std::fs::metadata(dir.join("f4")).unwrap());
        cache.load("/f4", p, m, Vec::new(), &[]).unwrap();
        assert_eq!((cache.counters().hits, cache.counters().misses), (2, 5));
        cache.remove("/f4");
        assert_eq!(cache.stats(), (1, 1000));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
