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
use tokio::sync::OnceCell;

use crate::compress::{self, Settings};
use crate::encoding::{Coding, Codings};

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

/// One representation of a file: the file itself, a precompressed sidecar, or
/// the file compressed in memory.
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

    pub fn memory(&self) -> u64 {
        self.body.as_ref().map_or(0, |b| b.len() as u64)
    }
}

/// The headers of a file compressed as it is streamed (too large to keep): its
/// length is unknown, so the body is chunked and ranges are not offered.
#[derive(Debug)]
pub(crate) struct Streamed {
    pub etag: Bytes,
    pub block: HeaderBlock,
}

/// A file, its sidecars, and its compressed forms.
#[derive(Debug)]
pub(crate) struct Entry {
    pub identity: Variant,
    sidecars: [Option<Variant>; 3],
    /// Codings some answer may carry: sidecars, and those compressed on the fly.
    codings: Codings,
    /// Codings this file may be compressed to on the fly.
    on_the_fly: Codings,
    /// The file compressed in memory, made on first demand (`None` inside: the
    /// compressed form was no smaller, so identity is sent).
    encoded: [OnceCell<Option<Variant>>; 3],
    /// The headers of the compressed streams of a file not kept in memory.
    streamed: [Option<Streamed>; 3],
    /// Memory of the `encoded` variants counted in the cache's total; changed
    /// only under the cache's write lock, as entries are removed under it.
    encoded_memory: AtomicU64,
    checked_ms: AtomicU64,
    /// The extra headers of this file's answers (common ones and header
    /// rules), for the compressed forms made later.
    pub headers: Box<[(String, String)]>,
}

impl Entry {
    /// The codings some answer for this file may carry; 0 when every answer is
    /// the same whatever `Accept-Encoding` says.
    pub fn codings(&self) -> Codings {
        self.codings
    }

    /// The precompressed sidecar for `c`.
    pub fn sidecar(&self, c: Coding) -> Option<&Variant> {
        self.sidecars[c.index()].as_ref()
    }

    /// Whether `c` is made on the fly for this file.
    pub fn on_the_fly(&self, c: Coding) -> bool {
        self.on_the_fly & c.bit() != 0
    }

    /// The in-memory compressed variant for `c`, made once.
    pub fn encoded(&self, c: Coding) -> &OnceCell<Option<Variant>> {
        &self.encoded[c.index()]
    }

    /// The headers of the compressed stream for `c` (files not in memory).
    pub fn streamed(&self, c: Coding) -> Option<&Streamed> {
        self.streamed[c.index()].as_ref()
    }

    fn memory(&self) -> u64 {
        self.identity.memory()
            + self.sidecars.iter().flatten().map(Variant::memory).sum::<u64>()
            + self.encoded_memory.load(Ordering::Relaxed)
    }

    fn same_files(&self, path: &Path, meta: &Metadata, sidecars: &[(Coding, PathBuf, Metadata)]) -> bool {
        self.identity.same_file(path, meta)
            && self.sidecars.iter().flatten().count() == sidecars.len()
            && sidecars
                .iter()
                .all(|(c, p, m)| self.sidecar(*c).is_some_and(|v| v.same_file(p, m)))
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
        compression: &Settings,
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
        let ctype = content_type(&path);
        let on_the_fly = compression.codings_for(&ctype, meta.len());
        let side_codings = sidecars.iter().fold(0, |m, (c, _, _)| m | c.bit());
        let vary = side_codings | on_the_fly != 0;
        let identity = build_variant(&path, &ctype, &meta, None, vary, common, self.max_file)?;
        let mut entry = Entry {
            streamed: Default::default(),
            identity,
            sidecars: Default::default(),
            codings: side_codings | on_the_fly,
            on_the_fly,
            encoded: Default::default(),
            encoded_memory: AtomicU64::new(0),
            checked_ms: AtomicU64::new(self.now_ms()),
            headers: common.into(),
        };
        for (coding, side_path, side_meta) in sidecars {
            let v = build_variant(
                &side_path,
                &ctype,
                &side_meta,
                Some(coding),
                vary,
                common,
                self.max_file,
            )?;
            entry.sidecars[coding.index()] = Some(v);
        }
        if entry.identity.body.is_none() {
            let level = compression.level.for_stream();
            for c in Coding::ALL {
                if entry.on_the_fly(c) {
                    let etag = compress::etag(&entry.identity.etag, c, level.of(c));
                    let block = headers(
                        &entry.identity,
                        etag.as_bytes(),
                        Some(c),
                        true,
                        (true, false),
                        common,
                    );
                    entry.streamed[c.index()] = Some(Streamed {
                        etag: Bytes::from(etag),
                        block,
                    });
                }
            }
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

    /// Counts `memory` bytes of a compressed variant just made for `entry`
    /// against the budget, if `entry` is the one cached under `key` (else it
    /// lives only as long as the requests holding it), making room as `insert`
    /// does, though never by dropping `entry` itself.
    pub fn add_encoded(&self, key: &str, entry: &Arc<Entry>, memory: u64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if !map.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            return;
        }
        entry.encoded_memory.fetch_add(memory, Ordering::Relaxed);
        let mut used = self.bytes.load(Ordering::Relaxed) + memory;
        while used > self.capacity {
            let Some(victim) = map.keys().find(|k| &***k != key).cloned() else {
                break;
            };
            if let Some(e) = map.remove(&victim) {
                used -= e.memory();
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.bytes.store(used, Ordering::Relaxed);
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
pub(crate) fn content_type(name_path: &Path) -> String {
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
    ctype: &str,
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
    let mut v = Variant {
        path: path.to_path_buf(),
        len,
        modified,
        identity,
        block: HeaderBlock::default(),
        block_without_type: HeaderBlock::default(),
        etag: Bytes::from(etag(len, modified, &identity)),
        content_type: Bytes::from(ctype.to_owned()),
        body,
    };
    let tag = v.etag.clone();
    v.block = headers(&v, &tag, coding, true, (vary, true), common);
    v.block_without_type = headers(&v, &tag, coding, false, (vary, true), common);
    Ok(v)
}

/// The file of `identity` compressed in memory to `data` by `c` at `level`.
pub(crate) fn encoded_variant(
    identity: &Variant,
    c: Coding,
    level: i32,
    data: Vec<u8>,
    common: &[(String, String)],
) -> Variant {
    let etag = Bytes::from(compress::etag(&identity.etag, c, level));
    let mut v = Variant {
        path: identity.path.clone(),
        len: data.len() as u64,
        modified: identity.modified,
        identity: identity.identity,
        block: HeaderBlock::default(),
        block_without_type: HeaderBlock::default(),
        etag: etag.clone(),
        content_type: identity.content_type.clone(),
        body: Some(Bytes::from(data)),
    };
    v.block = headers(&v, &etag, Some(c), true, (true, true), common);
    v.block_without_type = headers(&v, &etag, Some(c), false, (true, true), common);
    v
}

/// The header block of an answer with `v`'s type and date: with or without
/// `Content-Type` (multipart answers name theirs), with `Content-Encoding` for
/// a coding, `Accept-Ranges` when `ranges` (not for a stream of unknown
/// length), `Vary` when the answer depends on `Accept-Encoding`.
fn headers(
    v: &Variant,
    etag: &[u8],
    coding: Option<Coding>,
    with_type: bool,
    (vary, ranges): (bool, bool),
    common: &[(String, String)],
) -> HeaderBlock {
    let last_modified = httpdate::fmt_http_date(v.modified);
    let mut b = HeaderBlock::builder();
    if with_type {
        b.push("Content-Type", &v.content_type);
    }
    if let Some(c) = coding {
        b.push("Content-Encoding", c.token().as_bytes());
    }
    b.push("ETag", etag);
    b.push("Last-Modified", last_modified.as_bytes());
    if ranges {
        b.push("Accept-Ranges", b"bytes");
    }
    b.push("X-Content-Type-Options", b"nosniff");
    if vary {
        b.push("Vary", b"Accept-Encoding");
    }
    for (n, val) in common {
        b.push(n, val.as_bytes());
    }
    b.build()
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

    fn off() -> Settings {
        Settings::new(&[], compress::CompressionLevel::Fast, 0, &[])
    }

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
            cache
                .load(&format!("/f{i}"), p, m, Vec::new(), &[], &off())
                .unwrap();
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
        cache.load("/f4", p, m, Vec::new(), &[], &off()).unwrap();
        assert_eq!((cache.counters().hits, cache.counters().misses), (2, 5));
        cache.remove("/f4");
        assert_eq!(cache.stats(), (1, 1000));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
