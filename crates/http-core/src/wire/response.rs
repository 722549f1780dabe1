//! Response heads: parsing what an upstream server sends, and writing our own.

use bytes::{BufMut, Bytes, BytesMut};

use super::framing::{merge_content_length, BodyKind, TransferCoding};
use super::headers::{for_each_token, HeaderIter, HeaderSpan, Span};
use super::limits::MAX_HEADERS_CAP;
use super::request::{Method, Version};
use crate::{Error, Limits};

/// A parsed response head (as a proxy reads it from a backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    bytes: Bytes,
    status: u16,
    version: Version,
    reason: Span,
    body: BodyKind,
    keep_alive: bool,
    headers: Vec<HeaderSpan>,
}

/// Where the parts of a response head lie; see [`parse_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    len: usize,
    head: ResponseHead,
}

impl ParsedResponse {
    /// Bytes of the buffer the head took.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the body that follows is framed.
    pub fn body(&self) -> BodyKind {
        self.head.body
    }

    /// The status code (no need to attach the bytes to read it).
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// Joins the layout with the head's bytes: exactly the first [`len`](Self::len)
    /// bytes of the buffer it was parsed from.
    pub fn into_head(self, bytes: Bytes) -> ResponseHead {
        debug_assert_eq!(bytes.len(), self.len);
        ResponseHead { bytes, ..self.head }
    }
}

impl ResponseHead {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase as sent (may be empty; may hold obs-text).
    pub fn reason(&self) -> &[u8] {
        self.reason.get(&self.bytes)
    }

    /// The version the server answered with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// How the body is framed, given the request it answers.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// Whether the server keeps the connection open after this response.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// All header lines in order.
    pub fn headers(&self) -> HeaderIter<'_> {
        HeaderIter::new(&self.bytes, &self.headers)
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find_value(name)
    }

    /// The raw bytes of the head.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// Parses a response head at the start of `buf`, answering a request with method
/// `method`, and decides its body framing by RFC 9112 §6.3.
///
/// Every failure is [`Error::BadResponse`] (a proxy answers it with 502), except an
/// oversized head ([`Error::HeadTooLarge`]).
///
/// ```
/// use http_core::{parse_response, BodyKind, Limits, Method};
/// let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
/// let parsed = parse_response(buf, Method::Get, &Limits::default()).unwrap().unwrap();
/// assert_eq!(parsed.body(), BodyKind::Length(2));
/// let head = parsed.into_head(bytes::Bytes::from_static(&buf[..buf.len() - 2]));
/// assert_eq!(head.status(), 200);
/// ```
pub fn parse_response(buf: &[u8], method: Method, limits: &Limits) -> Result<Option<ParsedResponse>, Error> {
    let mut storage = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut res = httparse::Response::new(&mut []);
    let status = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut storage,
    ) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadTooLarge),
        Err(_) => return Err(Error::BadResponse),
    };
    let len = match status {
        httparse::Status::Partial if buf.len() > limits.max_head_len => return Err(Error::HeadTooLarge),
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(n) => n,
    };
    if len > limits.max_head_len || res.headers.len() > limits.max_headers.min(MAX_HEADERS_CAP) {
        return Err(Error::HeadTooLarge);
    }
    let (Some(code), Some(minor)) = (res.code, res.version) else {
        return Err(Error::BadResponse);
    };
    if !(100..=999).contains(&code) {
        return Err(Error::BadResponse);
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let mut headers = Vec::with_capacity(res.headers.len());
    let mut content_length = None;
    let mut te = TransferCoding::default();
    let (mut close, mut keep) = (false, false);
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        headers.push(HeaderSpan {
            name: Span::of(buf, name),
            value: Span::of(buf, h.value),
        });
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                content_length =
                    merge_content_length(content_length, h.value).map_err(|_| Error::BadResponse)?;
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => te.add(h.value),
            10 if name.eq_ignore_ascii_case(b"connection") => for_each_token(h.value, |t| {
                close |= t.eq_ignore_ascii_case(b"close");
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }),
            _ => {}
        }
    }
    let no_body = method == Method::Head || (100..200).contains(&code) || code == 204 || code == 304;
    let body = if no_body || (method == Method::Connect && (200..300).contains(&code)) {
        BodyKind::Empty
    } else if te.present {
        // A server sending both is either broken or attacking the framing.
        if content_length.is_some() || version == Version::Http10 {
            return Err(Error::BadResponse);
        }
        te.response_framing()?
    } else {
        match content_length {
            Some(0) => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
            None => BodyKind::UntilClose,
        }
    };
    let keep_alive = body != BodyKind::UntilClose
        && match version {
            Version::Http10 => keep && !close,
            Version::Http11 | Version::Http2 => !close,
        };
    let reason = Span::of(buf, res.reason.unwrap_or_default().as_bytes());
    Ok(Some(ParsedResponse {
        len,
        head: ResponseHead {
            bytes: Bytes::new(),
            status: code,
            version,
            reason,
            body,
            keep_alive,
            headers,
        },
    }))
}

/// The canonical reason phrase of a status code ("" when it has none here).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Writes `HTTP/1.1 STATUS REASON\r\n` into `out`.
pub fn write_status_line(out: &mut BytesMut, status: u16) {
    out.put_slice(b"HTTP/1.1 ");
    let mut b = itoa::Buffer::new();
    out.put_slice(b.format(status).as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason_phrase(status).as_bytes());
    out.put_slice(b"\r\n");
}

/// Writes `METHOD TARGET HTTP/1.1\r\n` into `out`: the request line of the
/// client role, which always speaks HTTP/1.1. The caller has checked `target`
/// (it comes from a parsed request, or is our own).
///
/// ```
/// let mut out = bytes::BytesMut::new();
/// http_core::write_request_line(&mut out, "GET", "/health");
/// assert_eq!(&out[..], b"GET /health HTTP/1.1\r\n");
/// ```
pub fn write_request_line(out: &mut BytesMut, method: &str, target: &str) {
    out.reserve(method.len() + target.len() + 12);
    out.put_slice(method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
}

/// Writes one `name: value\r\n` header line into `out`, as it is: the caller
/// has checked the name and value (they come from a parsed head, or are our own).
pub fn write_header(out: &mut BytesMut, name: impl AsRef<[u8]>, value: &[u8]) {
    let name = name.as_ref();
    out.reserve(name.len() + value.len() + 4);
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Writes `Content-Length: n\r\n` into `out`.
pub fn write_content_length(out: &mut BytesMut, n: u64) {
    let mut b = itoa::Buffer::new();
    write_header(out, "Content-Length", b.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(raw: &[u8], method: Method) -> Result<BodyKind, Error> {
        parse_response(raw, method, &Limits::default())
            .map(|p| p.map(|p| p.body()).unwrap_or(BodyKind::Empty))
    }

    #[test]
    fn response_framing_table() {
        let cases: &[(&[u8], Method, Result<BodyKind, Error>)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::Get,
                Ok(BodyKind::Length(5)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::Head,
                Ok(BodyKind::Empty),
            ),
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                Method::Get,
                Ok(BodyKind::Empty),
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                Method::Get,
                Ok(BodyKind::Empty),
            ),
            (
                b"HTTP/1.1 100 Continue\r\n\r\n",
                Method::Post,
                Ok(BodyKind::Empty),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::Get,
                Ok(BodyKind::Chunked),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", Method::Get, Ok(BodyKind::UntilClose)),
            (b"HTTP/1.0 200 OK\r\n\r\n", Method::Get, Ok(BodyKind::UntilClose)),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Method::Get,
                Ok(BodyKind::Empty),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::Get,
                Err(Error::BadResponse),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Method::Get,
                Err(Error::BadResponse),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
                Method::Get,
                Err(Error::BadResponse),
            ),
            (b"HTTP/1.1 2000 OK\r\n\r\n", Method::Get, Err(Error::BadResponse)),
            (
                b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
                Method::Get,
                Err(Error::BadResponse),
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
                Method::Get,
                Err(Error::BadResponse),
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
                Method::Get,
                Err(Error::BadResponse),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Method::Get,
                Err(Error::BadResponse),
            ),
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::Get,
                Err(Error::BadResponse),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", Method::Connect, Ok(BodyKind::Empty)),
        ];
        for (raw, method, want) in cases {
            assert_eq!(framing(raw, *method), *want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn response_keep_alive_and_fields() {
        let raw = b"HTTP/1.0 200 Fine\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi";
        let p = parse_response(raw, Method::Get, &Limits::default())
            .unwrap()
            .unwrap();
        let len = p.len();
        let head = p.into_head(Bytes::copy_from_slice(&raw[..len]));
        assert_eq!(len, raw.len() - 2);
        assert!(head.keep_alive());
        assert_eq!(head.reason(), b"Fine");
        assert_eq!(head.version(), Version::Http10);
        assert_eq!(head.header("content-length"), Some(&b"2"[..]));
        let raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n";
        assert!(
            !parse_response(raw, Method::Get, &Limits::default())
                .unwrap()
                .unwrap()
                .head
                .keep_alive
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nA:", Method::Get, &Limits::default()),
            Ok(None)
        );
    }

    #[test]
    fn writes_status_and_headers() {
        let mut out = BytesMut::new();
        write_status_line(&mut out, 404);
        write_header(&mut out, "Content-Type", b"text/plain");
        write_content_length(&mut out, 12);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"[..out.len()]
                .as_ref()
        );
    }
}
