//! Size and time limits applied to every connection.

use std::time::Duration;

/// Bounds on what a peer may send, and how slowly.
///
/// The defaults suit a server on the public internet: large enough for real
/// browsers (long cookies, long query strings), small enough that a slow or
/// hostile client costs little memory and cannot hold a connection forever.
///
/// ```
/// use std::time::Duration;
/// let limits = http_core::Limits {
///     header_timeout: Duration::from_secs(5),
///     ..http_core::Limits::default()
/// };
/// assert_eq!(limits.max_headers, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest request target in bytes. Default 8 KiB (nginx's line limit); over it: 414.
    pub max_uri_len: usize,
    /// Largest head (request line and all headers) in bytes. Default 32 KiB; over it: 431.
    pub max_head_len: usize,
    /// Most header lines in one head. Default 100 (capped at 256); over it: 431.
    pub max_headers: usize,
    /// Largest request body in bytes. Default 1 GiB; over it: 413.
    pub max_body_len: u64,
    /// Longest chunk-size line (size and extensions) in bytes. Default 1 KiB.
    pub max_chunk_line_len: usize,
    /// Largest trailer section in bytes. Default 8 KiB.
    pub max_trailer_len: usize,
    /// Time from the first byte of a request to the end of its head. Default 10 s; over it: 408.
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection is kept open waiting for a request. Default 60 s.
    pub keep_alive_timeout: Duration,
    /// Longest wait for the next bytes of a request body. Default 30 s.
    pub body_timeout: Duration,
    /// Longest wait for the peer to accept response bytes. Default 30 s.
    pub write_timeout: Duration,
}

/// The hard cap on [`Limits::max_headers`]: the parser's header table lives on the stack.
pub const MAX_HEADERS_CAP: usize = 256;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri_len: 8 * 1024,
            max_head_len: 32 * 1024,
            max_headers: 100,
            max_body_len: 1 << 30,
            max_chunk_line_len: 1024,
            max_trailer_len: 8 * 1024,
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}
