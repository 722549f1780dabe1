//! The one error type of the wire layer, and the status code each error maps to.

/// Everything that can be wrong with bytes received from a peer.
///
/// Each variant maps to the status code a server answers with ([`Error::status`]).
/// After any of these the framing of the connection can no longer be trusted, so
/// the driver always closes the connection after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request line is not `method SP request-target SP HTTP-version`.
    #[error("malformed request line")]
    BadRequestLine,
    /// The request target is not in origin, absolute, authority or asterisk form
    /// (or uses a form the method does not allow).
    #[error("malformed request target")]
    BadTarget,
    /// A header line is malformed: bad name, whitespace before the colon,
    /// obs-fold, or CR, LF or NUL inside a value.
    #[error("malformed header line")]
    BadHeader,
    /// An HTTP/1.1 request without a `Host` header.
    #[error("missing Host header")]
    MissingHost,
    /// More than one `Host` header, or a `Host` value that is not a host.
    #[error("invalid or repeated Host header")]
    BadHost,
    /// `Content-Length` is empty, not digits, overflows, or lists differing values.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` are present.
    #[error("both Content-Length and Transfer-Encoding")]
    LengthWithTransferEncoding,
    /// `Transfer-Encoding` is malformed, repeats `chunked`, does not end in
    /// `chunked`, or appears in an HTTP/1.0 message.
    #[error("invalid Transfer-Encoding")]
    BadTransferEncoding,
    /// `Transfer-Encoding` names a coding this implementation does not decode.
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// A chunk-size line or chunk delimiter is malformed or the size overflows.
    #[error("malformed chunked body")]
    BadChunk,
    /// The request target is longer than [`Limits::max_uri_len`](crate::Limits::max_uri_len).
    #[error("request target too long")]
    UriTooLong,
    /// The head is larger than [`Limits::max_head_len`](crate::Limits::max_head_len).
    #[error("request head too large")]
    HeadTooLarge,
    /// More headers than [`Limits::max_headers`](crate::Limits::max_headers).
    #[error("too many headers")]
    TooManyHeaders,
    /// The body is larger than [`Limits::max_body_len`](crate::Limits::max_body_len).
    #[error("body too large")]
    BodyTooLarge,
    /// An HTTP version other than 1.0 and 1.1.
    #[error("HTTP version not supported")]
    VersionNotSupported,
    /// The head did not arrive within [`Limits::header_timeout`](crate::Limits::header_timeout).
    #[error("request head timed out")]
    HeaderTimeout,
    /// The request body stalled for longer than [`Limits::body_timeout`](crate::Limits::body_timeout).
    #[error("request body timed out")]
    BodyTimeout,
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
    /// A response head from an upstream server is malformed.
    #[error("malformed response")]
    BadResponse,
}

impl Error {
    /// The status code a server answers this error with.
    ///
    /// ```
    /// assert_eq!(http_core::Error::UriTooLong.status(), 414);
    /// ```
    pub fn status(self) -> u16 {
        match self {
            Error::BadRequestLine
            | Error::BadTarget
            | Error::BadHeader
            | Error::MissingHost
            | Error::BadHost
            | Error::BadContentLength
            | Error::LengthWithTransferEncoding
            | Error::BadTransferEncoding
            | Error::BadChunk
            | Error::UnexpectedEof => 400,
            Error::UnsupportedTransferCoding => 501,
            Error::UriTooLong => 414,
            Error::HeadTooLarge | Error::TooManyHeaders => 431,
            Error::BodyTooLarge => 413,
            Error::VersionNotSupported => 505,
            Error::HeaderTimeout | Error::BodyTimeout => 408,
            Error::BadResponse => 502,
        }
    }

    /// A short name for the error, the same in every release: the `refused=`
    /// reason of the access line and a label for metrics.
    ///
    /// ```
    /// assert_eq!(http_core::Error::HeaderTimeout.code(), "header_timeout");
    /// ```
    pub fn code(self) -> &'static str {
        match self {
            Error::BadRequestLine => "bad_request_line",
            Error::BadTarget => "bad_target",
            Error::BadHeader => "bad_header",
            Error::MissingHost => "missing_host",
            Error::BadHost => "bad_host",
            Error::BadContentLength => "bad_content_length",
            Error::LengthWithTransferEncoding => "length_with_transfer_encoding",
            Error::BadTransferEncoding => "bad_transfer_encoding",
            Error::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Error::BadChunk => "bad_chunk",
            Error::UriTooLong => "uri_too_long",
            Error::HeadTooLarge => "head_too_large",
            Error::TooManyHeaders => "too_many_headers",
            Error::BodyTooLarge => "body_too_large",
            Error::VersionNotSupported => "version_not_supported",
            Error::HeaderTimeout => "header_timeout",
            Error::BodyTimeout => "body_timeout",
            Error::UnexpectedEof => "unexpected_eof",
            Error::BadResponse => "bad_response",
        }
    }
}
