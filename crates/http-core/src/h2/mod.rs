//! HTTP/2 onto the same [`Service`](crate::Service): one task per connection
//! reads the frames (our own implementation of RFC 9113 and of HPACK, RFC
//! 7541) and runs every stream's service call on that task, each request mapped to the [`RequestHead`](crate::RequestHead)
//! the strict HTTP/1.1 parser would give its HTTP/1.1 form.
//!
//! Entry points: [`serve_h2_connection`] on any [`Io`](crate::Io) transport
//! (after TLS with ALPN `h2`, or a plain stream known to speak HTTP/2), and
//! [`Server::h2c`](crate::Server::h2c), which serves HTTP/2 with prior
//! knowledge on a plain listener beside HTTP/1.1 by the client preface.

mod body;
mod conn;
mod frame;
mod hpack;
mod request;
mod response;

pub(crate) use body::H2Body;
pub(crate) use conn::serve as conn_serve;
pub use conn::serve_h2_connection;

/// The client connection preface of RFC 9113 §3.4: a plain connection that
/// starts with these 24 bytes speaks HTTP/2 with prior knowledge (h2c).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP/2 settings and abuse limits of a connection, beside the
/// [`Limits`](crate::Limits) both protocols share (the header list size is
/// [`Limits::max_head_len`](crate::Limits::max_head_len); the header, body,
/// idle and write timeouts apply as for HTTP/1.1).
///
/// What a connection can hold, whatever the peer does: request bodies not
/// yet read by the services, at most [`initial_connection_window`](Self::initial_connection_window)
/// (1 MiB by default); response frames queued for a peer that does not read,
/// at most [`max_send_buffer`](Self::max_send_buffer) plus one frame per
/// stream (bodies held in memory, such as cached files, are shared, not
/// copied); control frames (PING and SETTINGS acknowledgements, resets)
/// queued up to twice that, past which the peer's bytes are no longer read;
/// one header block being decoded, bounded by the header list size; the
/// streams' service calls and their state.
///
/// ```
/// let h2 = http_core::H2Limits {
///     max_concurrent_streams: 32,
///     ..http_core::H2Limits::default()
/// };
/// assert_eq!(h2.max_frame_size, 16 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Limits {
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`);
    /// further ones are refused with `REFUSED_STREAM`. It bounds the service
    /// calls in flight on one connection. Default 100 (h2o's; nginx has 128).
    pub max_concurrent_streams: u32,
    /// Request body bytes a client may send on one stream before the service
    /// reads them (`SETTINGS_INITIAL_WINDOW_SIZE`). Default 256 KiB: an upload
    /// runs at full speed over a path with up to 256 KiB in flight.
    pub initial_stream_window: u32,
    /// Request body bytes a client may send on the whole connection before the
    /// services read them: the bound on buffered request bodies per
    /// connection. Default 1 MiB.
    pub initial_connection_window: u32,
    /// Largest frame payload accepted (`SETTINGS_MAX_FRAME_SIZE`). Default
    /// (and least) 16 KiB.
    pub max_frame_size: u32,
    /// Response bytes queued on the connection beyond what the socket took:
    /// DATA is framed for the streams only while less waits. Default 64 KiB.
    pub max_send_buffer: usize,
    /// Streams the client opened and reset before the server took them up;
    /// past this many at once the connection is closed with `GOAWAY
    /// ENHANCE_YOUR_CALM` (the rapid-reset attack, CVE-2023-44487). Default 20.
    pub max_pending_accept_reset_streams: usize,
    /// Streams the server had to reset for the client's errors on one
    /// connection; past this the connection is closed with `GOAWAY
    /// ENHANCE_YOUR_CALM` (the "MadeYouReset" variant). Default 100.
    pub max_local_error_reset_streams: usize,
}

impl Default for H2Limits {
    fn default() -> Self {
        H2Limits {
            max_concurrent_streams: 100,
            initial_stream_window: 256 * 1024,
            initial_connection_window: 1024 * 1024,
            max_frame_size: 16 * 1024,
            max_send_buffer: 64 * 1024,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 100,
        }
    }
}
