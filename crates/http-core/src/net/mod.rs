//! Transports and the operating system's side: the [`Io`] trait every
//! connection runs over (with its "last write" method), [`LazyTcpStream`], the
//! listener ([`listen`]), TLS ([`TlsConfig`]) and the open-file limit
//! ([`raise_fd_limit`], [`connection_capacity`]).

pub(crate) mod fd_limit;
pub(crate) mod io;
pub(crate) mod lazy;
pub(crate) mod listener;
pub(crate) mod tls;
pub(crate) mod tls_stream;
pub(crate) mod transport;

pub use fd_limit::{connection_capacity, raise_fd_limit, FdLimit};
pub use io::{AnyIo, Finish, Io};
pub use lazy::LazyTcpStream;
pub use listener::listen;
pub use tls::{CertPair, TlsCollector, TlsConfig, TlsError, TlsStats, ALPN_PROTOCOLS};
pub use tls_stream::TlsStream;
