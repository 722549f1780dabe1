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
}

/// Why a `--backend ADDR[=WEIGHT]` specification could not be parsed
/// (see [`BackendSpec`](crate::BackendSpec)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The address part is not `IP:PORT` (or `HOST:PORT` that resolves).
    #[error("bad backend address {0:?}: expected IP:PORT or HOST:PORT")]
    BadAddress(String),
    /// The weight part is not a whole number from 1 to 1 000 000.
    #[error("bad backend weight {0:?}: expected a whole number from 1 to 1000000")]
    BadWeight(String),
}
