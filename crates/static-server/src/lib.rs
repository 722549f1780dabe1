//! An embeddable static-file HTTP server on `http-core`.
//!
//! Serves a directory with every caching and range rule of RFC 9110, no way out of
//! the root, and small files answered from memory with their headers pre-built.
//! [`StaticFiles::metrics`] counts what it does (durations, statuses, bytes,
//! connections, cache hits, misses and evictions) and serves the counts in the
//! Prometheus format on a listener of their own ([`Metrics::serve`]).
//!
//! ```no_run
//! use static_server::StaticFiles;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let files = StaticFiles::builder("static")
//!     .listing(true)
//!     .server_id("backend-9002")
//!     .build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let handle = files.spawn(listener)?;
//! let bound = handle.local_addr(); // the real port when bound to port 0
//! handle.wait().await?;
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod compress;
mod conditional;
mod encoding;
/// Entry points for the fuzz targets and their corpus replay; not a stable API.
#[doc(hidden)]
pub mod fuzzing;
mod listing;
mod metrics;
mod multipart;
mod path;
mod range;
mod resolve;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_core::{AccessRecord, Body, HeaderBlock, Method, Request, RequestHead, Response, Server, Service};
use tokio::net::TcpListener;

use cache::{Cache, Entry, Variant};
pub use compress::{CompressionLevel, COMPRESSIBLE_TYPES};
use conditional::{Fields, Precondition};
pub use encoding::{Coding, UnknownCoding};
pub use http_core::{Limits, ServerHandle};
pub use metrics::{CodingCounts, Metrics, MetricsSnapshot, DURATION_BUCKETS};
use path::PathError;
use range::RangeRequest;
pub use resolve::SymlinkPolicy;
use resolve::{Found, NotFound};

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The root directory cannot be opened.
    #[error("root directory {path}: {source}")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The root exists but is not a directory.
    #[error("root {0} is not a directory")]
    RootNotDirectory(PathBuf),
    /// An extra header has an invalid name or value.
    #[error("invalid extra header {0:?}")]
    BadHeader(String),
    /// A media type given to [`Builder::compress_type`] is not `type/subtype`.
    #[error("invalid media type {0:?} (expected type/subtype, type/* or type/*+suffix)")]
    BadMediaType(String),
}

/// Configures a [`StaticFiles`] server. Every setting has a default suitable for
/// serving a site to the internet.
#[derive(Debug, Clone)]
pub struct Builder {
    root: PathBuf,
    index: Vec<String>,
    listing: bool,
    symlinks: SymlinkPolicy,
    dotfiles: bool,
    precompressed: bool,
    cache_max_file: u64,
    cache_capacity: u64,
    headers: Vec<(String, String)>,
    server_id: Option<String>,
    limits: Limits,
    revalidate: Duration,
    max_connections: Option<usize>,
    shutdown_timeout: Duration,
    compression: Vec<Coding>,
    compression_level: CompressionLevel,
    compression_min_size: u64,
    compress_types: Vec<String>,
}

impl Builder {
    /// Index file names tried, in order, for a directory request. Default: `index.html`.
    pub fn index_files<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.index = names.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a directory without an index file gets an HTML listing. Default: off (404).
    pub fn listing(mut self, on: bool) -> Self {
        self.listing = on;
        self
    }

    /// What to do with symbolic links. Default: [`SymlinkPolicy::WithinRoot`].
    pub fn symlinks(mut self, policy: SymlinkPolicy) -> Self {
        self.symlinks = policy;
        self
    }

    /// Whether names starting with `.` are served. Default: off (404), except `/.well-known/`.
    pub fn dotfiles(mut self, on: bool) -> Self {
        self.dotfiles = on;
        self
    }

    /// Whether `FILE.zst` / `FILE.br` / `FILE.gz` are served to clients that
    /// accept them. Default: on. A sidecar wins over compressing on the fly.
    pub fn precompressed(mut self, on: bool) -> Self {
        self.precompressed = on;
        self
    }

    /// Codings to compress on the fly, in the server's order of preference (a
    /// tie between codings the client weighs the same goes to the earlier).
    /// Default: zstd, br, gzip. Empty: compression off (sidecars are still
    /// served). Files are compressed when their type is compressible
    /// ([`COMPRESSIBLE_TYPES`], [`compress_type`](Self::compress_type)) and
    /// they are at least [`compression_min_size`](Self::compression_min_size)
    /// long; a cached file is compressed once per coding and kept beside it,
    /// a larger one is compressed as it streams.
    ///
    /// ```
    /// use static_server::{Coding, CompressionLevel, StaticFiles};
    ///
    /// let files = StaticFiles::builder(std::env::temp_dir())
    ///     .compression([Coding::Brotli, Coding::Gzip])
    ///     .compression_level(CompressionLevel::Balanced)
    ///     .compression_min_size(1024)
    ///     .compress_type("application/x-ndjson")
    ///     .build()
    ///     .unwrap();
    /// # drop(files);
    /// ```
    pub fn compression(mut self, codings: impl IntoIterator<Item = Coding>) -> Self {
        self.compression.clear();
        for c in codings {
            if !self.compression.contains(&c) {
                self.compression.push(c);
            }
        }
        self
    }

    /// How hard to compress on the fly. Default: [`CompressionLevel::Fast`].
    pub fn compression_level(mut self, level: CompressionLevel) -> Self {
        self.compression_level = level;
        self
    }

    /// Files shorter than this are never compressed on the fly: the saving
    /// would not pay for the CPU, or even fill a packet. Default: 512 bytes.
    pub fn compression_min_size(mut self, bytes: u64) -> Self {
        self.compression_min_size = bytes;
        self
    }

    /// Adds a media type to compress on the fly besides
    /// [`COMPRESSIBLE_TYPES`]: `type/subtype`, `type/*` or `type/*+suffix`
    /// (repeatable). Checked by `build()` ([`Error::BadMediaType`]).
    pub fn compress_type(mut self, media_type: impl Into<String>) -> Self {
        self.compress_types.push(media_type.into());
        self
    }

    /// In-memory cache: files up to `max_file` bytes are kept in memory, up to
    /// `capacity` bytes in all. Default: 1 MiB and 64 MiB. `capacity` 0 disables it.
    /// Larger files stream from disk in 16 KiB reads, so a download costs about
    /// 64 KiB of memory whatever the file's size.
    pub fn cache(mut self, max_file: u64, capacity: u64) -> Self {
        self.cache_max_file = max_file;
        self.cache_capacity = capacity;
        self
    }

    /// How long a cached file is trusted before its size and modification time are
    /// checked again. Default: 1 s.
    pub fn revalidate_after(mut self, d: Duration) -> Self {
        self.revalidate = d;
        self
    }

    /// Adds a header to every response.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Names this instance: every response carries `X-Served-By: NAME` and
    /// `Server-Timing: served-by;desc="NAME"` (which a page's scripts can read).
    pub fn server_id(mut self, name: impl Into<String>) -> Self {
        self.server_id = Some(name.into());
        self
    }

    /// Connection limits used by [`StaticFiles::serve`] and [`StaticFiles::spawn`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Most connections served at once by [`StaticFiles::serve`] and
    /// [`StaticFiles::spawn`]. Default: what the open-file limit allows
    /// ([`http_core::connection_capacity`]`(1)`, at most 25 000).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n.max(1));
        self
    }

    /// How long requests in flight may take to finish once [`StaticFiles::serve`]'s
    /// shutdown future resolves (or [`http_core::ServerHandle::shutdown`] is
    /// called) before their connections are closed. Default: 10 s.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Checks the root and the headers and builds the server.
    pub fn build(self) -> Result<StaticFiles, Error> {
        let root = std::fs::canonicalize(&self.root).map_err(|source| Error::Root {
            path: self.root.clone(),
            source,
        })?;
        if !root.is_dir() {
            return Err(Error::RootNotDirectory(self.root));
        }
        let mut common = Vec::new();
        if let Some(id) = &self.server_id {
            common.push(("X-Served-By".to_owned(), id.clone()));
            // Scripts cannot read the headers of the page that loaded them, but they
            // can read Server-Timing entries: this lets a page name its backend.
            let quoted = id.replace('\\', "\\\\").replace('"', "\\\"");
            common.push(("Server-Timing".to_owned(), format!("served-by;desc=\"{quoted}\"")));
        }
        common.extend(self.headers.iter().cloned());
        let mut block = HeaderBlock::builder();
        for (n, v) in &common {
            if !block.push(n, v.as_bytes()) {
                return Err(Error::BadHeader(n.clone()));
            }
        }
        for t in &self.compress_types {
            let valid = t.trim().split_once('/').is_some_and(|(a, b)| {
                let token = |s: &str| !s.is_empty() && !s.contains(['/', ';', ',', ' ']);
                token(a) && token(b)
            });
            if !valid {
                return Err(Error::BadMediaType(t.clone()));
            }
        }
        let compression = compress::Settings::new(
            &self.compression,
            self.compression_level,
            self.compression_min_size,
            &self.compress_types,
        );
        Ok(StaticFiles {
            metrics_listener: false,
            inner: Arc::new(Inner {
                root,
                common_block: block.build(),
                common,
                cache: Cache::new(self.cache_max_file, self.cache_capacity, self.revalidate),
                compression,
                counters: metrics::Counters::default(),
                cfg: self,
            }),
        })
    }
}

/// A static-file service: plug it into [`http_core::Server`] or use
/// [`serve`](Self::serve) / [`spawn`](Self::spawn). Cheap to clone.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    inner: Arc<Inner>,
    /// Answers only `/metrics` (the metrics listener; see [`Metrics::serve`]).
    metrics_listener: bool,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    cfg: Builder,
    common: Vec<(String, String)>,
    common_block: HeaderBlock,
    cache: Cache,
    compression: compress::Settings,
    counters: metrics::Counters,
}

impl StaticFiles {
    /// A builder serving `root`.
    pub fn builder(root: impl AsRef<Path>) -> Builder {
        Builder {
            root: root.as_ref().to_path_buf(),
            index: vec!["index.html".to_owned()],
            listing: false,
            symlinks: SymlinkPolicy::WithinRoot,
            dotfiles: false,
            precompressed: true,
            cache_max_file: 1 << 20,
            cache_capacity: 64 << 20,
            headers: Vec::new(),
            server_id: None,
            limits: Limits::default(),
            revalidate: Duration::from_secs(1),
            max_connections: None,
            shutdown_timeout: Duration::from_secs(10),
            compression: Coding::ALL.to_vec(),
            compression_level: CompressionLevel::Fast,
            compression_min_size: 512,
            compress_types: Vec::new(),
        }
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The server's metrics: request durations, responses by status, body
    /// bytes, open connections, cache hits, misses and evictions. Serve them
    /// with [`Metrics::serve`] on a listener of their own.
    pub fn metrics(&self) -> Metrics {
        Metrics::new(self.inner.clone())
    }

    /// Serves `listener` until `shutdown` resolves, then drains gracefully.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.server().serve(listener, shutdown).await
    }

    /// Serves `listener` on a new task; the handle knows the bound address.
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<ServerHandle> {
        self.server().spawn(listener)
    }

    fn server(self) -> Server<StaticFiles> {
        let limits = self.inner.cfg.limits.clone();
        let max = self.inner.cfg.max_connections;
        let shutdown_timeout = self.inner.cfg.shutdown_timeout;
        let gauge = self.inner.counters.connections.clone();
        let server = Server::new(self)
            .limits(limits)
            .shutdown_timeout(shutdown_timeout)
            .connection_gauge(gauge);
        match max {
            Some(n) => server.max_connections(n),
            None => server,
        }
    }
}

impl Service for StaticFiles {
    async fn call(&self, req: Request<'_>) -> Response {
        if self.metrics_listener {
            return metrics::answer(&self.inner, req.head);
        }
        match self.inner.handle(req.head, req.received) {
            Answer::Ready(r) => r,
            // Boxed: the future of the common answer stays small.
            Answer::Compress(entry, c) => Box::pin(self.inner.compress_and_respond(req.head, entry, c)).await,
        }
    }

    fn on_response(&self, record: &AccessRecord<'_>) {
        if !self.metrics_listener {
            self.inner.counters.responses.record(record);
        }
    }
}

const ALLOW: &str = "GET, HEAD, OPTIONS";

/// What `Inner::handle` decided: an answer, or a file to compress first (the
/// first request for a coding of a file held in memory).
enum Answer {
    Ready(Response),
    Compress(Arc<Entry>, Coding),
}

impl From<Response> for Answer {
    fn from(r: Response) -> Self {
        Answer::Ready(r)
    }
}

impl Inner {
    fn handle(&self, head: &RequestHead, now: std::time::Instant) -> Answer {
        match head.method() {
            Method::Get | Method::Head => {}
            Method::Options => {
                return Response::new(204)
                    .header("Allow", ALLOW)
                    .header_block(self.common_block.clone())
                    .into();
            }
            _ => {
                return self
                    .text(405, "method not allowed\n")
                    .header("Allow", ALLOW)
                    .into();
            }
        }
        let raw = head.path();
        if let Some(entry) = self.cache.get_fresh(raw, now) {
            return self.respond(head, entry);
        }
        let safe = match path::sanitize(raw, self.cfg.dotfiles) {
            Ok(p) => p,
            Err(PathError::BadRequest) => return self.text(400, "bad request path\n").into(),
            Err(PathError::Hidden) => return self.not_found().into(),
        };
        let segs = resolve::segments(&safe);
        let found = match resolve::find(&self.root, &segs, self.cfg.symlinks, self.cfg.dotfiles) {
            Ok(f) => f,
            Err(e) => {
                // A cached file that is gone must not keep its memory.
                self.cache.remove(raw);
                return self.not_found_error(e).into();
            }
        };
        match found {
            Found::File { path, meta } => {
                if safe.trailing_slash {
                    // `/file.html/` names no directory.
                    return self.not_found().into();
                }
                self.serve_file(head, raw, &segs, path, meta)
            }
            Found::Dir { .. } if !safe.trailing_slash => {
                let mut location = safe.to_url_path(true);
                if let Some(q) = head.query() {
                    location.push('?');
                    location.push_str(q);
                }
                self.text(301, "moved permanently\n")
                    .header("Location", location)
                    .into()
            }
            Found::Dir { path } => {
                for index in &self.cfg.index {
                    let mut with_index = segs.clone();
                    with_index.push(index);
                    if let Ok(Found::File { path, meta }) =
                        resolve::find(&self.root, &with_index, self.cfg.symlinks, self.cfg.dotfiles)
                    {
                        return self.serve_file(head, raw, &with_index, path, meta);
                    }
                }
                if self.cfg.listing {
                    match listing::render(&path, &safe.to_url_path(true), self.cfg.dotfiles) {
                        Ok(html) => Response::new(200)
                            .header("Content-Type", "text/html; charset=utf-8")
                            .header("Cache-Control", "no-cache")
                            .header("X-Content-Type-Options", "nosniff")
                            .header_block(self.common_block.clone())
                            .body(html)
                            .into(),
                        Err(e) => self.not_found_error(e.into()).into(),
                    }
                } else {
                    self.not_found().into()
                }
            }
        }
    }

    /// Loads (or revalidates) the entry for a file and answers from it.
    fn serve_file(
        &self,
        head: &RequestHead,
        key: &str,
        segs: &[&str],
        path: PathBuf,
        meta: std::fs::Metadata,
    ) -> Answer {
        let mut sidecars = Vec::new();
        if self.cfg.precompressed {
            for coding in Coding::ALL {
                let mut side = segs.to_vec();
                let last = format!("{}{}", segs.last().copied().unwrap_or_default(), coding.suffix());
                side.pop();
                side.push(&last);
                if let Ok(Found::File { path, meta }) =
                    resolve::find(&self.root, &side, self.cfg.symlinks, self.cfg.dotfiles)
                {
                    sidecars.push((coding, path, meta));
                }
            }
        }
        let entry = self
            .cache
            .load(key, path, meta, sidecars, &self.common, &self.compression);
        match entry {
            Ok(entry) => self.respond(head, entry),
            Err(e) => self.not_found_error(e.into()).into(),
        }
    }

    /// Picks the representation (RFC 9110 §12.5.3) and answers with it; for a
    /// client that sends no `Accept-Encoding`, or a file whose answers never
    /// vary, this costs one branch over answering identity.
    fn respond(&self, head: &RequestHead, entry: Arc<Entry>) -> Answer {
        let fields = Fields::of(head);
        let codings = entry.codings();
        if codings == 0 {
            return self.send(head, &fields, &entry.identity, false).into();
        }
        let Some(c) = encoding::choose(fields.accept_encoding, codings, &self.compression.preference) else {
            return self.send(head, &fields, &entry.identity, true).into();
        };
        // A sidecar wins over compressing on the fly.
        if let Some(v) = entry.sidecar(c) {
            self.counters.compression.answered(c);
            return self.send(head, &fields, v, true).into();
        }
        if entry.identity.body.is_none() {
            return self.send_stream(head, &fields, &entry, c).into();
        }
        match entry.encoded(c).get() {
            Some(Some(v)) => {
                self.counters.compression.answered(c);
                self.send(head, &fields, v, true).into()
            }
            // Compressed, it was no smaller.
            Some(None) => self.send(head, &fields, &entry.identity, true).into(),
            None => Answer::Compress(entry, c),
        }
    }

    /// The first request for coding `c` of a file held in memory: compresses it
    /// off the async workers (a large file at a high level takes a while), once
    /// however many requests ask at the same time, keeps the result beside the
    /// file in the cache, and answers from it.
    async fn compress_and_respond(&self, head: &RequestHead, entry: Arc<Entry>, c: Coding) -> Response {
        let fields = Fields::of(head);
        let level = self.compression.level;
        let made = entry
            .encoded(c)
            .get_or_init(|| async {
                let data = entry.identity.body.clone()?;
                let started = std::time::Instant::now();
                let packed = tokio::task::spawn_blocking(move || compress::compress(c, level, &data)).await;
                let packed = match packed {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => {
                        tracing::warn!(path = %entry.identity.path.display(), error = %e, coding = %c, "compression failed");
                        return None;
                    }
                    Err(e) => {
                        tracing::warn!(path = %entry.identity.path.display(), error = %e, coding = %c, "compression task failed");
                        return None;
                    }
                };
                self.counters.compression.record(c, entry.identity.len, packed.len() as u64, started.elapsed());
                if packed.len() as u64 >= entry.identity.len {
                    return None;
                }
                let v = cache::encoded_variant(&entry.identity, c, level.of(c), packed, &self.common);
                self.cache.add_encoded(head.path(), &entry, v.memory());
                Some(v)
            })
            .await;
        match made {
            Some(v) => {
                self.counters.compression.answered(c);
                self.send(head, &fields, v, true)
            }
            None => self.send(head, &fields, &entry.identity, true),
        }
    }

    /// Answers with one representation held in memory or on disk, under the
    /// request's preconditions and ranges. `varies`: the answer depends on
    /// `Accept-Encoding` (its errors say so too).
    fn send(&self, head: &RequestHead, fields: &Fields<'_>, variant: &Variant, varies: bool) -> Response {
        match conditional::evaluate(fields, &variant.etag, variant.modified) {
            Precondition::Proceed => {}
            Precondition::NotModified => return Response::new(304).header_block(variant.block.clone()),
            Precondition::Failed => return self.vary(self.text(412, "precondition failed\n"), varies),
        }
        if let Some(r) = fields.range {
            if conditional::if_range_allows(fields, &variant.etag, variant.modified) {
                match range::parse(r, variant.len) {
                    RangeRequest::Full => {}
                    RangeRequest::Unsatisfiable => {
                        let refused = self
                            .text(416, "range not satisfiable\n")
                            .header("Content-Range", format!("bytes */{}", variant.len));
                        return self.vary(refused, varies);
                    }
                    RangeRequest::Ranges(ranges) => return self.partial(head, variant, ranges),
                }
            }
        }
        Response::new(200)
            .header_block(variant.block.clone())
            .body(self.body(head, variant, 0, variant.len))
    }

    /// Answers with a file too large to keep in memory, compressed by `c` as it
    /// is sent: chunked (its length is unknown until the end), and `Range` is
    /// ignored (the whole representation, 200), as nginx does for gzip.
    fn send_stream(&self, head: &RequestHead, fields: &Fields<'_>, entry: &Entry, c: Coding) -> Response {
        let Some(s) = entry.streamed(c) else {
            return self.send(head, fields, &entry.identity, true);
        };
        self.counters.compression.answered(c);
        let modified = entry.identity.modified;
        match conditional::evaluate(fields, &s.etag, modified) {
            Precondition::Proceed => {}
            Precondition::NotModified => return Response::new(304).header_block(s.block.clone()),
            Precondition::Failed => return self.vary(self.text(412, "precondition failed\n"), true),
        }
        let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if head.method() == Method::Head {
            Box::new(tokio::io::empty())
        } else {
            match cache::open_at(&entry.identity.path, 0) {
                Ok(file) => {
                    let file = compress::Exact::new(tokio::fs::File::from_std(file), entry.identity.len);
                    compress::stream(c, self.compression.level, file)
                }
                Err(e) => {
                    // Nothing is sent yet: say so rather than send an empty stream.
                    tracing::warn!(path = %entry.identity.path.display(), error = %e, "file vanished");
                    return self.not_found();
                }
            }
        };
        Response::new(200)
            .header_block(s.block.clone())
            .body(Body::Stream { len: None, reader })
    }

    /// Adds `Vary: Accept-Encoding` to an error answer about a file whose
    /// answers vary.
    fn vary(&self, r: Response, varies: bool) -> Response {
        if varies {
            r.header("Vary", "Accept-Encoding")
        } else {
            r
        }
    }

    fn partial(&self, head: &RequestHead, v: &Variant, ranges: Vec<(u64, u64)>) -> Response {
        if let [(s, e)] = ranges[..] {
            return Response::new(206)
                .header_block(v.block.clone())
                .header("Content-Range", format!("bytes {s}-{e}/{}", v.len))
                .body(self.body(head, v, s, e - s + 1));
        }
        let boundary = multipart::boundary();
        let body = match &v.body {
            Some(data) => multipart::from_memory(&ranges, data, &v.content_type, &boundary),
            None => multipart::from_file(ranges, v.path.clone(), v.len, &v.content_type, &boundary),
        };
        Response::new(206)
            .header_block(v.block_without_type.clone())
            .header(
                "Content-Type",
                format!("multipart/byteranges; boundary={boundary}"),
            )
            .body(body)
    }

    /// `len` bytes of a variant from `start`: a slice of memory, or a file stream.
    fn body(&self, head: &RequestHead, v: &Variant, start: u64, len: u64) -> Body {
        if let Some(data) = &v.body {
            return Body::Full(data.slice(start as usize..(start + len) as usize));
        }
        if head.method() == Method::Head {
            return Body::Length(len);
        }
        match cache::open_at(&v.path, start) {
            Ok(file) => {
                use tokio::io::AsyncReadExt;
                Body::Stream {
                    len: Some(len),
                    reader: Box::new(tokio::fs::File::from_std(file).take(len)),
                }
            }
            Err(e) => {
                // Vanished between stat and open: the driver sees a short body and
                // aborts the connection rather than send wrong bytes.
                tracing::warn!(path = %v.path.display(), error = %e, "file vanished");
                Body::Stream {
                    len: Some(len),
                    reader: Box::new(tokio::io::empty()),
                }
            }
        }
    }

    fn text(&self, status: u16, msg: &'static str) -> Response {
        Response::text(status, msg).header_block(self.common_block.clone())
    }

    fn not_found(&self) -> Response {
        self.text(404, "not found\n")
    }

    fn not_found_error(&self, e: NotFound) -> Response {
        match e {
            NotFound::Absent => self.not_found(),
            NotFound::Forbidden => self.text(403, "forbidden\n"),
            NotFound::Io(e) => {
                tracing::error!(error = %e, "file system error");
                self.text(500, "internal error\n")
            }
        }
    }
}
