//! The configuration file (TOML): the server's settings, the default site and
//! sites by host name, checked so that every mistake names the file, the line,
//! the column and the key.
//!
//! ```
//! use static_server::config::StaticConfig;
//!
//! let dir = std::env::temp_dir();
//! let text = format!(
//!     "listen = \"127.0.0.1:0\"\nroot = {:?}\n\n[[site]]\nhost = \"*.example.com\"\nroot = {:?}\nlisting = true\n",
//!     dir, dir
//! );
//! let config = StaticConfig::from_toml_str(&text, "site.toml").unwrap();
//! assert_eq!(config.sites.len(), 1);
//! let sites = config.build().unwrap(); // roots, pages and rules checked here
//! # drop(sites);
//! let bad = StaticConfig::from_toml_str("listing = 3\n", "site.toml").unwrap_err();
//! assert_eq!(bad.line, 1);
//! assert_eq!(bad.key, "listing");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[cfg(test)]
use std::sync::Arc;

use crate::{Builder, Coding, CompressionLevel, Error, HeaderRule, StaticFiles, SymlinkPolicy};

/// A mistake in a configuration file: where (`FILE:LINE:COLUMN`), which key,
/// and what is wrong. `line` is 0 when the file could not be read at all, or
/// when the value came from the command line rather than the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file as given.
    pub file: String,
    /// 1-based line (0: no position).
    pub line: usize,
    /// 1-based column (0: no position).
    pub column: usize,
    /// The key, as a path: `root`, `site[2].error_pages.404`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.key.is_empty()) {
            (0, true) => write!(f, "{}: {}", self.file, self.message),
            (0, false) => write!(f, "{}: {}: {}", self.file, self.key, self.message),
            (_, _) => write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.column, self.key, self.message
            ),
        }
    }
}

/// Settings of the listener and the connection driver: what a reload cannot
/// change (a restart can).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSettings {
    /// `listen`: the address to serve on.
    pub listen: Option<SocketAddr>,
    /// `metrics`: the metrics listener's address.
    pub metrics: Option<SocketAddr>,
    /// `threads`: worker threads.
    pub threads: Option<usize>,
    /// `log_format`: `text` or `json`.
    pub log_format: Option<String>,
    /// `header_timeout`.
    pub header_timeout: Option<Duration>,
    /// `keep_alive_timeout`.
    pub keep_alive_timeout: Option<Duration>,
    /// `shutdown_timeout`.
    pub shutdown_timeout: Option<Duration>,
    /// `max_connections`.
    pub max_connections: Option<usize>,
    /// `tls`: certificate chain and key files, in pairs (paths as given,
    /// relative ones taken from the file's directory).
    pub tls: Vec<(PathBuf, PathBuf)>,
    /// `redirect_http`: a plain-HTTP listener answering 308 to HTTPS.
    pub redirect_http: Option<SocketAddr>,
    /// `hsts`: `Strict-Transport-Security: max-age=SECONDS` on HTTPS answers.
    pub hsts: Option<u64>,
    /// `metrics_tls`: serve the metrics over HTTPS too.
    pub metrics_tls: Option<bool>,
}

/// The options of one site; unset ones take the top level's value, then the
/// [`Builder`]'s default.
#[derive(Debug, Clone, Default)]
pub struct SiteOptions {
    /// `root`: the directory served.
    pub root: Option<PathBuf>,
    /// `index`: index file names.
    pub index: Option<Vec<String>>,
    /// `listing`.
    pub listing: Option<bool>,
    /// `dotfiles`.
    pub dotfiles: Option<bool>,
    /// `symlinks`.
    pub symlinks: Option<SymlinkPolicy>,
    /// `precompressed`.
    pub precompressed: Option<bool>,
    /// `compression`: codings in order (empty: off).
    pub compression: Option<Vec<Coding>>,
    /// `compression_level`.
    pub compression_level: Option<CompressionLevel>,
    /// `compression_min_size`, bytes.
    pub compression_min_size: Option<u64>,
    /// `cache_max_file`, bytes.
    pub cache_max_file: Option<u64>,
    /// `cache_size`, bytes.
    pub cache_size: Option<u64>,
    /// `revalidate`.
    pub revalidate: Option<Duration>,
    /// `server_id`.
    pub server_id: Option<String>,
    /// `headers`: `Name: value` for every response.
    pub headers: Option<Vec<(String, String)>>,
    /// `header_rules`.
    pub header_rules: Option<Vec<HeaderRule>>,
    /// `fallback`.
    pub fallback: Option<PathBuf>,
    /// `fallback_extensions`.
    pub fallback_extensions: Option<Vec<String>>,
    /// `error_pages`: status → file.
    pub error_pages: Option<Vec<(u16, PathBuf)>>,
}

/// One `[[site]]`: its host names and options.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Host names, lowercase: `example.com`, or `*.example.com` (any name
    /// ending in `.example.com`).
    pub hosts: Vec<String>,
    /// Its options (unset ones are the top level's).
    pub options: SiteOptions,
}

/// A parsed and type-checked configuration file. [`build`](Self::build)
/// checks the rest (roots, pages, rules) and makes the servers.
#[derive(Debug, Clone)]
pub struct StaticConfig {
    /// The file's name as given (for messages).
    pub file: String,
    /// What a reload cannot change.
    pub server: ServerSettings,
    /// The top level's site options: the default site (when `root` is set)
    /// and the defaults of every `[[site]]`.
    pub defaults: SiteOptions,
    /// The `[[site]]` tables, in order.
    pub sites: Vec<SiteConfig>,
    text: String,
    spans: BTreeMap<String, Range<usize>>,
    /// The default site's root came from `--root`: taken from the current
    /// directory, not the file's.
    root_from_command_line: bool,
}

/// The servers a configuration describes, built and checked: what
/// [`StaticFiles::from_sites`] serves and [`StaticFiles::reload`] swaps in.
#[derive(Debug, Clone)]
pub struct SiteSet {
    pub(crate) server: ServerSettings,
    pub(crate) default: Option<StaticFiles>,
    /// Exact names, lowercase.
    pub(crate) exact: Vec<(String, StaticFiles)>,
    /// `*.suffix` names as `.suffix`, lowercase, in file order.
    pub(crate) wildcard: Vec<(String, StaticFiles)>,
    pub(crate) summary: Vec<String>,
    pub(crate) tls: Option<http_core::TlsConfig>,
    pub(crate) h2c: bool,
}

impl SiteSet {
    /// What a reload cannot change.
    pub fn server(&self) -> &ServerSettings {
        &self.server
    }

    /// Serves HTTPS with these certificates ([`crate::Builder::tls`]); they
    /// are the listener's, so only [`StaticFiles::from_sites`] reads them.
    pub fn with_tls(mut self, tls: http_core::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Also serves HTTP/2 with prior knowledge on a plain listener
    /// ([`crate::Builder::h2c`]); like the certificates, a listener's
    /// setting, read only by [`StaticFiles::from_sites`].
    pub fn with_h2c(mut self, on: bool) -> Self {
        self.h2c = on;
        self
    }

    /// One line per site: `HOSTS -> ROOT (options)`, the default site first.
    pub fn summary(&self) -> &[String] {
        &self.summary
    }

    /// The site for a `Host` header value (port stripped, any case): an exact
    /// name, else the first wildcard that matches, else the default site.
    pub fn site_for(&self, host: &[u8]) -> Option<&StaticFiles> {
        let name = strip_port(host);
        if !self.exact.is_empty() || !self.wildcard.is_empty() {
            let eq = |n: &str| n.len() == name.len() && n.as_bytes().eq_ignore_ascii_case(name);
            if let Some((_, s)) = self.exact.iter().find(|(n, _)| eq(n)) {
                return Some(s);
            }
            let ends = |suffix: &str| {
                name.len() > suffix.len()
                    && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            };
            if let Some((_, s)) = self.wildcard.iter().find(|(n, _)| ends(n)) {
                return Some(s);
            }
        }
        self.default.as_ref()
    }

    /// Any site (the default first): the settings every site shares.
    pub(crate) fn first(&self) -> Option<&StaticFiles> {
        self.default
            .as_ref()
            .or_else(|| self.exact.first().map(|(_, s)| s))
            .or_else(|| self.wildcard.first().map(|(_, s)| s))
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`; a trailing dot dropped.
fn strip_port(host: &[u8]) -> &[u8] {
    let end = if host.first() == Some(&b'[') {
        host.iter().position(|&b| b == b']').map_or(host.len(), |i| i + 1)
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    let name = &host[..end];
    name.strip_suffix(b".").unwrap_or(name)
}

// ---- The file's shape ------------------------------------------------------

/// A size: an integer (bytes) or a string (`"64MiB"`).
#[derive(Debug, Clone, Copy)]
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes or a string such as \"64MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                http_core::units::parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: a string (`"10s"`, `"1500ms"`) or an integer number of seconds.
#[derive(Debug, Clone, Copy)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: a string such as \"10s\" or \"1500ms\", or a number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                http_core::units::parse_duration_or_zero(v)
                    .map(Dur)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a string with `FromStr`-like `f`, its error as the message.
macro_rules! from_str_type {
    ($name:ident, $t:ty, $what:literal, $parse:expr) => {
        #[derive(Debug, Clone)]
        struct $name($t);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        let parse: fn(&str) -> Result<$t, String> = $parse;
                        parse(v).map($name).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

from_str_type!(
    Listen,
    SocketAddr,
    "an address: \"IP:PORT\", \":PORT\" or \"PORT\"",
    |s| { http_core::units::parse_listen(s) }
);
from_str_type!(
    Rule,
    HeaderRule,
    "a header rule: \"GLOB[,GLOB]: Name: value\"",
    |s| { s.parse::<HeaderRule>().map_err(|e| e.to_string()) }
);
from_str_type!(ExtraHeader, (String, String), "a header: \"Name: value\"", |s| {
    s.split_once(':')
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("{s:?}: expected \"Name: value\""))
});
from_str_type!(
    PageFile,
    PathBuf,
    "a file under the root, e.g. \"index.html\"",
    |s| {
        if s.trim().is_empty() {
            Err("expected a file under the root, e.g. \"index.html\"".to_owned())
        } else {
            Ok(PathBuf::from(s))
        }
    }
);

/// `compression`: `"none"`, `"zstd,br"` or `["zstd", "br"]`.
#[derive(Debug, Clone)]
struct Codings(Vec<Coding>);

fn parse_codings<'a, E: de::Error>(items: impl Iterator<Item = &'a str>) -> Result<Codings, E> {
    let mut list = Vec::new();
    for item in items {
        let c: Coding = item.parse().map_err(|e| E::custom(format!("{e}, or \"none\"")))?;
        if list.contains(&c) {
            return Err(E::custom(format!("{c} is listed twice")));
        }
        list.push(c);
    }
    Ok(Codings(list))
}

impl<'de> Deserialize<'de> for Codings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Codings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of codings (\"zstd\", \"br\", \"gzip\") or \"none\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Codings, E> {
                if v.trim().eq_ignore_ascii_case("none") {
                    return Ok(Codings(Vec::new()));
                }
                parse_codings(v.split(','))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Codings, A::Error> {
                let mut items: Vec<String> = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    items.push(s);
                }
                parse_codings(items.iter().map(String::as_str))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Symlinks {
    WithinRoot,
    Never,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Fast,
    Balanced,
    Best,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Text,
    Json,
}

/// Declares a table with the site options and `$extra` fields.
macro_rules! site_table {
    ($name:ident { $($extra:ident : $et:ty,)* }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($extra: $et,)*
            root: Option<Spanned<PathBuf>>,
            index: Option<Vec<String>>,
            listing: Option<bool>,
            dotfiles: Option<bool>,
            symlinks: Option<Symlinks>,
            precompressed: Option<bool>,
            compression: Option<Codings>,
            compression_level: Option<Level>,
            compression_min_size: Option<Size>,
            cache_max_file: Option<Size>,
            cache_size: Option<Size>,
            revalidate: Option<Dur>,
            server_id: Option<String>,
            headers: Option<Vec<Spanned<ExtraHeader>>>,
            header_rules: Option<Vec<Spanned<Rule>>>,
            fallback: Option<Spanned<PageFile>>,
            fallback_extensions: Option<Vec<String>>,
            error_pages: Option<BTreeMap<Spanned<String>, Spanned<PageFile>>>,
        }
    };
}

/// `tls = [{ cert = "...", key = "..." }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsPair {
    cert: PathBuf,
    key: PathBuf,
}

site_table!(RawFile {
    listen: Option<Listen>,
    tls: Option<Vec<Spanned<TlsPair>>>,
    redirect_http: Option<Listen>,
    hsts: Option<Spanned<u64>>,
    metrics_tls: Option<bool>,
    metrics: Option<Listen>,
    threads: Option<usize>,
    log_format: Option<LogFormat>,
    header_timeout: Option<Dur>,
    keep_alive_timeout: Option<Dur>,
    shutdown_timeout: Option<Dur>,
    max_connections: Option<usize>,
    site: Option<Vec<Spanned<RawSite>>>,
});

site_table!(RawSite {
    host: Option<Spanned<String>>,
    hosts: Option<Spanned<Vec<Spanned<String>>>>,
});

macro_rules! site_options {
    ($cfg:expr, $prefix:expr, $raw:expr) => {{
        let raw = &$raw;
        let prefix: &str = $prefix;
        let cfg: &mut StaticConfig = &mut $cfg;
        let mut o = SiteOptions {
            root: raw.root.as_ref().map(|r| r.get_ref().clone()),
            index: raw.index.clone(),
            listing: raw.listing,
            dotfiles: raw.dotfiles,
            symlinks: raw.symlinks.map(|s| match s {
                Symlinks::WithinRoot => SymlinkPolicy::WithinRoot,
                Symlinks::Never => SymlinkPolicy::Never,
            }),
            precompressed: raw.precompressed,
            compression: raw.compression.as_ref().map(|c| c.0.clone()),
            compression_level: raw.compression_level.map(|l| match l {
                Level::Fast => CompressionLevel::Fast,
                Level::Balanced => CompressionLevel::Balanced,
                Level::Best => CompressionLevel::Best,
            }),
            compression_min_size: raw.compression_min_size.map(|s| s.0),
            cache_max_file: raw.cache_max_file.map(|s| s.0),
            cache_size: raw.cache_size.map(|s| s.0),
            revalidate: raw.revalidate.map(|d| d.0),
            server_id: raw.server_id.clone(),
            headers: raw
                .headers
                .as_ref()
                .map(|v| v.iter().map(|h| h.get_ref().0.clone()).collect()),
            header_rules: raw
                .header_rules
                .as_ref()
                .map(|v| v.iter().map(|h| h.get_ref().0.clone()).collect()),
            fallback: raw.fallback.as_ref().map(|f| f.get_ref().0.clone()),
            fallback_extensions: raw.fallback_extensions.clone(),
            error_pages: None,
        };
        if let Some(r) = &raw.root {
            cfg.spans.insert(format!("{prefix}root"), r.span());
        }
        if let Some(f) = &raw.fallback {
            cfg.spans.insert(format!("{prefix}fallback"), f.span());
        }
        if let Some(v) = &raw.headers {
            if let Some(first) = v.first() {
                cfg.spans.insert(format!("{prefix}headers"), first.span());
            }
        }
        if let Some(v) = &raw.header_rules {
            if let Some(first) = v.first() {
                cfg.spans.insert(format!("{prefix}header_rules"), first.span());
            }
        }
        let mut result = Ok(());
        if let Some(pages) = &raw.error_pages {
            let mut list = Vec::new();
            for (status, file) in pages {
                let key = format!("{prefix}error_pages.{}", status.get_ref());
                match status
                    .get_ref()
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (400..=599).contains(n))
                {
                    Some(n) => {
                        cfg.spans.insert(format!("{prefix}error_pages.{n}"), file.span());
                        list.push((n, file.get_ref().0.clone()));
                    }
                    None => {
                        result = Err(cfg.error(
                            Some(status.span()),
                            &key,
                            "the status must be a number from 400 to 599",
                        ));
                        break;
                    }
                }
            }
            o.error_pages = Some(list);
        }
        result.map(|()| o)
    }};
}

// ---- Reading ---------------------------------------------------------------

impl StaticConfig {
    /// Reads and checks `path` (types, keys, host names, statuses; not the
    /// file system: that is [`build`](Self::build)).
    pub fn load(path: impl AsRef<Path>) -> Result<StaticConfig, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Self::from_toml_str(&text, &file)
    }

    /// Parses `text`, naming `file` in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<StaticConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        let mut cfg = StaticConfig {
            file: file.to_owned(),
            server: ServerSettings {
                listen: raw.listen.as_ref().map(|l| l.0),
                metrics: raw.metrics.as_ref().map(|l| l.0),
                threads: raw.threads,
                log_format: raw.log_format.map(|f| format!("{f:?}").to_lowercase()),
                header_timeout: raw.header_timeout.map(|d| d.0),
                keep_alive_timeout: raw.keep_alive_timeout.map(|d| d.0),
                shutdown_timeout: raw.shutdown_timeout.map(|d| d.0),
                max_connections: raw.max_connections,
                tls: Vec::new(),
                redirect_http: raw.redirect_http.as_ref().map(|l| l.0),
                hsts: raw.hsts.as_ref().map(|h| *h.get_ref()),
                metrics_tls: raw.metrics_tls,
            },
            defaults: SiteOptions::default(),
            sites: Vec::new(),
            text: text.to_owned(),
            spans: BTreeMap::new(),
            root_from_command_line: false,
        };
        if raw.threads == Some(0) {
            return Err(cfg.error_at_key("threads", "must be at least 1"));
        }
        if raw.max_connections == Some(0) {
            return Err(cfg.error_at_key("max_connections", "must be 1 or more"));
        }
        for (key, d) in [
            ("header_timeout", raw.header_timeout),
            ("keep_alive_timeout", raw.keep_alive_timeout),
            ("shutdown_timeout", raw.shutdown_timeout),
        ] {
            if d.is_some_and(|d| d.0.is_zero()) {
                return Err(cfg.error_at_key(key, "must be longer than zero"));
            }
        }
        for (i, pair) in raw.tls.iter().flatten().enumerate() {
            let key = format!("tls[{}]", i + 1);
            let p = pair.get_ref();
            for (what, file) in [("cert", &p.cert), ("key", &p.key)] {
                let path = cfg.resolve(file);
                if let Err(e) = std::fs::metadata(&path) {
                    let message = format!("{what} {}: {e}", path.display());
                    return Err(cfg.error(Some(pair.span()), &key, &message));
                }
            }
            cfg.server.tls.push((cfg.resolve(&p.cert), cfg.resolve(&p.key)));
        }
        if let Some(h) = &raw.hsts {
            if *h.get_ref() > 63_072_000 {
                return Err(cfg.error(Some(h.span()), "hsts", "at most 63072000 seconds (two years)"));
            }
        }
        if cfg.server.tls.is_empty() {
            for key in ["hsts", "redirect_http", "metrics_tls"] {
                let set = match key {
                    "hsts" => raw.hsts.is_some(),
                    "redirect_http" => raw.redirect_http.is_some(),
                    _ => raw.metrics_tls == Some(true),
                };
                if set {
                    return Err(cfg.error_at_key(key, "needs `tls` (certificates to serve HTTPS with)"));
                }
            }
        }
        cfg.defaults = site_options!(cfg, "", raw)?;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (i, site) in raw.site.into_iter().flatten().enumerate() {
            let span = site.span();
            let site = site.into_inner();
            let prefix = format!("site[{}].", i + 1);
            let options = site_options!(cfg, &prefix, site)?;
            let mut hosts = Vec::new();
            if let Some(h) = site.host {
                hosts.push(("host", h));
            }
            if let Some(list) = site.hosts {
                hosts.extend(list.into_inner().into_iter().map(|h| ("hosts", h)));
            }
            if hosts.is_empty() {
                return Err(cfg.error(
                    Some(span),
                    &format!("site[{}]", i + 1),
                    "a [[site]] needs `host` or `hosts`",
                ));
            }
            if options.root.is_none() {
                return Err(cfg.error(Some(span), &format!("site[{}]", i + 1), "a [[site]] needs `root`"));
            }
            let mut names = Vec::new();
            for (name_key, h) in hosts {
                let key = format!("{prefix}{name_key}");
                let name = h.get_ref().trim().to_ascii_lowercase();
                let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
                if let Err(why) = check_host(&name) {
                    return Err(cfg.error(Some(h.span()), &key, &why));
                }
                if let Some(first) = seen.get(&name) {
                    return Err(cfg.error(
                        Some(h.span()),
                        &key,
                        &format!(
                            "duplicate host {name:?} (also in {first}): the second could never be reached"
                        ),
                    ));
                }
                seen.insert(name.clone(), format!("site[{}]", i + 1));
                names.push(name);
            }
            cfg.sites.push(SiteConfig {
                hosts: names,
                options,
            });
        }
        if cfg.defaults.root.is_none() && cfg.sites.is_empty() {
            return Err(cfg.error(None, "root", "nothing to serve: set `root` or add a [[site]]"));
        }
        Ok(cfg)
    }

    fn error(&self, span: Option<Range<usize>>, key: &str, message: &str) -> ConfigError {
        let (line, column) = span.map_or((0, 0), |s| line_col(&self.text, s.start));
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            key: key.to_owned(),
            message: message.to_owned(),
        }
    }

    fn error_at_key(&self, key: &str, message: &str) -> ConfigError {
        let span = self.spans.get(key).cloned().or_else(|| find_key(&self.text, key));
        self.error(span, key, message)
    }

    /// Checks the file system (roots exist and are directories, fallback and
    /// error pages are files under their roots and not dot names, headers are
    /// valid) and builds every site, with the server settings that apply to
    /// all of them.
    pub fn build(&self) -> Result<SiteSet, ConfigError> {
        let mut set = SiteSet {
            server: self.server.clone(),
            default: None,
            exact: Vec::new(),
            wildcard: Vec::new(),
            summary: Vec::new(),
            tls: None,
            h2c: false,
        };
        if self.defaults.root.is_some() {
            let files = self.build_site("", &self.defaults)?;
            set.summary
                .push(format!("default -> {}", describe(&files, &self.defaults)));
            set.default = Some(files);
        }
        for (i, site) in self.sites.iter().enumerate() {
            let files = self.build_site(&format!("site[{}].", i + 1), &site.options)?;
            let mut merged = site.options.clone();
            merged.inherit(&self.defaults);
            set.summary.push(format!(
                "{} -> {}",
                site.hosts.join(","),
                describe(&files, &merged)
            ));
            for h in &site.hosts {
                match h.strip_prefix('*') {
                    Some(suffix) => set.wildcard.push((suffix.to_owned(), files.clone())),
                    None => set.exact.push((h.clone(), files.clone())),
                }
            }
        }
        Ok(set)
    }

    fn build_site(&self, prefix: &str, own: &SiteOptions) -> Result<StaticFiles, ConfigError> {
        let mut o = own.clone();
        o.inherit(&self.defaults);
        let key = |k: &str| format!("{prefix}{k}");
        let root = o.root.clone().unwrap_or_default();
        let root = if prefix.is_empty() && self.root_from_command_line {
            root
        } else {
            self.resolve(&root)
        };
        let mut b: Builder = StaticFiles::builder(root);
        if let Some(v) = &o.index {
            b = b.index_files(v.iter().cloned());
        }
        if let Some(v) = o.listing {
            b = b.listing(v);
        }
        if let Some(v) = o.dotfiles {
            b = b.dotfiles(v);
        }
        if let Some(v) = o.symlinks {
            b = b.symlinks(v);
        }
        if let Some(v) = o.precompressed {
            b = b.precompressed(v);
        }
        if let Some(v) = &o.compression {
            b = b.compression(v.iter().copied());
        }
        if let Some(v) = o.compression_level {
            b = b.compression_level(v);
        }
        if let Some(v) = o.compression_min_size {
            b = b.compression_min_size(v);
        }
        let defaults = StaticFiles::builder(".");
        b = b.cache(
            o.cache_max_file.unwrap_or(defaults.cache_max_file),
            o.cache_size.unwrap_or(defaults.cache_capacity),
        );
        if let Some(v) = o.revalidate {
            b = b.revalidate_after(v);
        }
        if let Some(v) = &o.server_id {
            b = b.server_id(v);
        }
        for (n, v) in o.headers.iter().flatten() {
            b = b.header(n, v);
        }
        for r in o.header_rules.iter().flatten() {
            b = b.header_rule(r.clone());
        }
        if let Some(f) = &o.fallback {
            b = b.fallback(f);
            if let Some(exts) = &o.fallback_extensions {
                b = b.fallback_extensions(exts.iter().cloned());
            }
        } else if o.fallback_extensions.is_some() {
            return Err(self.error_at_key(&key("fallback_extensions"), "given without `fallback`"));
        }
        for (status, file) in o.error_pages.iter().flatten() {
            b = b.error_page(*status, file);
        }
        let s = &self.server;
        let mut limits = http_core::Limits::default();
        if let Some(d) = s.header_timeout {
            limits.header_timeout = d;
        }
        if let Some(d) = s.keep_alive_timeout {
            limits.keep_alive_timeout = d;
        }
        b = b.limits(limits);
        if let Some(d) = s.shutdown_timeout {
            b = b.shutdown_timeout(d);
        }
        if let Some(n) = s.max_connections {
            b = b.max_connections(n);
        }
        // A key the site set itself is named with its prefix; an inherited
        // one with the top level's name.
        let at = |k: &str, own_set: bool| if own_set { key(k) } else { k.to_owned() };
        b.build().map_err(|e| match &e {
            Error::Root { .. } | Error::RootNotDirectory(_) => {
                self.error_at_key(&at("root", own.root.is_some()), &e.to_string())
            }
            Error::BadHeader(_) => self.error_at_key(&at("headers", own.headers.is_some()), &e.to_string()),
            Error::HeaderRule(_) => {
                self.error_at_key(&at("header_rules", own.header_rules.is_some()), &e.to_string())
            }
            Error::Fallback { .. } => {
                self.error_at_key(&at("fallback", own.fallback.is_some()), &e.to_string())
            }
            Error::ErrorPage { status, .. } => self.error_at_key(
                &format!("{}.{status}", at("error_pages", own.error_pages.is_some())),
                &e.to_string(),
            ),
            _ => self.error(None, prefix.trim_end_matches('.'), &e.to_string()),
        })
    }

    /// A relative root is taken from the file's directory.
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match Path::new(&self.file).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// Marks `root` as given on the command line: taken from the current
    /// directory, not the file's, and named `--root` in errors.
    pub fn set_root_from_command_line(&mut self, root: PathBuf) {
        self.defaults.root = Some(root);
        self.root_from_command_line = true;
        self.spans.remove("root");
    }
}

impl SiteOptions {
    /// Takes `defaults`' value for every option not set here, except `root`.
    fn inherit(&mut self, d: &SiteOptions) {
        macro_rules! take {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = d.$f.clone(); } )* };
        }
        take!(
            index,
            listing,
            dotfiles,
            symlinks,
            precompressed,
            compression,
            compression_level,
            compression_min_size,
            cache_max_file,
            cache_size,
            revalidate,
            server_id,
            headers,
            header_rules,
            fallback,
            fallback_extensions,
            error_pages
        );
    }
}

fn describe(files: &StaticFiles, o: &SiteOptions) -> String {
    let on_off = |b: Option<bool>, default: bool| if b.unwrap_or(default) { "on" } else { "off" };
    let compression = match &o.compression {
        Some(c) if c.is_empty() => "off".to_owned(),
        Some(c) => c.iter().map(|c| c.token()).collect::<Vec<_>>().join(","),
        None => "zstd,br,gzip".to_owned(),
    };
    format!(
        "{} (index {}; listing {}; dotfiles {}; compression {compression}; header rules {}; fallback {}; error pages {})",
        files.root().display(),
        o.index.as_ref().map_or("index.html".to_owned(), |v| v.join(",")),
        on_off(o.listing, false),
        on_off(o.dotfiles, false),
        o.header_rules.as_ref().map_or(0, Vec::len),
        o.fallback.as_ref().map_or("off".to_owned(), |f| f.display().to_string()),
        o.error_pages.as_ref().filter(|p| !p.is_empty()).map_or("none".to_owned(), |p| p
            .iter()
            .map(|(s, f)| format!("{s}={}", f.display()))
            .collect::<Vec<_>>()
            .join(",")),
    )
}

/// `example.com`, `*.example.com`: letters, digits, `-` and `.`, no empty label.
fn check_host(name: &str) -> Result<(), String> {
    let bare = name.strip_prefix("*.").unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a host name (write e.g. \"example.com\" or \"*.example.com\", without a port)"
        ))
    }
}

/// 1-based line and column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

/// The span of the first line assigning top-level `key` (for errors found
/// after parsing on keys whose values carry no span).
fn find_key(text: &str, key: &str) -> Option<Range<usize>> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            return None;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                let start = offset + (line.len() - t.len());
                return Some(start..start + key.len());
            }
        }
        offset += line.len();
    }
    None
}

/// A TOML or type error, at its position, with the key written on its line.
fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let (line, column) = line_col(text, span.start);
    let line_text = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let spanned = text.get(span.clone()).unwrap_or("").trim();
    let message = e.message().trim().replace('\n', " ");
    // An unknown key's span is the key; a bad value's line starts with its key.
    let key = if message.starts_with("unknown field") {
        spanned.to_owned()
    } else {
        match line_text.split_once('=') {
            Some((k, _)) if !k.trim_start().starts_with('[') => k.trim().to_owned(),
            _ => spanned.lines().next().unwrap_or("").to_owned(),
        }
    };
    let mut message = message;
    if message.starts_with("unknown field") {
        // serde lists every key it expects: too long for one line.
        if let Some(i) = message.find(", expected") {
            message.truncate(i);
        }
    }
    ConfigError {
        file: file.to_owned(),
        line,
        column,
        key: key.trim_matches('"').to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("static-server-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "x").unwrap();
        dir
    }

    /// Parses and builds `text`: the error, if any.
    fn error(text: &str) -> Option<ConfigError> {
        StaticConfig::from_toml_str(text, "t.toml")
            .and_then(|c| c.build())
            .err()
    }

    #[test]
    fn mistakes_name_line_column_and_key() {
        let root = temp_root("bad");
        let r = format!("root = {:?}\n", root.display().to_string());
        let cases = [
            (format!("{r}nope = 1\n"), 2, 1, "nope"),
            (format!("{r}listing = 1\n"), 2, 11, "listing"),
            (format!("{r}cache_size = -1\n"), 2, 14, "cache_size"),
            (format!("{r}compression = \"zstd,zstd\"\n"), 2, 15, "compression"),
            (format!("{r}symlinks = \"always\"\n"), 2, 12, "symlinks"),
            (format!("{r}header_timeout = \"0s\"\n"), 2, 1, "header_timeout"),
            (
                format!("{r}error_pages = {{ 40x = \"index.html\" }}\n"),
                2,
                17,
                "error_pages.40x",
            ),
            (
                format!("{r}fallback_extensions = [\"html\"]\n"),
                2,
                1,
                "fallback_extensions",
            ),
            (
                format!("{r}[[site]]\nhost = \"a.test\"\n{r}[[site]]\nhost = \"A.test\"\n{r}"),
                6,
                8,
                "site[2].host",
            ),
            (
                format!("{r}[[site]]\nhost = \"a.test\"\n{r}headers = [\"X-A\"]\n"),
                5,
                12,
                "headers",
            ),
        ];
        for (text, line, column, key) in cases {
            let e = error(&text).unwrap_or_else(|| panic!("accepted: {text}"));
            assert_eq!(
                (e.line, e.column, e.key.as_str()),
                (line, column, key),
                "{text}: {e}"
            );
            assert_eq!(e.file, "t.toml");
            assert!(
                e.to_string()
                    .starts_with(&format!("t.toml:{line}:{column}: {key}: ")),
                "{e}"
            );
        }
        assert!(error(&r).is_none());
    }

    #[test]
    fn sites_inherit_the_top_level_options_and_match_by_host() {
        let root = temp_root("sites");
        let text = format!(
            "root = {0:?}\nlisting = true\n[[site]]\nhost = \"*.b.test\"\nroot = {0:?}\n\
             [[site]]\nhosts = [\"a.test\"]\nroot = {0:?}\nlisting = false\n",
            root.display().to_string()
        );
        let cfg = StaticConfig::from_toml_str(&text, "t.toml").unwrap();
        assert_eq!(cfg.sites[0].hosts, ["*.b.test"]);
        let set = cfg.build().unwrap();
        assert!(set.summary()[1].contains("listing on"), "{:?}", set.summary());
        assert!(set.summary()[2].contains("listing off"), "{:?}", set.summary());
        let ptr = |s: Option<&StaticFiles>| s.map(|s| Arc::as_ptr(&s.inner));
        let (default, wild, exact) = (
            ptr(set.default.as_ref()),
            ptr(Some(&set.wildcard[0].1)),
            ptr(Some(&set.exact[0].1)),
        );
        assert_eq!(ptr(set.site_for(b"a.test")), exact);
        assert_eq!(ptr(set.site_for(b"A.TEST:443")), exact);
        assert_eq!(ptr(set.site_for(b"x.b.test")), wild);
        assert_eq!(ptr(set.site_for(b"b.test")), default);
        assert_eq!(ptr(set.site_for(b"xb.test")), default);
        assert_eq!(ptr(set.site_for(b"[::1]:80")), default);
        assert_eq!(ptr(set.site_for(b"")), default);
    }

    #[test]
    fn strip_port_keeps_the_name() {
        assert_eq!(strip_port(b"a.test:80"), b"a.test");
        assert_eq!(strip_port(b"a.test."), b"a.test");
        assert_eq!(strip_port(b"[::1]:8080"), b"[::1]");
        assert_eq!(strip_port(b"a.test"), b"a.test");
    }
}
