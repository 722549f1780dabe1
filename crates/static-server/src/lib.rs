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

use http_core::{
    AccessRecord, Body, HeaderBlock, Method, Request, RequestHead, Response, Server, Service, TlsConfig,
};
use tokio::net::TcpListener;

use cache::{Cache, Entry, Variant};
use conditional::Precondition;
use encoding::Coding;
pub use http_core::{Limits, ServerHandle};
pub use metrics::{Metrics, MetricsSnapshot, DURATION_BUCKETS};
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
    tls: Option<TlsConfig>,
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

    /// Whether `FILE.br` / `FILE.gz` are served to clients that accept them. Default: on.
    pub fn precompressed(mut self, on: bool) -> Self {
        self.precompressed = on;
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

    /// Serves HTTPS with these certificates instead of plain HTTP
    /// ([`http_core::Server::tls`]); their handshake counts join the metrics.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
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
        Ok(StaticFiles {
            role: Role::Files,
            inner: Arc::new(Inner {
                root,
                common_block: block.build(),
                common,
                cache: Cache::new(self.cache_max_file, self.cache_capacity, self.revalidate),
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
    /// What this copy answers: files, or, on a listener of its own, metrics
    /// or redirects to HTTPS.
    role: Role,
}

/// What a [`StaticFiles`] answers. The metrics and redirect listeners run the
/// file server's own service type in another role: a second service type
/// would compile http-core's connection driver a second time, after which
/// the compiler no longer inlines the request parser into the file server's
/// (230 instructions a request, callgrind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Files,
    /// `/metrics` only (see [`Metrics::serve`]).
    Metrics,
    /// Every request: `308` to the same URL over HTTPS on this port.
    RedirectToHttps(u16),
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    cfg: Builder,
    common: Vec<(String, String)>,
    common_block: HeaderBlock,
    cache: Cache,
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
            tls: None,
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
        let tls = self.inner.cfg.tls.clone();
        let mut server = Server::new(self)
            .limits(limits)
            .shutdown_timeout(shutdown_timeout)
            .connection_gauge(gauge);
        if let Some(tls) = tls {
            server = server.tls(tls);
        }
        match max {
            Some(n) => server.max_connections(n),
            None => server,
        }
    }

    /// The certificates when serving HTTPS ([`Builder::tls`]).
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.inner.cfg.tls.as_ref()
    }

    /// Serves plain HTTP on `listener` answering every request with `308` to
    /// the same URL over HTTPS on `https_port`
    /// ([`http_core::https_redirect`]), with the file server's limits, until
    /// `shutdown` resolves.
    pub async fn serve_https_redirect(
        &self,
        listener: TcpListener,
        https_port: u16,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let role = StaticFiles {
            inner: self.inner.clone(),
            role: Role::RedirectToHttps(https_port),
        };
        let mut server = Server::new(role)
            .limits(self.inner.cfg.limits.clone())
            .shutdown_timeout(self.inner.cfg.shutdown_timeout);
        if let Some(n) = self.inner.cfg.max_connections {
            server = server.max_connections(n);
        }
        server.serve(listener, shutdown).await
    }
}

impl Service for StaticFiles {
    async fn call(&self, req: Request<'_>) -> Response {
        if self.role != Role::Files {
            return self.answer_other_role(req.head);
        }
        self.inner.handle(req.head, req.received)
    }

    fn on_response(&self, record: &AccessRecord<'_>) {
        if self.role == Role::Files {
            self.inner.counters.responses.record(record);
        }
    }
}

impl StaticFiles {
    /// The metrics or redirect listener's answer, out of line: inlined, it
    /// would swell the file server's request path.
    #[cold]
    #[inline(never)]
    fn answer_other_role(&self, head: &RequestHead) -> Response {
        match self.role {
            Role::RedirectToHttps(port) => http_core::https_redirect(head, port),
            _ => metrics::answer(&self.inner, head),
        }
    }
}

const ALLOW: &str = "GET, HEAD, OPTIONS";

impl Inner {
    fn handle(&self, head: &RequestHead, now: std::time::Instant) -> Response {
        match head.method() {
            Method::Get | Method::Head => {}
            Method::Options => {
                return Response::new(204)
                    .header("Allow", ALLOW)
                    .header_block(self.common_block.clone());
            }
            _ => {
                return self.text(405, "method not allowed\n").header("Allow", ALLOW);
            }
        }
        let raw = head.path();
        if let Some(entry) = self.cache.get_fresh(raw, now) {
            return self.respond(head, &entry);
        }
        let safe = match path::sanitize(raw, self.cfg.dotfiles) {
            Ok(p) => p,
            Err(PathError::BadRequest) => return self.text(400, "bad request path\n"),
            Err(PathError::Hidden) => return self.not_found(),
        };
        let segs = resolve::segments(&safe);
        let found = match resolve::find(&self.root, &segs, self.cfg.symlinks, self.cfg.dotfiles) {
            Ok(f) => f,
            Err(e) => {
                // A cached file that is gone must not keep its memory.
                self.cache.remove(raw);
                return self.not_found_error(e);
            }
        };
        match found {
            Found::File { path, meta } => {
                if safe.trailing_slash {
                    // `/file.html/` names no directory.
                    return self.not_found();
                }
                self.serve_file(head, raw, &segs, path, meta)
            }
            Found::Dir { .. } if !safe.trailing_slash => {
                let mut location = safe.to_url_path(true);
                if let Some(q) = head.query() {
                    location.push('?');
                    location.push_str(q);
                }
                self.text(301, "moved permanently\n").header("Location", location)
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
                            .body(html),
                        Err(e) => self.not_found_error(e.into()),
                    }
                } else {
                    self.not_found()
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
    ) -> Response {
        let mut sidecars = Vec::new();
        if self.cfg.precompressed {
            for coding in [Coding::Brotli, Coding::Gzip] {
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
        let entry = self.cache.load(key, path, meta, sidecars, &self.common);
        match entry {
            Ok(entry) => self.respond(head, &entry),
            Err(e) => self.not_found_error(e.into()),
        }
    }

    fn respond(&self, head: &RequestHead, entry: &Entry) -> Response {
        let variant = match entry.codings() {
            [] => &entry.identity,
            available => match encoding::choose(head.header("accept-encoding"), available) {
                Some(c) => entry.variant(c),
                None => &entry.identity,
            },
        };
        match conditional::evaluate(head, &variant.etag, variant.modified) {
            Precondition::Proceed => {}
            Precondition::NotModified => return Response::new(304).header_block(variant.block.clone()),
            Precondition::Failed => return self.text(412, "precondition failed\n"),
        }
        if let Some(r) = head.header("range") {
            if conditional::if_range_allows(head, &variant.etag, variant.modified) {
                match range::parse(r, variant.len) {
                    RangeRequest::Full => {}
                    RangeRequest::Unsatisfiable => {
                        return self
                            .text(416, "range not satisfiable\n")
                            .header("Content-Range", format!("bytes */{}", variant.len));
                    }
                    RangeRequest::Ranges(ranges) => return self.partial(head, variant, ranges),
                }
            }
        }
        Response::new(200)
            .header_block(variant.block.clone())
            .body(self.body(head, variant, 0, variant.len))
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
