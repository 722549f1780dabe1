//! The configuration file (TOML): listeners, pools of backends, routes to
//! them, and every setting the command-line flags hold.
//!
//! [`ProxyConfig::from_toml_str`] parses and validates a file's text without
//! binding a port or looking a name up; every mistake — an unknown key, a
//! value of the wrong type, a duplicate pool name, a route naming an unknown
//! pool or one an earlier route shadows, a bad address, weight or strategy
//! setting — is a [`ConfigError`] naming the file, line, column and key.
//! The values are parsed by the same parsers as the flags
//! ([`BackendSource`], [`StrategyKind`], [`parse_duration`], [`parse_listen`]).

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{parse_duration, parse_listen, parse_status_range};
use crate::{
    BackendSource, CookieName, HashBalance, HashKey, HealthCheck, Mode, PassiveHealth, PoolConfig,
    ResolverConfig, StrategyKind, StrategyOptions, Timeouts,
};

/// Where the proxy listens when neither the file nor `--listen` says.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 44444);

/// A configuration file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file's name as given.
        file: String,
        /// What the system said.
        reason: String,
    },
    /// A mistake at a place in the file.
    #[error("{file}:{line}:{column}: {key}: {message}")]
    At {
        /// The file's name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The key at fault, with its table: `listen`, `pool[1].backends`,
        /// `route[0].pool` (arrays of tables counted from 0).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration of a proxy, as read from a file (or built from
/// flags): listeners, global limits, pools and routes. Every value is checked.
///
/// ```
/// use rr_proxy::ProxyConfig;
/// let text = r#"
/// listen = "127.0.0.1:8080"
/// [[pool]]
/// name = "web"
/// backends = ["127.0.0.1:9002", "127.0.0.1:9003=2"]
/// "#;
/// let config = ProxyConfig::from_toml_str(text, "proxy.toml").unwrap();
/// assert_eq!(config.pools[0].backends.len(), 2);
/// let bad = ProxyConfig::from_toml_str("listen = 8080\n", "proxy.toml").unwrap_err();
/// assert!(bad.to_string().starts_with("proxy.toml:1:10: listen: "), "{bad}");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// The proxy's listening address (`listen`, default 127.0.0.1:44444).
    pub listen: SocketAddr,
    /// The admin listener (`admin`), if any.
    pub admin: Option<SocketAddr>,
    /// The admin's bearer token file (`admin_token`; a relative path is taken
    /// from the configuration file's directory).
    pub admin_token: Option<PathBuf>,
    /// More names the admin answers to in `Host` (`admin_hosts`).
    pub admin_hosts: Vec<String>,
    /// Serve the admin over HTTPS with the `[tls]` certificates (`admin_tls`).
    pub admin_tls: bool,
    /// `h2c`: also serve HTTP/2 with prior knowledge on the plain listener
    /// (default: off; over TLS, HTTP/2 is chosen by ALPN either way).
    pub h2c: bool,
    /// `mode`: `http` (default) or `tcp`.
    pub mode: Mode,
    /// `threads`: worker threads (default: one per core).
    pub threads: Option<usize>,
    /// `max_connections`: client connections served at once (default: from the
    /// open-file limit).
    pub max_connections: Option<usize>,
    /// `keep_alive_timeout` (default 60 s).
    pub keep_alive_timeout: Duration,
    /// `header_timeout` (default 10 s).
    pub header_timeout: Duration,
    /// `shutdown_timeout` (default 10 s).
    pub shutdown_timeout: Duration,
    /// `log_format`: `text` (default) or `json`.
    pub log_format: http_core::AccessLogFormat,
    /// `resolver`, `dns_ttl_min`, `dns_ttl_max`: for `dns:` and `srv:` backends.
    pub resolver: ResolverConfig,
    /// `[tls]`: certificates, HSTS, the plain-HTTP redirect listener.
    pub tls: Option<TlsFiles>,
    /// `[[pool]]`: at least one.
    pub pools: Vec<PoolSettings>,
    /// `[[route]]`: in order, first match wins; empty: every request goes to
    /// the first pool.
    pub routes: Vec<Route>,
}

/// `[tls]`: HTTPS on the proxy's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `[[tls.pair]]` entries, `cert` and `key` (PEM files; relative paths from
    /// the configuration file's directory); the first is the default.
    pub pairs: Vec<(PathBuf, PathBuf)>,
    /// `hsts`: `Strict-Transport-Security: max-age=SECONDS` on HTTPS responses.
    pub hsts: Option<u64>,
    /// `redirect_http`: a plain-HTTP listener answering 308 to HTTPS.
    pub redirect_http: Option<SocketAddr>,
}

/// One `[[pool]]`: its backends and how they are balanced, checked and waited on.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// `name`: unique among the pools.
    pub name: String,
    /// `strategy` (default round-robin).
    pub strategy: StrategyKind,
    /// `sticky_cookie`, `hash_key`, `hash_balance` (each only with its strategy).
    pub options: StrategyOptions,
    /// `backends`: `IP:PORT[=WEIGHT]`, `https://HOST:PORT[=WEIGHT]`,
    /// `dns:[https://]NAME:PORT[=WEIGHT]` or `srv:[https://]NAME`; at least
    /// one, no address twice.
    pub backends: Vec<BackendSource>,
    /// `backend_ca`: the PEM file whose certificates alone are trusted for
    /// this pool's backends over TLS (`https://`, `dns:https://`,
    /// `srv:https://`, and those added through the admin API; default: the
    /// system's roots); only with such a backend or an `admin` endpoint. A
    /// relative path is taken from the file's directory (see
    /// [`ProxyConfig::load`]).
    pub backend_ca: Option<PathBuf>,
    /// `[pool.health]`: active health checks (off without the table).
    pub health: Option<HealthCheck>,
    /// `eject_after`, `eject_for`.
    pub passive: PassiveHealth,
    /// `connect_timeout`, `response_timeout`, `idle_timeout`.
    pub timeouts: Timeouts,
    /// `pool_max_idle`, `pool_idle_timeout`.
    pub pool: PoolConfig,
    /// `max_attempts` (default 3).
    pub max_attempts: usize,
}

/// One `[[route]]`: which requests go to which pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `host`: exact, or `*.suffix` (any subdomain of `suffix`, not `suffix`
    /// itself); lowercase. `None` matches every host.
    pub host: Option<HostMatch>,
    /// `path`: a prefix of the request's path, matched on segment boundaries
    /// (`/api` matches `/api`, `/api/` and `/api/x`, not `/apix`); `None`
    /// matches every path.
    pub path: Option<String>,
    /// The index of the pool in [`ProxyConfig::pools`].
    pub pool: usize,
}

/// A route's `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// This host exactly (lowercase, no port).
    Exact(String),
    /// Any host ending in `.` + this suffix (lowercase, stored without the `*.`).
    Suffix(String),
}

impl HostMatch {
    /// True when `host` (lowercase, without port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(s) => {
                host.len() > s.len() + 1
                    && host.ends_with(s.as_str())
                    && host.as_bytes()[host.len() - s.len() - 1] == b'.'
            }
        }
    }

    /// True when every host `other` matches is matched by `self` too.
    fn covers(&self, other: &HostMatch) -> bool {
        match (self, other) {
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Exact(_), HostMatch::Suffix(_)) => false,
            (HostMatch::Suffix(_), HostMatch::Exact(b)) => self.matches(b),
            (HostMatch::Suffix(a), HostMatch::Suffix(b)) => a == b || HostMatch::Suffix(a.clone()).matches(b),
        }
    }
}

impl std::fmt::Display for HostMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

/// True when the request path `path` is under the route prefix `prefix` on a
/// segment boundary: `/api` matches `/api`, `/api/x`, not `/apix`.
pub fn path_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

impl Route {
    /// True when every request `later` matches is matched by `self` (so
    /// `later`, placed after `self`, is unreachable).
    fn shadows(&self, later: &Route) -> bool {
        let host = match (&self.host, &later.host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.covers(b),
        };
        let path = match (&self.path, &later.path) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => path_matches(a, b),
        };
        host && path
    }
}

impl ProxyConfig {
    /// Reads and validates the file at `path` (named in errors as given).
    /// Binds nothing and looks nothing up, except the names of `https://`
    /// backends (see [`BackendSource::parse_in_file`]).
    pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let mut config = ProxyConfig::from_toml_str(&text, &file)?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Parses and validates a file's text; `file_name` is only used in errors.
    /// Relative paths are kept as written (see [`load`](ProxyConfig::load)).
    pub fn from_toml_str(text: &str, file_name: &str) -> Result<ProxyConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().replace('\n', " ");
            at(text, file_name, span.clone(), &key_at(text, span.start), message)
        })?;
        Validator {
            text,
            file: file_name,
        }
        .validate(raw)
    }

    /// Makes the relative paths (certificates, keys, the admin token) relative
    /// to `dir`.
    fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(t) = &mut self.admin_token {
            fix(t);
        }
        if let Some(tls) = &mut self.tls {
            for (c, k) in &mut tls.pairs {
                fix(c);
                fix(k);
            }
        }
        for ca in self.pools.iter_mut().filter_map(|p| p.backend_ca.as_mut()) {
            fix(ca);
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<Spanned<String>>,
    admin: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
    #[serde(default)]
    admin_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    admin_tls: Option<Spanned<bool>>,
    h2c: Option<Spanned<bool>>,
    mode: Option<Spanned<String>>,
    threads: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
    keep_alive_timeout: Option<Spanned<String>>,
    header_timeout: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    resolver: Option<Spanned<String>>,
    dns_ttl_min: Option<Spanned<String>>,
    dns_ttl_max: Option<Spanned<String>>,
    tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pool: Vec<Spanned<RawPool>>,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    pair: Vec<RawPair>,
    hsts: Option<Spanned<i64>>,
    redirect_http: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPair {
    cert: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: Spanned<String>,
    strategy: Option<Spanned<String>>,
    backends: Spanned<Vec<Spanned<String>>>,
    backend_ca: Option<Spanned<String>>,
    sticky_cookie: Option<Spanned<String>>,
    hash_key: Option<Spanned<String>>,
    hash_balance: Option<Spanned<f64>>,
    health: Option<RawHealth>,
    eject_after: Option<Spanned<i64>>,
    eject_for: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    response_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    pool_max_idle: Option<Spanned<i64>>,
    pool_idle_timeout: Option<Spanned<String>>,
    max_attempts: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    path: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
    rise: Option<Spanned<i64>>,
    fall: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    pool: Spanned<String>,
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn at(text: &str, file: &str, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
    let (line, column) = line_col(text, span.start);
    ConfigError::At {
        file: file.to_owned(),
        line,
        column,
        key: key.to_owned(),
        message: message.into(),
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The dotted key at byte `offset` (where the toml parser put an error): the
/// enclosing table (`pool[1]`) and the key on that line, or before the value
/// the offset is in.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let lines: Vec<(usize, &str)> = text
        .split_inclusive('\n')
        .scan(0, |start, l| {
            let s = *start;
            *start += l.len();
            Some((s, l))
        })
        .collect();
    let Some(mut i) = lines.iter().rposition(|(s, _)| *s <= offset) else {
        return String::new();
    };
    let header = |line: &str| {
        let t = line.trim();
        t.starts_with('[').then(|| {
            t.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
    };
    // The key on the error's line: the word at the offset when it is followed
    // by `=`, else the word before the last `=` before the offset; going up
    // for a value over several lines.
    let mut key = String::new();
    let (start, line) = lines[i];
    let col = offset - start;
    if header(line).is_none() {
        let rest = line.get(col..).unwrap_or("");
        let word: String = rest.chars().take_while(|&c| is_key_char(c)).collect();
        if !word.is_empty() && rest[word.len()..].trim_start().starts_with('=') {
            key = word;
        } else {
            let mut j = i;
            let mut upto = col;
            loop {
                let l = lines[j].1;
                if let Some(eq) = l.get(..upto.min(l.len())).and_then(|s| s.rfind('=')) {
                    let w: String = l[..eq]
                        .trim_end()
                        .chars()
                        .rev()
                        .take_while(|&c| is_key_char(c))
                        .collect();
                    key = w.chars().rev().collect();
                    break;
                }
                if j == 0 || header(lines[j - 1].1).is_some() {
                    break;
                }
                j -= 1;
                upto = usize::MAX;
            }
        }
    }
    // The table: the last header at or before the line.
    loop {
        if let Some(name) = header(lines[i].1) {
            // Each part that names an array of tables gets the index of its
            // latest element: `[pool.health]` under the 2nd `[[pool]]` is `pool[1].health`.
            let mut table = String::new();
            let mut prefix = String::new();
            for part in name.split('.').map(str::trim) {
                if !prefix.is_empty() {
                    prefix.push('.');
                    table.push('.');
                }
                prefix.push_str(part);
                table.push_str(part);
                let n = lines[..=i]
                    .iter()
                    .filter(|(_, l)| {
                        l.trim().starts_with("[[") && header(l).as_deref() == Some(prefix.as_str())
                    })
                    .count();
                if n > 0 {
                    table.push_str(&format!("[{}]", n - 1));
                }
            }
            return if key.is_empty() {
                table
            } else {
                format!("{table}.{key}")
            };
        }
        if i == 0 {
            return key;
        }
        i -= 1;
    }
}

struct Validator<'a> {
    text: &'a str,
    file: &'a str,
}

impl Validator<'_> {
    fn err<T>(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> Result<T, ConfigError> {
        Err(at(self.text, self.file, span, key, message))
    }

    fn duration(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) => parse_duration(v.get_ref()).or_else(|e| self.err(v.span(), key, e)),
        }
    }

    fn count(
        &self,
        v: &Option<Spanned<i64>>,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ConfigError> {
        match v {
            None => Ok(None),
            Some(n) if (min..=max).contains(n.get_ref()) => Ok(Some(*n.get_ref())),
            Some(n) => self.err(
                n.span(),
                key,
                format!("{} is out of range: expected {min} to {max}", n.get_ref()),
            ),
        }
    }

    fn listen(&self, v: &Spanned<String>, key: &str) -> Result<SocketAddr, ConfigError> {
        parse_listen(v.get_ref()).or_else(|e| self.err(v.span(), key, e))
    }

    fn validate(&self, raw: RawFile) -> Result<ProxyConfig, ConfigError> {
        let listen = match &raw.listen {
            Some(v) => self.listen(v, "listen")?,
            None => DEFAULT_LISTEN,
        };
        let admin = raw.admin.as_ref().map(|v| self.listen(v, "admin")).transpose()?;
        let admin_only = |present: bool, span: Range<usize>, key: &str| -> Result<(), ConfigError> {
            if present && admin.is_none() {
                return self.err(span, key, "needs `admin` (the admin listener's address)");
            }
            Ok(())
        };
        if let Some(h) = raw.admin_hosts.first() {
            admin_only(true, h.span(), "admin_hosts")?;
        }
        for h in &raw.admin_hosts {
            let ok = !h.get_ref().is_empty()
                && h.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
            if !ok {
                return self.err(
                    h.span(),
                    "admin_hosts",
                    format!("{:?} is not a host name", h.get_ref()),
                );
            }
        }
        let admin_tls = raw.admin_tls.as_ref().is_some_and(|b| *b.get_ref());
        if let Some(b) = &raw.admin_tls {
            admin_only(*b.get_ref(), b.span(), "admin_tls")?;
        }
        if let Some(t) = &raw.admin_token {
            admin_only(true, t.span(), "admin_token")?;
        }
        let mode = match &raw.mode {
            None => Mode::Http,
            Some(m) => m
                .get_ref()
                .parse()
                .or_else(|e: String| self.err(m.span(), "mode", e))?,
        };
        let h2c = raw.h2c.as_ref().is_some_and(|b| *b.get_ref());
        if let Some(b) = raw.h2c.as_ref().filter(|b| *b.get_ref() && mode == Mode::Tcp) {
            return self.err(
                b.span(),
                "h2c",
                "needs mode http (TCP mode balances connections, not requests)",
            );
        }
        let log_format = match raw.log_format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
            None | Some(("text", _)) => http_core::AccessLogFormat::Text,
            Some(("json", _)) => http_core::AccessLogFormat::Json,
            Some((other, span)) => {
                return self.err(
                    span,
                    "log_format",
                    format!("unknown format {other:?}: expected text or json"),
                )
            }
        };
        let resolver_addr = match &raw.resolver {
            None => None,
            Some(r) => Some(
                crate::config::parse_resolver(r.get_ref()).or_else(|e| self.err(r.span(), "resolver", e))?,
            ),
        };
        let defaults = ResolverConfig::default();
        let resolver = ResolverConfig {
            nameserver: resolver_addr,
            ttl_min: self.duration(&raw.dns_ttl_min, "dns_ttl_min", defaults.ttl_min)?,
            ttl_max: self.duration(&raw.dns_ttl_max, "dns_ttl_max", defaults.ttl_max)?,
            ..defaults
        };
        if resolver.ttl_min > resolver.ttl_max {
            let span = raw
                .dns_ttl_min
                .as_ref()
                .or(raw.dns_ttl_max.as_ref())
                .map_or(0..0, |s| s.span());
            return self.err(span, "dns_ttl_min", "must not be longer than dns_ttl_max");
        }
        let tls = match &raw.tls {
            None => None,
            Some(t) => {
                let span = t.span();
                let t = t.get_ref();
                if t.pair.is_empty() {
                    return self.err(
                        span,
                        "tls.pair",
                        "no certificates: add [[tls.pair]] with cert and key",
                    );
                }
                let hsts = self.count(&t.hsts, "tls.hsts", 0, 63_072_000)?.map(|n| n as u64);
                let redirect_http = t
                    .redirect_http
                    .as_ref()
                    .map(|r| self.listen(r, "tls.redirect_http"))
                    .transpose()?;
                Some(TlsFiles {
                    pairs: t
                        .pair
                        .iter()
                        .map(|p| (PathBuf::from(&p.cert), PathBuf::from(&p.key)))
                        .collect(),
                    hsts,
                    redirect_http,
                })
            }
        };
        if admin_tls && tls.is_none() {
            let span = raw.admin_tls.as_ref().map_or(0..0, |s| s.span());
            return self.err(span, "admin_tls", "needs [tls] certificates");
        }

        if raw.pool.is_empty() {
            return self.err(
                0..0,
                "pool",
                "no pools: add at least one [[pool]] with name and backends",
            );
        }
        let mut pools: Vec<PoolSettings> = Vec::with_capacity(raw.pool.len());
        let mut name_lines: Vec<usize> = Vec::new();
        for (i, p) in raw.pool.iter().enumerate() {
            let p = p.get_ref();
            let k = |key: &str| format!("pool[{i}].{key}");
            let name = p.name.get_ref().clone();
            let name_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !name_ok {
                return self.err(
                    p.name.span(),
                    &k("name"),
                    format!("bad pool name {name:?}: letters, digits, '-', '_' and '.' only"),
                );
            }
            if let Some(j) = pools.iter().position(|q| q.name == name) {
                return self.err(
                    p.name.span(),
                    &k("name"),
                    format!("duplicate pool name {name:?} (first at line {})", name_lines[j]),
                );
            }
            name_lines.push(line_col(self.text, p.name.span().start).0);
            pools.push(self.pool(p, i, name, mode, admin.is_some())?);
        }

        let mut routes: Vec<Route> = Vec::with_capacity(raw.route.len());
        let mut route_lines: Vec<usize> = Vec::new();
        for (i, r) in raw.route.iter().enumerate() {
            let span = r.span();
            let r = r.get_ref();
            let k = |key: &str| format!("route[{i}].{key}");
            let pool = pools
                .iter()
                .position(|p| p.name == *r.pool.get_ref())
                .map_or_else(
                    || {
                        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                        self.err(
                            r.pool.span(),
                            &k("pool"),
                            format!(
                                "unknown pool {:?} (pools: {})",
                                r.pool.get_ref(),
                                names.join(", ")
                            ),
                        )
                    },
                    Ok,
                )?;
            let host = match &r.host {
                None => None,
                Some(h) => Some(parse_host(h.get_ref()).or_else(|e| self.err(h.span(), &k("host"), e))?),
            };
            let path = match &r.path {
                None => None,
                Some(p) if p.get_ref().starts_with('/') && !p.get_ref().contains(['?', '#', ' ']) => {
                    Some(p.get_ref().clone())
                }
                Some(p) => {
                    return self.err(
                        p.span(),
                        &k("path"),
                        format!(
                            "bad path prefix {:?}: expected an absolute path such as /api/",
                            p.get_ref()
                        ),
                    )
                }
            };
            if mode == Mode::Tcp && (host.is_some() || path.is_some()) {
                return self.err(
                    span,
                    &format!("route[{i}]"),
                    "TCP mode has no hosts or paths to route on",
                );
            }
            let route = Route { host, path, pool };
            if let Some(j) = routes.iter().position(|earlier| earlier.shadows(&route)) {
                return self.err(
                    span,
                    &format!("route[{i}]"),
                    format!(
                        "unreachable: route[{j}] (line {}) matches every request this one does",
                        route_lines[j]
                    ),
                );
            }
            routes.push(route);
            route_lines.push(line_col(self.text, span.start).0);
        }

        Ok(ProxyConfig {
            listen,
            admin,
            admin_token: raw.admin_token.map(|t| PathBuf::from(t.into_inner())),
            admin_hosts: raw.admin_hosts.into_iter().map(|h| h.into_inner()).collect(),
            admin_tls,
            h2c,
            mode,
            threads: self.count(&raw.threads, "threads", 1, 1024)?.map(|n| n as usize),
            max_connections: self
                .count(&raw.max_connections, "max_connections", 1, i64::from(u32::MAX))?
                .map(|n| n as usize),
            keep_alive_timeout: self.duration(
                &raw.keep_alive_timeout,
                "keep_alive_timeout",
                Duration::from_secs(60),
            )?,
            header_timeout: self.duration(&raw.header_timeout, "header_timeout", Duration::from_secs(10))?,
            shutdown_timeout: self.duration(
                &raw.shutdown_timeout,
                "shutdown_timeout",
                Duration::from_secs(10),
            )?,
            log_format,
            resolver,
            tls,
            pools,
            routes,
        })
    }

    /// Pool `i`; `admin_on`: the file has an admin endpoint (which may add
    /// https backends, so a `backend_ca` needs no backend over TLS).
    fn pool(
        &self,
        p: &RawPool,
        i: usize,
        name: String,
        mode: Mode,
        admin_on: bool,
    ) -> Result<PoolSettings, ConfigError> {
        let k = |key: &str| format!("pool[{i}].{key}");
        let strategy = match &p.strategy {
            None => StrategyKind::RoundRobin,
            Some(s) => s
                .get_ref()
                .parse()
                .or_else(|e: String| self.err(s.span(), &k("strategy"), e))?,
        };
        let misplaced = |span: Range<usize>, key: &str, wanted: StrategyKind| {
            self.err(
                span,
                &k(key),
                format!("applies to strategy {wanted} only (not {strategy})"),
            )
        };
        let mut options = StrategyOptions::default();
        if let Some(c) = &p.sticky_cookie {
            if strategy != StrategyKind::StickyCookie {
                return misplaced(c.span(), "sticky_cookie", StrategyKind::StickyCookie);
            }
            options.sticky_cookie = c
                .get_ref()
                .parse::<CookieName>()
                .or_else(|e| self.err(c.span(), &k("sticky_cookie"), e.to_string()))?;
        }
        if let Some(h) = &p.hash_key {
            if strategy != StrategyKind::ConsistentHash {
                return misplaced(h.span(), "hash_key", StrategyKind::ConsistentHash);
            }
            options.hash_key = h
                .get_ref()
                .parse::<HashKey>()
                .or_else(|e| self.err(h.span(), &k("hash_key"), e.to_string()))?;
            if mode == Mode::Tcp && matches!(options.hash_key, HashKey::Header(_)) {
                return self.err(
                    h.span(),
                    &k("hash_key"),
                    "header:NAME needs mode http (TCP mode has no headers)",
                );
            }
        }
        if let Some(b) = &p.hash_balance {
            if strategy != StrategyKind::ConsistentHash {
                return misplaced(b.span(), "hash_balance", StrategyKind::ConsistentHash);
            }
            options.hash_balance = b
                .get_ref()
                .to_string()
                .parse::<HashBalance>()
                .or_else(|e| self.err(b.span(), &k("hash_balance"), e.to_string()))?;
        }
        if mode == Mode::Tcp && strategy.needs_http() {
            let span = p.strategy.as_ref().map_or(0..0, |s| s.span());
            return self.err(
                span,
                &k("strategy"),
                format!("{strategy} needs mode http (TCP mode has no cookies)"),
            );
        }
        if p.backends.get_ref().is_empty() {
            return self.err(
                p.backends.span(),
                &k("backends"),
                "no backends: give at least one ADDR[=WEIGHT]",
            );
        }
        let mut backends: Vec<BackendSource> = Vec::with_capacity(p.backends.get_ref().len());
        for b in p.backends.get_ref() {
            let source = BackendSource::parse_in_file(b.get_ref()).or_else(|e: crate::SpecError| {
                let hint = if matches!(e, crate::SpecError::BadAddress(_)) {
                    " (a host name is written dns:NAME:PORT in the file)"
                } else {
                    ""
                };
                self.err(b.span(), &k("backends"), format!("{e}{hint}"))
            })?;
            let same = |a: &BackendSource, b: &BackendSource| match (a, b) {
                (a, b) if a.fixed().is_some() && b.fixed().is_some() => {
                    a.fixed().map(|x| x.addr) == b.fixed().map(|y| y.addr)
                }
                (a, b) => a.to_string() == b.to_string(),
            };
            if backends.iter().any(|earlier| same(earlier, &source)) {
                return self.err(
                    b.span(),
                    &k("backends"),
                    format!("{} is listed twice", b.get_ref()),
                );
            }
            if source.is_tls() && mode == Mode::Tcp {
                return self.err(
                    b.span(),
                    &k("backends"),
                    "https backends need mode http (TCP mode relays bytes as they come)",
                );
            }
            backends.push(source);
        }
        let backend_ca = match &p.backend_ca {
            None => None,
            Some(ca) if !admin_on && !backends.iter().any(BackendSource::is_tls) => {
                return self.err(
                    ca.span(),
                    &k("backend_ca"),
                    "backend_ca needs a backend over TLS in the pool (https://, dns:https:// or srv:https://) \
                     or an admin endpoint (for https backends added there)",
                );
            }
            Some(ca) if ca.get_ref().is_empty() => {
                return self.err(ca.span(), &k("backend_ca"), "empty path");
            }
            Some(ca) => Some(PathBuf::from(ca.get_ref())),
        };
        let health = match &p.health {
            None => None,
            Some(h) => {
                let d = HealthCheck::default();
                let path = match &h.path {
                    None => d.path.clone(),
                    Some(p) if p.get_ref().starts_with('/') && !p.get_ref().contains([' ', '\r', '\n']) => {
                        p.get_ref().clone()
                    }
                    Some(p) => {
                        return self.err(
                            p.span(),
                            &k("health.path"),
                            format!("bad path {:?}: expected e.g. /health", p.get_ref()),
                        )
                    }
                };
                let expect = match &h.expect {
                    None => d.expect.clone(),
                    Some(e) => {
                        let (lo, hi) = parse_status_range(e.get_ref())
                            .or_else(|m| self.err(e.span(), &k("health.expect"), m))?;
                        lo..=hi
                    }
                };
                Some(HealthCheck {
                    interval: self.duration(&h.interval, &k("health.interval"), d.interval)?,
                    timeout: self.duration(&h.timeout, &k("health.timeout"), d.timeout)?,
                    path,
                    expect,
                    rise: self
                        .count(&h.rise, &k("health.rise"), 1, 1000)?
                        .map_or(d.rise, |n| n as u32),
                    fall: self
                        .count(&h.fall, &k("health.fall"), 1, 1000)?
                        .map_or(d.fall, |n| n as u32),
                    tcp_only: mode == Mode::Tcp,
                })
            }
        };
        let pd = PassiveHealth::default();
        let td = Timeouts::default();
        let cd = PoolConfig::default();
        Ok(PoolSettings {
            name,
            strategy,
            options,
            backends,
            backend_ca,
            health,
            passive: PassiveHealth {
                max_failures: self
                    .count(&p.eject_after, &k("eject_after"), 0, 1000)?
                    .map_or(pd.max_failures, |n| n as u32),
                ejection: self.duration(&p.eject_for, &k("eject_for"), pd.ejection)?,
            },
            timeouts: Timeouts {
                connect: self.duration(&p.connect_timeout, &k("connect_timeout"), td.connect)?,
                response: self.duration(&p.response_timeout, &k("response_timeout"), td.response)?,
                idle: self.duration(&p.idle_timeout, &k("idle_timeout"), td.idle)?,
            },
            pool: PoolConfig {
                max_idle: self
                    .count(&p.pool_max_idle, &k("pool_max_idle"), 0, 1_000_000)?
                    .map_or(cd.max_idle, |n| n as usize),
                idle_timeout: self.duration(
                    &p.pool_idle_timeout,
                    &k("pool_idle_timeout"),
                    cd.idle_timeout,
                )?,
            },
            max_attempts: self
                .count(&p.max_attempts, &k("max_attempts"), 1, 100)?
                .map_or(3, |n| n as usize),
        })
    }
}

/// A route's `host`: `NAME` or `*.NAME`, a DNS name (lowercased), no port.
fn parse_host(s: &str) -> Result<HostMatch, String> {
    let lower = s.to_ascii_lowercase();
    let (suffix, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !ok {
        return Err(format!(
            "bad host {s:?}: expected a host name (no port) or *.suffix"
        ));
    }
    Ok(if suffix {
        HostMatch::Suffix(name.to_owned())
    } else {
        HostMatch::Exact(name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths() {
        let s = HostMatch::Suffix("example.com".into());
        assert!(s.matches("a.example.com"));
        assert!(s.matches("a.b.example.com"));
        assert!(!s.matches("example.com"));
        assert!(!s.matches("aexample.com"));
        assert!(HostMatch::Exact("example.com".into()).matches("example.com"));
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/x"));
        assert!(!path_matches("/api", "/apix"));
        assert!(path_matches("/api/", "/api/x"));
        assert!(!path_matches("/api/", "/api"));
        assert!(path_matches("/", "/anything"));
        assert_eq!(
            parse_host("*.Example.COM"),
            Ok(HostMatch::Suffix("example.com".into()))
        );
        assert!(parse_host("example.com:80").is_err());
        assert!(parse_host("*.").is_err());
        assert!(parse_host("a.*.b").is_err());
    }

    #[test]
    fn keys_at_offsets() {
        let text = "listen = 1\n[[pool]]\nname = \"a\"\n[[pool]]\nname = \"b\"\nbackends = [\n  \"x\",\n]\n";
        assert_eq!(key_at(text, 9), "listen");
        let x = text.find("\"x\"").unwrap();
        assert_eq!(key_at(text, x), "pool[1].backends");
        let b = text.rfind("name").unwrap();
        assert_eq!(key_at(text, b), "pool[1].name");
        assert_eq!(line_col(text, x), (7, 3));
    }
}
