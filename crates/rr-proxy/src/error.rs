//! The typed errors of the library.

use std::net::SocketAddr;

/// What can go wrong configuring a proxy or changing its backends at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy was built without a single backend.
    #[error("no backends: give at least one backend address")]
    NoBackends,
    /// A backend weight of 0 (weights are 1 or more).
    #[error("invalid weight for backend {0}: weights are whole numbers from 1")]
    ZeroWeight(SocketAddr),
    /// The same backend address was given twice.
    #[error("backend {0} is already configured")]
    DuplicateBackend(SocketAddr),
    /// No backend has this address.
    #[error("no backend {0}")]
    UnknownBackend(SocketAddr),
    /// A configuration value is out of range.
    #[error("invalid setting: {0}")]
    InvalidConfig(&'static str),
    /// No pool has this name.
    #[error("no pool {0:?}")]
    UnknownPool(String),
    /// A `dns:` or `srv:` source cannot be set up.
    #[error("{name}: {reason}")]
    Discovery {
        /// The source (`dns:NAME:PORT`, `srv:NAME`).
        name: String,
        /// Why not.
        reason: String,
    },
    /// A reload changes a setting that only a restart can change.
    #[error("{0}: changing it needs a restart (the running configuration is kept)")]
    NeedsRestart(&'static str),
    /// The name of an `https://` backend is neither a DNS name nor an IP address.
    #[error("bad backend name {0:?} for TLS: expected a DNS name or an IP address")]
    BadServerName(String),
    /// The trust anchors for `https://` backends could not be loaded.
    #[error("TLS to backends: {0}")]
    BackendTls(String),
}

/// Why a `--backend ADDR[=WEIGHT]` specification could not be parsed
/// (see [`BackendSpec`](crate::BackendSpec)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The address part is not `IP:PORT` with a port from 1 (what
    /// [`BackendSpec`](crate::BackendSpec)'s `FromStr` takes; a host name is an
    /// error there, never looked up).
    #[error("bad backend address {0:?}: expected IP:PORT")]
    BadAddress(String),
    /// The address part is neither `IP:PORT` nor `HOST:PORT`, or its port is 0
    /// (from [`BackendSpec::resolve`](crate::BackendSpec::resolve)).
    #[error("bad backend address {0:?}: expected IP:PORT or HOST:PORT")]
    BadHostAddress(String),
    /// `HOST:PORT` did not resolve to any address
    /// (from [`BackendSpec::resolve`](crate::BackendSpec::resolve)).
    #[error("cannot resolve backend address {addr:?}: {reason}")]
    Unresolved {
        /// The `HOST:PORT` given.
        addr: String,
        /// What the resolver said.
        reason: String,
    },
    /// An `https://` entry is not `https://HOST:PORT[=WEIGHT]` (HOST a DNS
    /// name or an IP address, `[IPv6]` in brackets; a port from 1; no path).
    #[error("bad https backend {0:?}: expected https://HOST:PORT[=WEIGHT]")]
    BadHttps(String),
    /// The weight part is not a whole number from 1 to 1 000 000.
    #[error("bad backend weight {0:?}: expected a whole number from 1 to 1000000")]
    BadWeight(String),
    /// A `dns:` entry is not `dns:[https://]NAME:PORT[=WEIGHT]` with a port
    /// from 1 (from [`BackendSource`](crate::BackendSource)'s `FromStr`).
    #[error("bad DNS backend {0:?}: expected dns:NAME:PORT[=WEIGHT] or dns:https://NAME:PORT[=WEIGHT]")]
    BadDns(String),
    /// An `srv:` entry is not `srv:[https://]NAME`; it takes no port and no
    /// weight (the SRV records give both).
    #[error("bad SRV backend {0:?}: expected srv:NAME or srv:https://NAME (the SRV records give ports and weights)")]
    BadSrv(String),
    /// The name in a `dns:` or `srv:` entry is not a DNS name (labels of 1 to
    /// 63 letters, digits, `-` or `_`, separated by dots, 253 bytes at most).
    #[error("bad DNS name {0:?}: expected labels of letters, digits, - or _ separated by dots")]
    BadName(String),
}

/// Why the admin endpoint cannot be set up as asked (see
/// [`AdminSecurity`](crate::AdminSecurity) and [`AdminToken`](crate::AdminToken)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The token is empty.
    #[error("the admin token is empty")]
    EmptyToken,
    /// The token has a space, a control character or a non-ASCII character.
    #[error("the admin token must be visible ASCII characters without spaces")]
    BadToken,
    /// The token is shorter than [`MIN_TOKEN_LEN`](crate::admin::MIN_TOKEN_LEN).
    #[error("the admin token is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)")]
    ShortToken,
    /// The token file cannot be read or does not hold a good token.
    #[error("admin token file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra admin host name is not a host name or IP literal.
    #[error("bad admin host name {0:?}: expected a name or IP address without a port")]
    BadHost(String),
    /// The admin endpoint would listen beyond loopback without a token.
    #[error("the admin endpoint on {0} is reachable from other machines: it needs a bearer token")]
    TokenRequired(SocketAddr),
    /// The listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why a strategy setting could not be parsed (see
/// [`StrategyOptions`](crate::StrategyOptions)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// A cookie name that is not an RFC 6265 token (letters, digits and
    /// ``!#$%&'*+-.^_`|~``), or longer than 64 bytes.
    #[error("bad cookie name {0:?}: expected 1 to 64 letters, digits or !#$%&'*+-.^_`|~")]
    BadCookieName(String),
    /// A hash key other than `client-ip` or `header:NAME` (NAME a header name).
    #[error("bad hash key {0:?}: expected client-ip or header:NAME")]
    BadHashKey(String),
    /// A bounded-load factor that is not 0 (off) or a number from 1 to 100.
    #[error("bad hash balance factor {0:?}: expected a number from 1 to 100 (e.g. 1.25), or 0 for no bound")]
    BadBalance(String),
}
