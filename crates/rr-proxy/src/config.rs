//! Settings: mode, timeouts, health checks, connection pool, backend specifications.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use crate::SpecError;

/// What the proxy balances. Serializes as [`as_str`](Mode::as_str) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Layer 7 (default): each HTTP request goes to the next backend, over pooled
    /// keep-alive connections.
    #[default]
    Http,
    /// Layer 4: each accepted TCP connection goes to the next backend and bytes are
    /// copied both ways unchanged.
    Tcp,
}

impl Mode {
    /// `"http"` or `"tcp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http" => Ok(Mode::Http),
            "tcp" => Ok(Mode::Tcp),
            other => Err(format!("unknown mode {other:?}: expected http or tcp")),
        }
    }
}

/// Every wait the proxy does on a backend, each bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a TCP connection to a backend. Default 3 s; on expiry the next
    /// backend is tried.
    pub connect: Duration,
    /// From the end of the forwarded request to the end of the backend's response
    /// head. Default 30 s; on expiry the client gets 504.
    pub response: Duration,
    /// Longest pause while streaming a body to or from a backend (no bytes moving).
    /// Default 30 s; on expiry the exchange is aborted.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            response: Duration::from_secs(30),
            idle: Duration::from_secs(30),
        }
    }
}

/// Upstream keep-alive connection pool, per backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most idle connections kept per backend. Default 128; 0 disables pooling.
    pub max_idle: usize,
    /// How long an idle connection is kept. Default 30 s: shorter than the idle
    /// timeouts of common servers (nginx 75 s, HAProxy 50 s), so the proxy closes
    /// first in the usual case. A connection the backend closed sooner is noticed
    /// before reuse and replaced.
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle: 128,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Active health checks: each backend is probed every `interval`.
///
/// A probe is `GET path HTTP/1.1` on a fresh connection (or, with `tcp_only`, just
/// a connect); it passes when the status is in `expect` within `timeout`. A backend
/// becomes unhealthy after `fall` failed probes in a row and healthy again after
/// `rise` passing probes in a row; each change is logged with the reason
/// ([`FailureReason`](crate::FailureReason)) and how many backends are left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time between probes. Default 2 s.
    pub interval: Duration,
    /// Longest a probe may take. Default 1 s.
    pub timeout: Duration,
    /// Path probed. Default `/`: name a page the backends have, since a 404
    /// fails the check.
    pub path: String,
    /// Statuses that pass. Default 200–399 (2xx and 3xx, as HAProxy): a backend
    /// answering 404 or 500 is down.
    pub expect: RangeInclusive<u16>,
    /// Passing probes in a row that make a backend healthy. Default 2.
    pub rise: u32,
    /// Failing probes in a row that make a backend unhealthy. Default 3.
    pub fall: u32,
    /// Probe with a TCP connect only (for TCP mode with non-HTTP backends). Default false.
    pub tcp_only: bool,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            path: "/".to_owned(),
            expect: 200..=399,
            rise: 2,
            fall: 3,
            tcp_only: false,
        }
    }
}

/// Passive health: a backend is ejected after consecutive failed exchanges
/// (refused or timed-out connects, response timeouts, malformed responses,
/// bodies cut off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveHealth {
    /// Consecutive failures that eject a backend. Default 3; 0 disables ejection.
    pub max_failures: u32,
    /// How long an ejected backend is left out when there are no active checks
    /// (with active checks, it comes back after `rise` passing probes). Default 10 s.
    pub ejection: Duration,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            max_failures: 3,
            ejection: Duration::from_secs(10),
        }
    }
}

/// A backend as given on the command line: `ADDR` or `ADDR=WEIGHT`.
///
/// Its [`FromStr`] takes an IP address, `IP:PORT[=WEIGHT]`, and never blocks:
/// a host name is an error there ([`SpecError::BadAddress`]). To accept
/// `HOST:PORT[=WEIGHT]` as well, looking the name up, call
/// [`BackendSpec::resolve`] explicitly.
///
/// ```
/// use rr_proxy::BackendSpec;
/// let spec: BackendSpec = "127.0.0.1:9002=3".parse().unwrap();
/// assert_eq!(spec.addr.port(), 9002);
/// assert_eq!(spec.weight, 3);
/// assert_eq!("[::1]:9002".parse::<BackendSpec>().unwrap().weight, 1);
/// assert!("127.0.0.1:9002=0".parse::<BackendSpec>().is_err());
/// assert!("nonsense".parse::<BackendSpec>().is_err());
/// // No DNS lookup in FromStr: a host name is refused.
/// assert!("localhost:9002".parse::<BackendSpec>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendSpec {
    /// The backend's address.
    pub addr: SocketAddr,
    /// Its weight (1 when not given).
    pub weight: u32,
}

/// The largest weight accepted.
pub const MAX_WEIGHT: u32 = 1_000_000;

impl BackendSpec {
    /// Parses `ADDR[=WEIGHT]` where `ADDR` is `IP:PORT` or `HOST:PORT`, looking a
    /// host name up now, once, through the system resolver; its first address
    /// wins, and later changes in DNS are not followed.
    ///
    /// **This blocks** the calling thread until the resolver answers (for a DNS
    /// name, possibly seconds): call it while reading the configuration, not on an
    /// async runtime's worker thread (there, use
    /// `tokio::task::spawn_blocking`). An `IP:PORT` is parsed without a lookup,
    /// as [`FromStr`] does.
    ///
    /// ```
    /// use rr_proxy::BackendSpec;
    /// let spec = BackendSpec::resolve("localhost:9002=2").unwrap();
    /// assert!(spec.addr.ip().is_loopback());
    /// assert_eq!((spec.addr.port(), spec.weight), (9002, 2));
    /// assert_eq!(BackendSpec::resolve("127.0.0.1:80"), "127.0.0.1:80".parse());
    /// assert!(BackendSpec::resolve("localhost").is_err()); // no port
    /// ```
    pub fn resolve(s: &str) -> Result<BackendSpec, SpecError> {
        let (addr, weight) = split_weight(s)?;
        if let Ok(addr) = addr.parse::<SocketAddr>() {
            return BackendSpec::new(addr, weight).ok_or_else(|| SpecError::BadHostAddress(s.to_owned()));
        }
        // `HOST:PORT`: the port must be there (and be a number) before asking DNS.
        let has_port = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_port {
            return Err(SpecError::BadHostAddress(addr.to_owned()));
        }
        let first = addr
            .to_socket_addrs()
            .map_err(|e| SpecError::Unresolved {
                addr: addr.to_owned(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| SpecError::Unresolved {
                addr: addr.to_owned(),
                reason: "no address found".to_owned(),
            })?;
        BackendSpec::new(first, weight).ok_or_else(|| SpecError::BadHostAddress(s.to_owned()))
    }

    /// `None` for port 0.
    fn new(addr: SocketAddr, weight: u32) -> Option<BackendSpec> {
        (addr.port() != 0).then_some(BackendSpec { addr, weight })
    }
}

/// Splits `ADDR[=WEIGHT]`, checking the weight.
fn split_weight(s: &str) -> Result<(&str, u32), SpecError> {
    match s.rsplit_once('=') {
        Some((a, w)) => {
            let weight = w
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=MAX_WEIGHT).contains(w))
                .ok_or_else(|| SpecError::BadWeight(w.to_owned()))?;
            Ok((a, weight))
        }
        None => Ok((s, 1)),
    }
}

impl FromStr for BackendSpec {
    type Err = SpecError;

    /// `IP:PORT[=WEIGHT]`; never a DNS lookup (see [`BackendSpec::resolve`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, weight) = split_weight(s)?;
        addr.parse::<SocketAddr>()
            .ok()
            .and_then(|addr| BackendSpec::new(addr, weight))
            .ok_or_else(|| SpecError::BadAddress(s.to_owned()))
    }
}

/// One entry of a pool's backend list: a fixed address, or a DNS name that
/// discovery follows. The command line's `--backend` and the configuration
/// file's `backends` list share this syntax:
///
/// | form | meaning |
/// |---|---|
/// | `IP:PORT[=WEIGHT]` | a fixed backend ([`BackendSource::Static`]) |
/// | `http://IP:PORT[=WEIGHT]` | the same, with its scheme spelled out |
/// | `https://HOST:PORT[=WEIGHT]` | a fixed backend spoken to over TLS ([`BackendSource::Https`]): `HOST` is a DNS name (looked up once, at start; sent as SNI; the certificate must be valid for it) or an IP address (`https://[::1]:443` for IPv6; no SNI; the certificate must carry the address) |
/// | `dns:NAME:PORT[=WEIGHT]` | every A and AAAA address of `NAME`, on `PORT`, each with `WEIGHT` (default 1), followed as DNS changes ([`BackendSource::Dns`]) |
/// | `dns:https://NAME:PORT[=WEIGHT]` | the same, each address spoken to over TLS: SNI `NAME`, the certificate verified for `NAME` |
/// | `srv:NAME` | the targets of `NAME`'s SRV records, with their ports and SRV weights, followed as DNS changes ([`BackendSource::Srv`]) |
/// | `srv:https://NAME` | the same over TLS: each target's addresses get SNI = the target's name, their certificate verified for it |
///
/// (`dns:http://` and `srv:http://` are the plain forms, spelled out.)
/// Its [`FromStr`] never does a lookup; a plain `HOST:PORT` and an
/// `https://NAME:PORT` are refused there (they are looked up once, at start,
/// by [`BackendSource::parse_resolving`]; the configuration file's
/// [`BackendSource::parse_in_file`] looks up `https://` names only, a plain
/// name there being written `dns:NAME:PORT`).
///
/// ```
/// use rr_proxy::BackendSource;
/// let dns: BackendSource = "dns:web.internal:9002=3".parse().unwrap();
/// assert_eq!(dns, BackendSource::Dns { name: "web.internal".into(), port: 9002, weight: 3, tls: false });
/// assert_eq!(dns.to_string(), "dns:web.internal:9002");
/// let srv: BackendSource = "srv:_http._tcp.web.internal".parse().unwrap();
/// assert_eq!(srv, BackendSource::Srv { name: "_http._tcp.web.internal".into(), tls: false });
/// // Over TLS: the scheme after the prefix.
/// let dns_tls: BackendSource = "dns:https://web.internal:443".parse().unwrap();
/// assert!(dns_tls.is_tls() && dns_tls.is_discovered());
/// assert_eq!(dns_tls.to_string(), "dns:https://web.internal:443");
/// let srv_tls: BackendSource = "srv:https://_https._tcp.web.internal".parse().unwrap();
/// assert_eq!(srv_tls.to_string(), "srv:https://_https._tcp.web.internal");
/// assert!(matches!("127.0.0.1:9002".parse(), Ok(BackendSource::Static(_))));
/// assert!("dns:web.internal".parse::<BackendSource>().is_err()); // no port
/// assert!("srv:web.internal=2".parse::<BackendSource>().is_err()); // SRV gives weights
/// let tls = BackendSource::parse_resolving("https://localhost:9443=2").unwrap();
/// assert!(matches!(&tls, BackendSource::Https { host, spec } if host == "localhost" && spec.weight == 2));
/// assert_eq!(tls.to_string(), "https://localhost:9443=2");
/// assert!("https://127.0.0.1:9443".parse::<BackendSource>().is_ok());
/// assert!("https://localhost".parse::<BackendSource>().is_err()); // no port
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendSource {
    /// A fixed address with its weight.
    Static(BackendSpec),
    /// `https://HOST:PORT[=WEIGHT]`: a fixed address spoken to over TLS.
    Https {
        /// The address (`HOST` looked up) and the weight.
        spec: BackendSpec,
        /// `HOST` as given, without brackets: the name the certificate must
        /// be valid for (and the SNI, for a DNS name).
        host: String,
    },
    /// `dns:NAME:PORT[=WEIGHT]`: the A and AAAA records of `name`
    /// (`dns:https://NAME:PORT[=WEIGHT]`: spoken to over TLS).
    Dns {
        /// The name looked up (as given, without the `dns:` prefix and scheme).
        name: String,
        /// The port every address gets.
        port: u16,
        /// The weight every address gets.
        weight: u32,
        /// `dns:https://`: every address is spoken to over TLS, with SNI
        /// `name` and the certificate verified for `name`.
        tls: bool,
    },
    /// `srv:NAME`: the SRV records of `name` (such as `_http._tcp.web.internal`;
    /// `srv:https://NAME`: spoken to over TLS).
    Srv {
        /// The name looked up (as given, without the `srv:` prefix and scheme).
        name: String,
        /// `srv:https://`: each target's addresses are spoken to over TLS,
        /// with SNI the target's name and the certificate verified for it.
        tls: bool,
    },
}

impl BackendSource {
    /// Parses like [`FromStr`], except that a non-prefixed `HOST:PORT[=WEIGHT]`
    /// is looked up once, now, with [`BackendSpec::resolve`] (**blocking**;
    /// call it while reading the configuration). `dns:` is the form that
    /// follows changes.
    pub fn parse_resolving(s: &str) -> Result<BackendSource, SpecError> {
        if s.starts_with("dns:") || s.starts_with("srv:") {
            return s.parse();
        }
        if let Some(rest) = s.strip_prefix("https://") {
            return parse_https(s, rest, true);
        }
        BackendSpec::resolve(s.strip_prefix("http://").unwrap_or(s)).map(BackendSource::Static)
    }

    /// Parses an entry of the configuration file's `backends` list: as
    /// [`FromStr`], except that the name in an `https://NAME:PORT` entry is
    /// looked up once, now (**blocking**), as [`parse_resolving`](Self::parse_resolving)
    /// does: TLS needs the name (for the certificate), where a plain backend
    /// known by name is a `dns:NAME:PORT` entry.
    pub fn parse_in_file(s: &str) -> Result<BackendSource, SpecError> {
        match s.strip_prefix("https://") {
            Some(rest) => parse_https(s, rest, true),
            None => s.parse(),
        }
    }

    /// True for `dns:` and `srv:` entries (those a discovery source follows).
    pub fn is_discovered(&self) -> bool {
        matches!(self, BackendSource::Dns { .. } | BackendSource::Srv { .. })
    }

    /// True for the entries spoken to over TLS: `https://`, `dns:https://`
    /// and `srv:https://`.
    pub fn is_tls(&self) -> bool {
        match self {
            BackendSource::Static(_) => false,
            BackendSource::Https { .. } => true,
            BackendSource::Dns { tls, .. } | BackendSource::Srv { tls, .. } => *tls,
        }
    }

    /// The fixed address and weight of a `Static` or `Https` entry.
    pub fn fixed(&self) -> Option<&BackendSpec> {
        match self {
            BackendSource::Static(spec) | BackendSource::Https { spec, .. } => Some(spec),
            BackendSource::Dns { .. } | BackendSource::Srv { .. } => None,
        }
    }
}

/// `https://HOST:PORT[=WEIGHT]` (`rest` is what follows `https://`; `whole`
/// the entry, for errors). A DNS name is looked up when `resolve`, else refused.
fn parse_https(whole: &str, rest: &str, resolve: bool) -> Result<BackendSource, SpecError> {
    let bad = || SpecError::BadHttps(whole.to_owned());
    let (addr, weight) = split_weight(rest)?;
    if let Ok(ip) = addr.parse::<SocketAddr>() {
        let spec = BackendSpec::new(ip, weight).ok_or_else(bad)?;
        return Ok(BackendSource::Https {
            spec,
            host: ip.ip().to_string(),
        });
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    if !port_ok || host.starts_with('[') || check_dns_name(host).is_err() {
        return Err(bad());
    }
    if !resolve {
        return Err(SpecError::BadAddress(whole.to_owned()));
    }
    let spec = BackendSpec::resolve(&format!("{addr}={weight}"))?;
    Ok(BackendSource::Https {
        spec,
        host: host.strip_suffix('.').unwrap_or(host).to_owned(),
    })
}

impl std::fmt::Display for BackendSource {
    /// `IP:PORT=WEIGHT`, `dns:NAME:PORT` or `srv:NAME` (`dns:https://NAME:PORT`,
    /// `srv:https://NAME` over TLS): the name a discovery source goes by in
    /// logs, `/stats` and `/metrics` (without the weight).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendSource::Static(spec) => write!(f, "{}={}", spec.addr, spec.weight),
            BackendSource::Https { spec, host } if host.contains(':') => {
                write!(f, "https://[{host}]:{}={}", spec.addr.port(), spec.weight)
            }
            BackendSource::Https { spec, host } => {
                write!(f, "https://{host}:{}={}", spec.addr.port(), spec.weight)
            }
            BackendSource::Dns { name, port, tls, .. } => {
                write!(f, "dns:{}{name}:{port}", if *tls { "https://" } else { "" })
            }
            BackendSource::Srv { name, tls } => {
                write!(f, "srv:{}{name}", if *tls { "https://" } else { "" })
            }
        }
    }
}

impl FromStr for BackendSource {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("dns:") {
            let (rest, tls) = scheme(rest);
            let (addr, weight) = split_weight(rest)?;
            let (name, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| SpecError::BadDns(s.to_owned()))?;
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| SpecError::BadDns(s.to_owned()))?;
            check_dns_name(name)?;
            return Ok(BackendSource::Dns {
                name: name.to_owned(),
                port,
                weight,
                tls,
            });
        }
        if let Some(rest) = s.strip_prefix("srv:") {
            let (name, tls) = scheme(rest);
            if name.contains(['=', ':']) {
                return Err(SpecError::BadSrv(s.to_owned()));
            }
            check_dns_name(name)?;
            return Ok(BackendSource::Srv {
                name: name.to_owned(),
                tls,
            });
        }
        if let Some(rest) = s.strip_prefix("https://") {
            return parse_https(s, rest, false);
        }
        s.strip_prefix("http://")
            .unwrap_or(s)
            .parse()
            .map(BackendSource::Static)
    }
}

/// What follows `dns:` or `srv:`, without its scheme (`https://`: true;
/// `http://` or none: false).
fn scheme(rest: &str) -> (&str, bool) {
    match rest.strip_prefix("https://") {
        Some(r) => (r, true),
        None => (rest.strip_prefix("http://").unwrap_or(rest), false),
    }
}

/// Labels of 1–63 bytes of letters, digits, `-` and `_`, separated by dots (a
/// final dot allowed), 253 bytes at most.
fn check_dns_name(name: &str) -> Result<(), SpecError> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadName(name.to_owned()))
    }
}

pub use http_core::units::{parse_duration, parse_duration_or_zero, parse_listen, MAX_DURATION};

/// Parses a health check's passing statuses, `LOW-HIGH` (or one status), each
/// from 100 to 999.
///
/// ```
/// assert_eq!(rr_proxy::parse_status_range("200-399"), Ok((200, 399)));
/// assert!(rr_proxy::parse_status_range("399-200").is_err());
/// ```
pub fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("bad status range {s:?}: expected e.g. 200-399");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if !(100..=999).contains(&a) || !(100..=999).contains(&b) || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// Parses a nameserver: `IP:PORT`, or an IP alone for port 53.
///
/// ```
/// assert_eq!(rr_proxy::parse_resolver("127.0.0.1").unwrap().port(), 53);
/// ```
pub fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    let addr = s
        .parse::<SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("bad resolver {s:?}: expected IP:PORT or IP"))?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(format!("bad resolver {s:?}: expected IP:PORT or IP"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_sources() {
        let dns = |name: &str, port, weight| BackendSource::Dns {
            name: name.into(),
            port,
            weight,
            tls: false,
        };
        let dns_tls = |name: &str, port, weight| BackendSource::Dns {
            name: name.into(),
            port,
            weight,
            tls: true,
        };
        let srv = |name: &str, tls| BackendSource::Srv {
            name: name.into(),
            tls,
        };
        for (text, want) in [
            ("dns:web:80", dns("web", 80, 1)),
            ("dns:web:80=3", dns("web", 80, 3)),
            ("dns:web.internal.:8080", dns("web.internal.", 8080, 1)),
            (
                "dns:my-svc.my-ns.svc.cluster.local:8080",
                dns("my-svc.my-ns.svc.cluster.local", 8080, 1),
            ),
            ("srv:_http._tcp.web", srv("_http._tcp.web", false)),
            ("srv:web.service.consul", srv("web.service.consul", false)),
            ("dns:https://web:443", dns_tls("web", 443, 1)),
            (
                "dns:https://web.internal.:8443=4",
                dns_tls("web.internal.", 8443, 4),
            ),
            ("dns:http://web:80=2", dns("web", 80, 2)),
            ("srv:https://_https._tcp.web", srv("_https._tcp.web", true)),
            ("srv:http://_http._tcp.web", srv("_http._tcp.web", false)),
            (
                "127.0.0.1:80=2",
                BackendSource::Static(BackendSpec {
                    addr: "127.0.0.1:80".parse().unwrap(),
                    weight: 2,
                }),
            ),
        ] {
            assert_eq!(text.parse::<BackendSource>(), Ok(want.clone()), "{text:?}");
            assert_eq!(BackendSource::parse_resolving(text), Ok(want), "{text:?}");
        }
        let long = format!("dns:{}:80", vec!["a".repeat(63); 4].join("."));
        for (bad, want) in [
            ("dns:web", SpecError::BadDns("dns:web".into())),
            ("dns:web:", SpecError::BadDns("dns:web:".into())),
            ("dns:web:0", SpecError::BadDns("dns:web:0".into())),
            ("dns:web:65536", SpecError::BadDns("dns:web:65536".into())),
            ("dns:web:http", SpecError::BadDns("dns:web:http".into())),
            ("dns:web:80=0", SpecError::BadWeight("0".into())),
            ("dns:web:80=x", SpecError::BadWeight("x".into())),
            ("dns::80", SpecError::BadName("".into())),
            ("dns:we b:80", SpecError::BadName("we b".into())),
            ("dns:web..x:80", SpecError::BadName("web..x".into())),
            ("dns:[::1]:80", SpecError::BadName("[::1]".into())),
            (
                long.as_str(),
                SpecError::BadName(long[4..long.len() - 3].to_owned()),
            ),
            ("srv:", SpecError::BadName("".into())),
            ("srv:web=2", SpecError::BadSrv("srv:web=2".into())),
            ("srv:web:80", SpecError::BadSrv("srv:web:80".into())),
            ("srv:-/x", SpecError::BadName("-/x".into())),
            ("dns:https://web", SpecError::BadDns("dns:https://web".into())),
            ("dns:https://web:0", SpecError::BadDns("dns:https://web:0".into())),
            ("dns:https://:443", SpecError::BadName("".into())),
            ("dns:https://[::1]:443", SpecError::BadName("[::1]".into())),
            ("dns:https://web/x:443", SpecError::BadName("web/x".into())),
            ("dns:ftp://web:443", SpecError::BadName("ftp://web".into())),
            ("dns:https://web:443=0", SpecError::BadWeight("0".into())),
            ("srv:https://", SpecError::BadName("".into())),
            ("srv:https://web=2", SpecError::BadSrv("srv:https://web=2".into())),
            (
                "srv:https://web:443",
                SpecError::BadSrv("srv:https://web:443".into()),
            ),
            (
                "srv:https://https://web",
                SpecError::BadSrv("srv:https://https://web".into()),
            ),
            ("web:80", SpecError::BadAddress("web:80".into())),
            ("txt:web", SpecError::BadAddress("txt:web".into())),
        ] {
            assert_eq!(bad.parse::<BackendSource>(), Err(want), "{bad:?}");
        }
        assert_eq!(
            BackendSource::parse_resolving("dns:web"),
            Err(SpecError::BadDns("dns:web".into()))
        );
        assert!(matches!(
            BackendSource::parse_resolving("localhost:80"),
            Ok(BackendSource::Static(s)) if s.addr.ip().is_loopback()
        ));
        assert_eq!(dns("web", 80, 3).to_string(), "dns:web:80");
        assert!(dns("web", 80, 3).is_discovered());
        assert!(!dns("web", 80, 3).is_tls());
        assert_eq!(dns_tls("web", 443, 3).to_string(), "dns:https://web:443");
        assert!(dns_tls("web", 443, 3).is_tls() && dns_tls("web", 443, 3).is_discovered());
        assert_eq!(srv("web", true).to_string(), "srv:https://web");
        assert!(srv("web", true).is_tls() && !srv("web", false).is_tls());
        // The file's parser takes the same forms, without a lookup.
        assert_eq!(
            BackendSource::parse_in_file("dns:https://web:443"),
            Ok(dns_tls("web", 443, 1))
        );
        assert_eq!(
            BackendSource::parse_in_file("srv:https://_https._tcp.web"),
            Ok(srv("_https._tcp.web", true))
        );
    }

    #[test]
    fn backend_specs() {
        let ok = |s: &str| s.parse::<BackendSpec>().unwrap();
        assert_eq!(ok("127.0.0.1:80").weight, 1);
        assert_eq!(ok("127.0.0.1:80=7").weight, 7);
        assert_eq!(ok("[::1]:80=2").addr, "[::1]:80".parse().unwrap());
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "127.0.0.1:80=",
            "127.0.0.1:80=-1",
            "127.0.0.1:80=x",
            "127.0.0.1:80=0",
            "127.0.0.1:80=1000001",
            "=3",
        ] {
            assert!(bad.parse::<BackendSpec>().is_err(), "{bad:?} should be refused");
            assert!(BackendSpec::resolve(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn from_str_refuses_host_names_and_resolve_looks_them_up() {
        // (an IPv6 address needs its brackets for the port to be told apart)
        for host in [
            "localhost:8080",
            "localhost:8080=2",
            "example.invalid:80",
            "::1:80",
        ] {
            assert_eq!(
                host.parse::<BackendSpec>(),
                Err(SpecError::BadAddress(host.to_owned())),
                "FromStr must not look {host:?} up"
            );
        }
        let spec = BackendSpec::resolve("localhost:8080=2").unwrap();
        assert!(spec.addr.ip().is_loopback(), "{spec:?}");
        assert_eq!((spec.addr.port(), spec.weight), (8080, 2));
        // IP addresses need no lookup and come out the same either way.
        for ip in ["127.0.0.1:80=7", "[::1]:80"] {
            assert_eq!(BackendSpec::resolve(ip), ip.parse());
        }
        for (bad, want) in [
            ("localhost", SpecError::BadHostAddress("localhost".into())),
            (":80", SpecError::BadHostAddress(":80".into())),
            ("localhost:x", SpecError::BadHostAddress("localhost:x".into())),
            ("localhost:0", SpecError::BadHostAddress("localhost:0".into())),
            ("localhost:80=0", SpecError::BadWeight("0".into())),
        ] {
            assert_eq!(BackendSpec::resolve(bad), Err(want), "{bad:?}");
        }
    }

    #[test]
    fn https_and_http_backends() {
        let https = |host: &str, addr: &str, weight| BackendSource::Https {
            spec: BackendSpec {
                addr: addr.parse().unwrap(),
                weight,
            },
            host: host.into(),
        };
        for (text, want) in [
            ("https://127.0.0.1:443", https("127.0.0.1", "127.0.0.1:443", 1)),
            (
                "https://127.0.0.1:8443=3",
                https("127.0.0.1", "127.0.0.1:8443", 3),
            ),
            ("https://[::1]:443", https("::1", "[::1]:443", 1)),
        ] {
            assert_eq!(text.parse::<BackendSource>(), Ok(want.clone()), "{text:?}");
            assert_eq!(BackendSource::parse_resolving(text), Ok(want.clone()), "{text:?}");
            assert_eq!(BackendSource::parse_in_file(text), Ok(want.clone()), "{text:?}");
            assert_eq!(
                want.to_string(),
                format!(
                    "{}{}",
                    text.split('=').next().unwrap(),
                    match text.split_once('=') {
                        Some((_, w)) => format!("={w}"),
                        None => "=1".to_owned(),
                    }
                )
            );
        }
        // A name: refused without a lookup, looked up by the other two.
        let named = "https://localhost:8443=2";
        assert_eq!(
            named.parse::<BackendSource>(),
            Err(SpecError::BadAddress(named.into()))
        );
        for parsed in [
            BackendSource::parse_resolving(named),
            BackendSource::parse_in_file(named),
        ] {
            match parsed {
                Ok(BackendSource::Https { spec, host }) => {
                    assert!(spec.addr.ip().is_loopback());
                    assert_eq!(
                        (spec.addr.port(), spec.weight, host.as_str()),
                        (8443, 2, "localhost")
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(!https("a", "127.0.0.1:1", 1).is_discovered());
        assert_eq!(https("a", "127.0.0.1:1", 4).fixed().map(|s| s.weight), Some(4));
        // http:// is the plain form, spelled out.
        assert_eq!(
            "http://127.0.0.1:80=2".parse::<BackendSource>(),
            "127.0.0.1:80=2".parse::<BackendSource>()
        );
        assert!(matches!(
            BackendSource::parse_resolving("http://localhost:80"),
            Ok(BackendSource::Static(s)) if s.addr.ip().is_loopback()
        ));
        for bad in [
            "https://localhost",
            "https://127.0.0.1",
            "https://localhost:0",
            "https://127.0.0.1:0",
            "https://localhost:99999",
            "https://local host:443",
            "https://localhost:443/",
            "https://[::1:443",
            "https://:443",
            "https://",
            "https://user@host:443",
        ] {
            let want = Err(SpecError::BadHttps(bad.into()));
            assert_eq!(bad.parse::<BackendSource>(), want, "{bad:?}");
            assert_eq!(BackendSource::parse_resolving(bad), want, "{bad:?}");
            assert_eq!(BackendSource::parse_in_file(bad), want, "{bad:?}");
        }
        assert_eq!(
            BackendSource::parse_resolving("https://localhost:443=0"),
            Err(SpecError::BadWeight("0".into()))
        );
        // The file takes no plain host name (that is dns:NAME:PORT there).
        assert_eq!(
            BackendSource::parse_in_file("localhost:80"),
            Err(SpecError::BadAddress("localhost:80".into()))
        );
    }

    #[test]
    fn modes() {
        assert_eq!("tcp".parse::<Mode>(), Ok(Mode::Tcp));
        assert!("udp".parse::<Mode>().is_err());
    }
}
