//! A strict, zero-copy HTTP/1.1 core: the wire format (pure, no I/O) and one async
//! connection driver on tokio.
//!
//! The pure layer parses request and response heads on top of `httparse`, decides
//! body framing by RFC 9112 §6.3, decodes and encodes the chunked coding, and maps
//! every malformed input to one [`Error`] with its status code. Header names and
//! values are spans into the read buffer: nothing is allocated per header.
//!
//! The driver ([`serve_connection`], [`Server`]) runs one connection loop over any
//! transport ([`Io`]: an `AsyncRead + AsyncWrite` stream that knows how to end
//! itself after its last bytes; [`AnyIo`] makes one of any stream): it reads heads
//! within [`Limits`], hands each request to a [`Service`], writes responses in order
//! (pipelined answers in one write), keeps connections alive and closes them
//! whenever framing is uncertain.
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

mod body_codec;
mod chunked;
mod client;
mod date;
mod driver;
mod error;
mod framing;
mod headers;
mod limits;
mod request;
mod response;

pub use body_codec::{BodyDecoder, BodyEncoder};
pub use chunked::{ChunkedDecoder, ChunkedEncoder, Progress};
pub use client::{ClientConn, ReadHeadError, ResponseBody, SendError};
pub use date::{with_date, with_date_at, DATE_LEN};
pub use driver::{
    accept_loop, connection_capacity, listen, raise_fd_limit, serve_connection, AnyIo, Body, BodyError,
    FdLimit, Finish, HeaderBlock, HeaderBlockBuilder, Io, LazyTcpStream, LogValue, Request, RequestBody,
    Response, Server, ServerHandle, Service, ShutdownSignal, ShutdownTrigger, Upgraded,
};
pub use error::Error;
pub use framing::{parse_content_length, BodyKind};
pub use headers::{for_each_token, is_hop_by_hop, list_contains, HeaderIter, HOP_BY_HOP};
pub use limits::{Limits, MAX_HEADERS_CAP};
pub use request::{parse_request, Method, ParsedRequest, RequestHead, Version};
pub use response::{
    parse_response, reason_phrase, write_content_length, write_header, write_request_line, write_status_line,
    ParsedResponse, ResponseHead,
};
