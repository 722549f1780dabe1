//! A strict, zero-copy HTTP/1.1 core for both roles: the wire format (pure, no
//! I/O), a server driver, a client connection, and the transports under them.
//!
//! | module | what it holds | start with |
//! |---|---|---|
//! | [`wire`] | request and response heads, body framing (RFC 9112 §6.3), the body decoder and encoder both roles share, limits, the one [`Error`] | [`parse_request`], [`parse_response`], [`BodyDecoder`], [`Limits`] |
//! | [`server`] | the connection loop and accept loop every server here runs on | [`Service`], [`Request`], [`Response`], [`Server`] |
//! | [`client`] | one HTTP/1.1 exchange at a time on a connection to a server (a proxy's upstream side, health checks) | [`ClientConn`] |
//! | [`net`] | the transport trait, the lazily registered TCP stream, the listener, TLS, the open-file limit | [`Io`], [`listen`], [`TlsConfig`], [`raise_fd_limit`] |
//! | [`metrics`] | lock-free measurements for a server's metrics: duration histograms, responses by status, open connections | [`metrics::ResponseMetrics`], [`Server::connection_gauge`] |
//!
//! The everyday names are also at the crate root. Every malformed input maps to
//! one [`Error`] with its status code; header names and values are spans into the
//! read buffer, so nothing is allocated per header; memory per connection is
//! bounded whatever the peer sends or fails to read.
//!
//! A server: implement [`Service`] and run it with [`Server`] (or
//! [`serve_connection`] on one stream of any [`Io`] transport).
//!
//! ```no_run
//! use http_core::{Request, Response, Server, Service};
//!
//! struct Hello;
//! impl Service for Hello {
//!     async fn call(&self, req: Request<'_>) -> Response {
//!         Response::text(200, format!("hello from {}\n", req.head.path()))
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! Server::new(Hello).serve(listener, std::future::pending()).await
//! # }
//! ```
//!
//! The wire format alone:
//!
//! ```
//! use http_core::{parse_request, BodyKind, Error, Limits};
//! let limits = Limits::default();
//! let req = b"GET /page.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
//! let parsed = parse_request(req, &limits).unwrap().expect("complete");
//! assert_eq!(parsed.len(), req.len());
//! assert_eq!(parsed.body(), BodyKind::Empty);
//! let smuggle = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
//! assert_eq!(parse_request(smuggle, &limits), Err(Error::LengthWithTransferEncoding));
//! ```
//!
//! A client exchange is shown on [`ClientConn`].
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// A 256-entry table of the bytes `$c` for which `$pred` holds, built at compile
/// time: a byte class tested with one load instead of a chain of comparisons.
macro_rules! byte_table {
    (|$c:ident| $pred:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $c = i as u8;
            table[i] = $pred;
            i += 1;
        }
        table
    }};
}

pub(crate) mod buf_pool;
pub mod client;
pub(crate) mod h2;
pub mod metrics;
pub mod net;
pub mod server;
pub mod units;
pub mod wire;

// The everyday names, at the root.
pub use client::{ClientConn, ReadHeadError, ResponseBody, SendError};
pub use h2::{serve_h2_connection, H2Limits, PREFACE as H2_PREFACE};
pub use net::{
    connection_capacity, listen, raise_fd_limit, AnyIo, CertPair, FdLimit, Finish, Io, LazyTcpStream,
    TlsConfig, TlsError,
};
pub use server::{
    accept_loop, https_redirect, serve_connection, AccessLogFormat, AccessRecord, Body, BodyError,
    HeaderBlock, HeaderBlockBuilder, LogValue, RedirectToHttps, Request, RequestBody, Response, Server,
    ServerHandle, Service, ShutdownSignal, ShutdownTrigger, Upgraded,
};
pub use wire::{
    for_each_token, is_hop_by_hop, list_contains, parse_content_length, parse_request, parse_response,
    reason_phrase, write_content_length, write_header, write_request_line, write_status_line, BodyDecoder,
    BodyEncoder, BodyKind, ChunkedDecoder, ChunkedEncoder, Error, HeaderIter, Limits, Method, ParsedRequest,
    ParsedResponse, Progress, RequestHead, ResponseHead, Version, HOP_BY_HOP, MAX_HEADERS_CAP,
};
// The benchmarks' own measuring points: not part of the API.
#[doc(hidden)]
pub use wire::{with_date, with_date_at, DATE_LEN};
