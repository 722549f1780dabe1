//! An embeddable static-file HTTP server on `http-core`.
//!
//! Serves a directory with every caching and range rule of RFC 9110, no way out of
//! the root, and small files answered from memory with their headers pre-built.
//! Per-path header rules ([`HeaderRule`]), a single-page-app fallback, error
//! pages and sortable HTML or JSON directory listings are options of the
//! [`Builder`].
//! [`StaticFiles::metrics`] counts what it does (durations, statuses, bytes,
//! connections, cache hits, misses and evictions) and serves the counts in the
//! Prometheus format on a listener of their own ([`Metrics::serve`]).
//! [`config`] reads a TOML configuration file with sites by host name;
//! [`StaticFiles::from_sites`] serves them and [`StaticFiles::reload`] swaps
//! them while serving.
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
pub mod config;
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
mod rules;
mod sites;

use std::borrow::Cow;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_core::{
    AccessRecord, Body, HeaderBlock, Method, Request, RequestHead, Response, Server, Service, TlsConfig,
};
use tokio::net::TcpListener;

use cache::{Cache, Entry, Variant};
pub use compress::{CompressionLevel, COMPRESSIBLE_TYPES};
use conditional::{Fields, Precondition};
pub use encoding::{Coding, UnknownCoding};
pub use http_core::{Limits, ServerHandle};
pub use metrics::{CodingCounts, Metrics, MetricsSnapshot, DURATION_BUCKETS};
use path::{PathError, SafePath};
use range::RangeRequest;
pub use resolve::SymlinkPolicy;
use resolve::{Found, NotFound};
pub use rules::{HeaderRule, RuleError};
pub use sites::{ReloadCounts, ReloadError};

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
    /// A header rule cannot be used.
    #[error(transparent)]
    HeaderRule(#[from] RuleError),
    /// The fallback file cannot be served.
    #[error("fallback file {file} (a path under the root): {reason}")]
    Fallback {
        /// The file as given.
        file: PathBuf,
        /// What is wrong with it.
        reason: PageError,
    },
    /// An error page cannot be served.
    #[error("error page {status} file {file} (a path under the root): {reason}")]
    ErrorPage {
        /// The status it was given for.
        status: u16,
        /// The file as given.
        file: PathBuf,
        /// What is wrong with it.
        reason: PageError,
    },
    /// An error page was given for a status outside 400–599.
    #[error("error page status {0}: must be 400-599")]
    ErrorPageStatus(u16),
    /// [`StaticFiles::from_sites`] was given a set with no site.
    #[error("no site to serve")]
    NoSites,
}

/// Why a fallback file or an error page cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// Not a plain path under the root: `..`, a backslash, a control character,
    /// a drive prefix, not UTF-8, or no file name.
    #[error("not a plain relative path (no `..`, backslash, control characters or trailing `/`)")]
    Invalid,
    /// It is, or passes through, a dot name: such files are never served this way.
    #[error("a dot name (hidden files are never served as pages)")]
    Hidden,
    /// No such file under the root (or a link that leads outside it).
    #[error("no such file under the root")]
    Absent,
    /// A directory, or something else that is not a regular file.
    #[error("not a regular file")]
    NotAFile,
    /// The OS refused access.
    #[error("permission denied")]
    Forbidden,
    /// Any other I/O failure.
    #[error("{0}")]
    Io(std::io::Error),
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
    header_rules: Vec<HeaderRule>,
    fallback: Option<PathBuf>,
    fallback_extensions: Vec<String>,
    error_pages: Vec<(u16, PathBuf)>,
    compression: Vec<Coding>,
    compression_level: CompressionLevel,
    compression_min_size: u64,
    compress_types: Vec<String>,
    tls: Option<TlsConfig>,
    h2c: bool,
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

    /// Adds a header rule: its header goes on every answer (200, 206, 304) for
    /// the files its globs match (see [`HeaderRule`] for the glob forms). Rules
    /// apply in the order added, a later one replacing an earlier one's header
    /// of the same name, and replace an extra header ([`header`](Self::header))
    /// of that name too. They match the path of the file actually served: the
    /// index file for a directory, the fallback file for a fallback answer.
    /// Listings and error answers (including error pages) do not get them.
    /// Rules are built into the cached header blocks: a cache hit costs the
    /// same with or without them. Default: none.
    ///
    /// ```
    /// use static_server::{HeaderRule, StaticFiles};
    /// # fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let files = StaticFiles::builder("static")
    ///     .header_rule("*.css,*.js: Cache-Control: public, max-age=31536000, immutable".parse()?)
    ///     .header_rule(HeaderRule::new("*.html", "Cache-Control", "no-cache")?)
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn header_rule(mut self, rule: HeaderRule) -> Self {
        self.header_rules.push(rule);
        self
    }

    /// A file under the root (`index.html`) answered with 200, as a
    /// single-page app needs, to `GET` and `HEAD` requests for paths that name
    /// nothing and look like app routes: the last segment has no extension
    /// (`/users/42`), or one of [`fallback_extensions`](Self::fallback_extensions).
    /// Only absent paths fall back: not refused ones (400), hidden ones (404),
    /// unreadable ones (403), directories or `/file/`. The file is served as
    /// itself (validators, ranges, conditional requests, precompressed
    /// sidecars, header rules), with `Cache-Control: no-cache` unless a header
    /// or a rule sets `Cache-Control` for it. It must exist under the root and
    /// not be a dot name, or [`build`](Self::build) fails; if it is gone later,
    /// such paths get 404. Default: none.
    ///
    /// ```
    /// use static_server::StaticFiles;
    /// # fn f() -> Result<(), static_server::Error> {
    /// let files = StaticFiles::builder("static").fallback("page.html").build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn fallback(mut self, file: impl AsRef<Path>) -> Self {
        self.fallback = Some(file.as_ref().to_path_buf());
        self
    }

    /// Extensions (without the dot, compared case-insensitively) of absent
    /// paths that still get the [`fallback`](Self::fallback), for routes such
    /// as `/about.html`. Default: none (only names without an extension).
    pub fn fallback_extensions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, exts: I) -> Self {
        self.fallback_extensions = exts
            .into_iter()
            .map(|e| e.into().trim_start_matches('.').to_owned())
            .collect();
        self
    }

    /// Serves `file` (a path under the root, `errors/404.html`) as the body of
    /// the answers with `status` (400–599) this server gives: 404 (absent and
    /// hidden paths), 403, 400 (refused paths), 405, 412, 416 and 500, with
    /// their status and their other headers (`Allow`, `Content-Range`). The
    /// page has the file's `Content-Type` and no validators or ranges. It is
    /// read through the cache, so edits show after the revalidation interval;
    /// if it is gone, the short text answer is sent. Errors the connection
    /// driver gives before a request reaches the files (malformed requests,
    /// 408, 413, 414, 431, 505) keep their text bodies. The same status given
    /// twice: the last one counts. A file that does not exist or is a dot name
    /// fails [`build`](Self::build). Default: none.
    ///
    /// ```
    /// use static_server::StaticFiles;
    /// # fn f() -> Result<(), static_server::Error> {
    /// let files = StaticFiles::builder("static").error_page(404, "page.html").build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn error_page(mut self, status: u16, file: impl AsRef<Path>) -> Self {
        self.error_pages.retain(|(s, _)| *s != status);
        self.error_pages.push((status, file.as_ref().to_path_buf()));
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

    /// Also serves HTTP/2 with prior knowledge (h2c) on a plain listener
    /// ([`http_core::Server::h2c`]). Over TLS, HTTP/2 is chosen by ALPN
    /// whatever this says. Default: off.
    pub fn h2c(mut self, on: bool) -> Self {
        self.h2c = on;
        self
    }

    /// Checks the root and the headers and builds the server.
    pub fn build(self) -> Result<StaticFiles, Error> {
        Ok(StaticFiles {
            role: Role::Files,
            inner: Arc::new(self.build_inner()?),
        })
    }

    fn build_inner(self) -> Result<Inner, Error> {
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
        let rules = rules::Rules::new(&self.header_rules)?;
        let fallback = match &self.fallback {
            Some(file) => {
                Some(
                    Page::resolve(&root, file, self.symlinks).map_err(|reason| Error::Fallback {
                        file: file.clone(),
                        reason,
                    })?,
                )
            }
            None => None,
        };
        let mut pages = Vec::new();
        for (status, file) in &self.error_pages {
            if !(400..=599).contains(status) {
                return Err(Error::ErrorPageStatus(*status));
            }
            let page = Page::resolve(&root, file, self.symlinks).map_err(|reason| Error::ErrorPage {
                status: *status,
                file: file.clone(),
                reason,
            })?;
            pages.push((*status, page));
        }
        let listing_cache_control = !common
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("cache-control"));
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
        Ok(Inner {
            root,
            common_block: block.build(),
            common,
            rules,
            fallback,
            pages,
            listing_cache_control,
            cache: Cache::new(self.cache_max_file, self.cache_capacity, self.revalidate),
            compression,
            counters: metrics::Counters::default(),
            sites: None,
            cfg: self,
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
    /// Every request goes to the site its `Host` names ([`config::SiteSet`]),
    /// the set swapped by [`StaticFiles::reload`].
    Sites,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    cfg: Builder,
    common: Vec<(String, String)>,
    common_block: HeaderBlock,
    rules: rules::Rules,
    fallback: Option<Page>,
    /// Error pages by status.
    pages: Vec<(u16, Page)>,
    /// Listings carry `Cache-Control: no-cache` unless an extra header sets one.
    listing_cache_control: bool,
    cache: Cache,
    compression: compress::Settings,
    counters: metrics::Counters,
    /// The sites served by host name, with [`Role::Sites`].
    sites: Option<sites::Switch>,
}

/// A file named in the configuration (the fallback, an error page), checked
/// at build time; looked up again (through the cache) whenever it is served.
#[derive(Debug)]
struct Page {
    segs: Vec<String>,
    /// Its cache key: its path from the root, as a request for it would be.
    key: String,
    /// Where it was found at build time.
    path: PathBuf,
}

impl Page {
    fn resolve(root: &Path, file: &Path, symlinks: SymlinkPolicy) -> Result<Page, PageError> {
        let text = file.to_str().ok_or(PageError::Invalid)?;
        let segs = path::check_configured(text).map_err(|e| match e {
            PathError::Hidden => PageError::Hidden,
            PathError::BadRequest => PageError::Invalid,
        })?;
        let path = match resolve::find(root, &str_segs(&segs), symlinks, false) {
            Ok(Found::File { path, .. }) => path,
            Ok(Found::Dir { .. }) => return Err(PageError::NotAFile),
            Err(NotFound::Absent) => return Err(PageError::Absent),
            Err(NotFound::Forbidden) => return Err(PageError::Forbidden),
            Err(NotFound::Io(e)) => return Err(PageError::Io(e)),
        };
        Ok(Page {
            key: format!("/{}", segs.join("/")),
            segs,
            path,
        })
    }
}

fn str_segs(segs: &[String]) -> Vec<&str> {
    segs.iter().map(String::as_str).collect()
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
            header_rules: Vec::new(),
            fallback: None,
            fallback_extensions: Vec::new(),
            error_pages: Vec::new(),
            compression: Coding::ALL.to_vec(),
            compression_level: CompressionLevel::Fast,
            compression_min_size: 512,
            compress_types: Vec::new(),
            tls: None,
            h2c: false,
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
        let h2c = self.inner.cfg.h2c;
        let mut server = Server::new(self)
            .h2c(h2c)
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
            if self.role == Role::Sites {
                return self.call_site(req).await;
            }
            return self.answer_other_role(req.head);
        }
        match self.inner.handle(req.head, req.received) {
            Answer::Ready(r) => r,
            // Boxed: the future of the common answer stays small.
            Answer::Compress(entry, c) => Box::pin(self.inner.compress_and_respond(req.head, entry, c)).await,
        }
    }

    fn on_response(&self, record: &AccessRecord<'_>) {
        if matches!(self.role, Role::Files | Role::Sites) {
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
                    .error(head, 405, "method not allowed\n")
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
            Err(PathError::BadRequest) => return self.error(head, 400, "bad request path\n").into(),
            Err(PathError::Hidden) => return self.not_found(head).into(),
        };
        let segs = resolve::segments(&safe);
        let found = match resolve::find(&self.root, &segs, self.cfg.symlinks, self.cfg.dotfiles) {
            Ok(f) => f,
            Err(e) => {
                // A cached file that is gone must not keep its memory.
                self.cache.remove(raw);
                if matches!(e, NotFound::Absent) {
                    if let Some(r) = self.fallback(head, &safe, now) {
                        return r;
                    }
                }
                return self.not_found_error(head, e).into();
            }
        };
        match found {
            Found::File { path, meta } => {
                if safe.trailing_slash {
                    // `/file.html/` names no directory.
                    return self.not_found(head).into();
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
                    self.listing(head, &path, &safe).into()
                } else {
                    self.not_found(head).into()
                }
            }
        }
    }

    /// The listing of the directory at `path`, as HTML or JSON (see `listing::View`).
    fn listing(&self, head: &RequestHead, path: &Path, safe: &SafePath) -> Response {
        let view = listing::View::of(head.query(), head.header("accept"));
        let found = match listing::read(path, self.cfg.dotfiles, &view, listing::MAX_ROWS) {
            Ok(l) => l,
            Err(e) => return self.not_found_error(head, e.into()),
        };
        let (content_type, body) = if view.json {
            ("application/json", listing::json(&found))
        } else {
            (
                "text/html; charset=utf-8",
                listing::html(&found, &safe.to_url_path(true), &view),
            )
        };
        let mut r = Response::new(200)
            .header("Content-Type", content_type)
            .header("Vary", "Accept")
            .header("X-Content-Type-Options", "nosniff");
        if self.listing_cache_control {
            r = r.header("Cache-Control", "no-cache");
        }
        if found.omitted > 0 {
            r = r.header("X-Listing-Omitted", found.omitted.to_string());
        }
        r.header_block(self.common_block.clone()).body(body)
    }

    /// Whether an absent path whose last segment is `last` gets the fallback:
    /// no extension, or one of the configured ones. Dot names never do.
    fn wants_fallback(&self, last: &str) -> bool {
        match last.rsplit_once('.') {
            None => true,
            Some(("", _)) => false,
            Some((_, ext)) => self
                .cfg
                .fallback_extensions
                .iter()
                .any(|e| e.eq_ignore_ascii_case(ext)),
        }
    }

    /// The fallback file's answer to an absent `safe` path, if it gets one.
    fn fallback(&self, head: &RequestHead, safe: &SafePath, now: Instant) -> Option<Answer> {
        let page = self.fallback.as_ref()?;
        if !self.wants_fallback(safe.segments.last()?) {
            return None;
        }
        if let Some(entry) = self.cache.get_fresh(&page.key, now) {
            return Some(self.respond(head, entry));
        }
        let segs = str_segs(&page.segs);
        match resolve::find(&self.root, &segs, self.cfg.symlinks, false) {
            Ok(Found::File { path, meta }) => Some(self.serve_file(head, &page.key, &segs, path, meta)),
            _ => {
                self.cache.remove(&page.key);
                None
            }
        }
    }

    /// The error page for `status`, if one is configured and can be read.
    fn page(&self, head: &RequestHead, status: u16) -> Option<Response> {
        let (_, page) = self.pages.iter().find(|(s, _)| *s == status)?;
        let entry = match self.cache.get_fresh(&page.key, Instant::now()) {
            Some(e) => e,
            None => {
                let segs = str_segs(&page.segs);
                match resolve::find(&self.root, &segs, self.cfg.symlinks, false) {
                    Ok(Found::File { path, meta }) => match self.load(&page.key, &segs, path, meta) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::warn!(status, page = %page.key, error = %e, "error page unreadable");
                            return None;
                        }
                    },
                    _ => {
                        self.cache.remove(&page.key);
                        tracing::warn!(status, page = %page.key, "error page gone; answering with text");
                        return None;
                    }
                }
            }
        };
        // The file's type and body under the error's status: no validators or
        // ranges, which describe the page, not the resource asked for.
        let v = &entry.identity;
        Some(
            Response::new(status)
                .header("Content-Type", v.content_type.clone())
                .header("X-Content-Type-Options", "nosniff")
                .header_block(self.common_block.clone())
                .body(self.body(head, v, 0, v.len)),
        )
    }

    /// The extra headers for the file at `segs` (found at `path`): the common
    /// ones with the matching header rules applied, and `Cache-Control:
    /// no-cache` on the fallback file unless something sets Cache-Control.
    fn file_headers(&self, segs: &[&str], path: &Path) -> Cow<'_, [(String, String)]> {
        let mut headers = self.rules.apply(segs, &self.common);
        if let Some(fb) = &self.fallback {
            if fb.path == path
                && !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
            {
                headers
                    .to_mut()
                    .push(("Cache-Control".to_owned(), "no-cache".to_owned()));
            }
        }
        headers
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
        match self.load(key, segs, path, meta) {
            Ok(entry) => self.respond(head, entry),
            Err(e) => self.not_found_error(head, e.into()).into(),
        }
    }

    /// The cache entry for a file (with its sidecars), loaded or revalidated.
    fn load(
        &self,
        key: &str,
        segs: &[&str],
        path: PathBuf,
        meta: std::fs::Metadata,
    ) -> std::io::Result<Arc<Entry>> {
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
        let headers = self.file_headers(segs, &path);
        self.cache
            .load(key, path, meta, sidecars, &headers, &self.compression)
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
                let v = cache::encoded_variant(&entry.identity, c, level.of(c), packed, &entry.headers);
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
            Precondition::Failed => return self.vary(self.error(head, 412, "precondition failed\n"), varies),
        }
        if let Some(r) = fields.range {
            if conditional::if_range_allows(fields, &variant.etag, variant.modified) {
                match range::parse(r, variant.len) {
                    RangeRequest::Full => {}
                    RangeRequest::Unsatisfiable => {
                        let refused = self
                            .error(head, 416, "range not satisfiable\n")
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
            Precondition::Failed => return self.vary(self.error(head, 412, "precondition failed\n"), true),
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
                    return self.not_found(head);
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

    /// An error answer: the error page for `status` if there is one, else `msg`.
    fn error(&self, head: &RequestHead, status: u16, msg: &'static str) -> Response {
        if !self.pages.is_empty() {
            if let Some(r) = self.page(head, status) {
                return r;
            }
        }
        self.text(status, msg)
    }

    fn not_found(&self, head: &RequestHead) -> Response {
        self.error(head, 404, "not found\n")
    }

    fn not_found_error(&self, head: &RequestHead, e: NotFound) -> Response {
        match e {
            NotFound::Absent => self.not_found(head),
            NotFound::Forbidden => self.error(head, 403, "forbidden\n"),
            NotFound::Io(e) => {
                tracing::error!(error = %e, "file system error");
                self.error(head, 500, "internal error\n")
            }
        }
    }
}
