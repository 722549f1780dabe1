//! Request-head parsing: incremental, strict, zero-copy.

use std::mem::MaybeUninit;

use bytes::Bytes;

use super::framing::{merge_content_length, BodyKind, TransferCoding};
use super::headers::{for_each_token, HeaderIter, HeaderSpan, Span};
use super::limits::MAX_HEADERS_CAP;
use crate::{Error, Limits};

/// HTTP version of a message. Only 1.0 and 1.1 exist on the HTTP/1 wire; a
/// request that arrived over HTTP/2 says [`Version::Http2`] (its head is the
/// HTTP/1.1 form of the request: see [`serve_h2_connection`](crate::serve_h2_connection)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
    /// HTTP/2 (requests received over an HTTP/2 connection only).
    Http2,
}

impl Version {
    /// `"HTTP/1.0"`, `"HTTP/1.1"` or `"HTTP/2.0"` (as nginx logs HTTP/2).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2.0",
        }
    }
}

/// Request method. The common ones are variants; any other valid token is `Other`
/// (its text is in [`RequestHead::method_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// CONNECT
    Connect,
    /// TRACE
    Trace,
    /// PATCH
    Patch,
    /// Any other method token.
    Other,
}

impl Method {
    fn from_token(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "CONNECT" => Method::Connect,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// Idempotent by RFC 9110 §9.2.2: a request with this method may be sent again
    /// after a failure without changing the result.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get | Method::Head | Method::Options | Method::Trace | Method::Put | Method::Delete
        )
    }
}

/// Connection-level facts a head declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnFlags {
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub upgrade: bool,
    /// The `Connection` header names a field other than close / keep-alive / upgrade.
    pub names_fields: bool,
}

/// Where the parts of a request head lie in its buffer: the outcome of
/// [`parse_request`], before the buffer is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    len: usize,
    method: Method,
    method_span: Span,
    target: Span,
    version: Version,
    host: Option<Span>,
    body: BodyKind,
    flags: ConnFlags,
    headers: Vec<HeaderSpan>,
}

impl ParsedRequest {
    /// Bytes of the buffer the head took, including its final empty line.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a head has at least a request line.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the body that follows is framed.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// Joins the layout with the head's bytes: exactly the first [`len`](Self::len)
    /// bytes of the buffer it was parsed from.
    pub fn into_head(self, bytes: Bytes) -> RequestHead {
        debug_assert_eq!(bytes.len(), self.len);
        RequestHead { bytes, parsed: self }
    }
}

/// A parsed request head. Accessors borrow from the head's own bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    bytes: Bytes,
    parsed: ParsedRequest,
}

impl RequestHead {
    /// Parses a complete head held in `bytes` (convenience for tests and tools).
    ///
    /// ```
    /// use http_core::{Limits, Method, RequestHead};
    /// let head = RequestHead::parse_complete(
    ///     bytes::Bytes::from_static(b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n"),
    ///     &Limits::default(),
    /// ).unwrap();
    /// assert_eq!(head.method(), Method::Get);
    /// assert_eq!(head.target(), "/a?b");
    /// assert_eq!(head.path(), "/a");
    /// assert_eq!(head.header("host"), Some(&b"x"[..]));
    /// ```
    pub fn parse_complete(bytes: Bytes, limits: &Limits) -> Result<RequestHead, Error> {
        match parse_request(&bytes, limits)? {
            Some(p) => {
                let head = bytes.slice(..p.len());
                Ok(p.into_head(head))
            }
            None => Err(Error::UnexpectedEof),
        }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.parsed.method
    }

    /// The method as sent (a token).
    pub fn method_str(&self) -> &str {
        let known = match self.method() {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other => "",
        };
        if !known.is_empty() {
            return known;
        }
        std::str::from_utf8(self.parsed.method_span.get(&self.bytes)).unwrap_or_default()
    }

    /// The request target as sent: origin, absolute, authority or asterisk form.
    /// Always ASCII.
    pub fn target(&self) -> &str {
        std::str::from_utf8(self.parsed.target.get(&self.bytes)).unwrap_or_default()
    }

    /// The path of the target, without query; for absolute form the path after the
    /// authority (`/` when empty); for asterisk and authority form the target itself.
    pub fn path(&self) -> &str {
        let t = self.target();
        let t = if t.starts_with('/') {
            t
        } else if let Some(after_scheme) = t.find("://").map(|i| &t[i + 3..]) {
            match after_scheme.find(['/', '?']) {
                Some(i) if after_scheme.as_bytes()[i] == b'/' => &after_scheme[i..],
                _ => "/",
            }
        } else {
            return t;
        };
        match t.find('?') {
            Some(i) => &t[..i],
            None => t,
        }
    }

    /// The query of the target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        let t = self.target();
        t.find('?').map(|i| &t[i + 1..])
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.parsed.version
    }

    /// The host the request is for: the authority of an absolute-form target,
    /// whatever the `Host` header says (RFC 9112 §3.2.2 makes a server ignore it
    /// then), else the `Host` header value, if present.
    pub fn host(&self) -> Option<&[u8]> {
        if let Some((authority, _)) = self.split_absolute_form() {
            return Some(authority.as_bytes());
        }
        self.parsed.host.map(|s| s.get(&self.bytes))
    }

    /// Whether the target is in absolute form (`http://host/path`), as clients
    /// send it to forward proxies.
    pub fn is_absolute_form(&self) -> bool {
        self.split_absolute_form().is_some()
    }

    /// The target in origin form, as it is sent on to an origin server: for an
    /// absolute-form target its path and query (empty when it has neither, which
    /// stands for `/`; it may then start with `?`), else the target as sent.
    pub fn origin_form(&self) -> &str {
        match self.split_absolute_form() {
            Some((_, rest)) => rest,
            None => self.target(),
        }
    }

    /// For an absolute-form target: its authority and what follows it.
    fn split_absolute_form(&self) -> Option<(&str, &str)> {
        // Checked on the bytes first: most targets start with '/'.
        let first = self.parsed.target.get(&self.bytes).first();
        if !first.is_some_and(u8::is_ascii_alphabetic) || self.method() == Method::Connect {
            return None;
        }
        let t = self.target();
        let after_scheme = &t[t.find("://")? + 3..];
        let end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
        Some(after_scheme.split_at(end))
    }

    /// All header lines in order.
    pub fn headers(&self) -> HeaderIter<'_> {
        HeaderIter::new(&self.bytes, &self.parsed.headers)
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find_value(name)
    }

    /// How the body is framed.
    pub fn body(&self) -> BodyKind {
        self.parsed.body
    }

    /// Whether the client allows the connection to stay open after this request.
    pub fn keep_alive(&self) -> bool {
        self.parsed.flags.keep_alive
    }

    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    pub fn expects_continue(&self) -> bool {
        self.parsed.flags.expect_continue
    }

    /// The client asks to switch protocols: `Connection: upgrade` with an `Upgrade`
    /// header, over HTTP/1.1.
    pub fn is_upgrade(&self) -> bool {
        self.parsed.flags.upgrade
    }

    /// The `Connection` header names fields besides close/keep-alive/upgrade, which a
    /// proxy must remove before forwarding.
    pub fn connection_names_fields(&self) -> bool {
        self.parsed.flags.names_fields
    }

    /// The raw bytes of the head. For a request received over HTTP/2, the
    /// HTTP/1.1 form the driver built of it (and parsed with the same rules).
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Marks a head built from an HTTP/2 request: its version becomes
    /// [`Version::Http2`] and its body `body` (the stream's framing, which
    /// the HTTP/1.1 form cannot say when no `content-length` was sent).
    pub(crate) fn into_http2(mut self, body: BodyKind) -> RequestHead {
        self.parsed.version = Version::Http2;
        self.parsed.body = body;
        self.parsed.flags.keep_alive = true;
        self.parsed.flags.upgrade = false;
        self
    }
}

/// Parses a request head at the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete (and within limits),
/// `Ok(Some(parsed))` once complete (`parsed.len()` bytes consumed; anything after
/// them is the body or the next pipelined request), or the error a server answers.
///
/// ```
/// use http_core::{parse_request, BodyKind, Limits};
/// let limits = Limits::default();
/// assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHo", &limits), Ok(None));
/// let buf = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /";
/// let parsed = parse_request(buf, &limits).unwrap().unwrap();
/// assert_eq!(parsed.len(), buf.len() - 8);
/// assert_eq!(parsed.body(), BodyKind::Length(3));
/// ```
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<ParsedRequest>, Error> {
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, &mut storage) {
        Ok(s) => s,
        Err(e) => match classify_error(e, buf, limits) {
            Some(err) => return Err(err),
            // The version is still arriving and may yet turn out to be `HTTP/d.d`:
            // wait, so the status does not depend on how the bytes were split.
            None => {
                check_partial(buf, limits)?;
                return Ok(None);
            }
        },
    };
    let len = match status {
        httparse::Status::Partial => {
            check_partial(buf, limits)?;
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    if len > limits.max_head_len {
        return Err(oversized(buf, limits));
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Error::BadRequestLine);
    };
    if target.len() > limits.max_uri_len {
        return Err(Error::UriTooLong);
    }
    if req.headers.len() > limits.max_headers.min(MAX_HEADERS_CAP) {
        return Err(Error::TooManyHeaders);
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let method_kind = Method::from_token(method);
    check_target(method_kind, target.as_bytes())?;

    let mut headers = Vec::with_capacity(req.headers.len());
    let mut host: Option<Span> = None;
    let mut content_length: Option<u64> = None;
    let mut te = TransferCoding::default();
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut names_fields = false;
    let mut has_upgrade = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        headers.push(HeaderSpan {
            name: Span::of(buf, name),
            value: Span::of(buf, value),
        });
        match name.len() {
            4 if eq_lower(name, b"host") => {
                if host.is_some() || !is_valid_host(value) {
                    return Err(Error::BadHost);
                }
                host = Some(Span::of(buf, value));
            }
            6 if eq_lower(name, b"expect") => {
                expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            7 if eq_lower(name, b"upgrade") => has_upgrade = true,
            10 if eq_lower(name, b"connection") => {
                // The two common single values first: no list splitting for them.
                if eq_lower(value, b"keep-alive") {
                    conn_keep_alive = true;
                } else if eq_lower(value, b"close") {
                    conn_close = true;
                } else {
                    for_each_token(value, |t| {
                        if t.eq_ignore_ascii_case(b"close") {
                            conn_close = true;
                        } else if t.eq_ignore_ascii_case(b"keep-alive") {
                            conn_keep_alive = true;
                        } else if t.eq_ignore_ascii_case(b"upgrade") {
                            conn_upgrade = true;
                        } else {
                            names_fields = true;
                        }
                    })
                }
            }
            14 if eq_lower(name, b"content-length") => {
                content_length = merge_content_length(content_length, value)?;
            }
            17 if eq_lower(name, b"transfer-encoding") => te.add(value),
            _ => {}
        }
    }
    if version == Version::Http11 && host.is_none() {
        return Err(Error::MissingHost);
    }
    let body = if te.present {
        if content_length.is_some() {
            return Err(Error::LengthWithTransferEncoding);
        }
        if version == Version::Http10 {
            return Err(Error::BadTransferEncoding);
        }
        te.request_framing()?
    } else {
        match content_length {
            Some(n) if n > limits.max_body_len => return Err(Error::BodyTooLarge),
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    };
    let keep_alive = match version {
        Version::Http10 => conn_keep_alive && !conn_close,
        Version::Http11 | Version::Http2 => !conn_close,
    };
    Ok(Some(ParsedRequest {
        len,
        method: method_kind,
        method_span: Span::of(buf, method.as_bytes()),
        target: Span::of(buf, target.as_bytes()),
        version,
        host,
        body,
        flags: ConnFlags {
            keep_alive,
            expect_continue: expect_continue && version == Version::Http11,
            upgrade: has_upgrade && conn_upgrade && version == Version::Http11,
            names_fields,
        },
        headers,
    }))
}

/// ASCII case-insensitive equality with `lower`, a lowercase name made of
/// letters and `-`. Setting bit 5 of each byte maps `A-Z` to `a-z`; among the
/// bytes that can reach here (token characters, or field-value bytes) only the
/// letter itself or its capital maps to a given letter, and only `-` to `-`
/// (CR, the other candidate, never occurs inside a value). So eight bytes
/// compare at a time.
#[inline(always)]
fn eq_lower(bytes: &[u8], lower: &[u8]) -> bool {
    if bytes.len() != lower.len() {
        return false;
    }
    let mut a = bytes.chunks_exact(8);
    let mut b = lower.chunks_exact(8);
    for (x, y) in (&mut a).zip(&mut b) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_le_bytes(y.try_into().unwrap_or_default());
        if x | 0x2020_2020_2020_2020 != y {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(&x, &y)| x | 0x20 == y)
}

/// The request-target forms of RFC 9112 §3.2, each only with the methods that allow it.
fn check_target(method: Method, target: &[u8]) -> Result<(), Error> {
    // httparse admits 0x21..=0x7E and 0x80..=0xFF; a target is ASCII and has no fragment.
    // One branch-free pass (it vectorises): high bit set, or a '#'.
    let bad = target
        .iter()
        .fold(0u8, |acc, &b| acc | (b & 0x80) | u8::from(b == b'#'));
    if bad != 0 {
        return Err(Error::BadTarget);
    }
    let ok = match target.first() {
        _ if method == Method::Connect => is_authority_form(target),
        Some(b'/') => true,
        Some(b'*') => target.len() == 1 && method == Method::Options,
        Some(c) if c.is_ascii_alphabetic() => is_absolute_uri(target),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::BadTarget)
    }
}

/// `authority-form = uri-host ":" port` (RFC 9112 §3.2.3). The port is required:
/// CONNECT has no default port (RFC 9110 §9.3.6).
fn is_authority_form(t: &[u8]) -> bool {
    let Some(colon) = t.iter().rposition(|&b| b == b':') else {
        return false;
    };
    let (host, port) = (&t[..colon], &t[colon + 1..]);
    !host.is_empty() && is_valid_host(host) && !port.is_empty() && port.iter().all(u8::is_ascii_digit)
}

/// `scheme "://" authority [path-abempty] [ "?" query ]`, with a valid authority.
fn is_absolute_uri(t: &[u8]) -> bool {
    let Some(colon) = t.iter().position(|&b| b == b':') else {
        return false;
    };
    let scheme_ok = t[..colon]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || !t[colon..].starts_with(b"://") {
        return false;
    }
    let rest = &t[colon + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    !authority.is_empty() && is_valid_host(authority)
}

/// `uri-host [":" port]` (RFC 3986 §3.2.2–3.2.3; no userinfo): a bracketed IP
/// literal or a reg-name (unreserved, sub-delims, valid `%XX`; dotted IPv4 is a
/// reg-name by its characters), then an optional colon and digits. One pass.
fn is_valid_host(v: &[u8]) -> bool {
    if v.first() == Some(&b'[') {
        // Inside the brackets: IPv6 (hex, ':' and '.') or IPvFuture ("v" hex "."
        // then unreserved / sub-delims / ':').
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside_ok = close > 1
            && v[1..close]
                .iter()
                .all(|&b| REG_NAME_BYTE[b as usize] || b == b':');
        return inside_ok
            && match &v[close + 1..] {
                [] => true,
                [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
                _ => false,
            };
    }
    // The common case first: a name of plain reg-name bytes and no port, checked
    // branch-free.
    if v.iter().fold(true, |ok, &b| ok & REG_NAME_BYTE[b as usize]) {
        return true;
    }
    // reg-name = *( unreserved / pct-encoded / sub-delims ), then [":" port].
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        if REG_NAME_BYTE[b as usize] {
            i += 1;
        } else if b == b'%' {
            if !(v.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && v.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else if b == b':' {
            return v[i + 1..].iter().all(u8::is_ascii_digit);
        } else {
            return false;
        }
    }
    true
}

/// unreserved and sub-delims of RFC 3986.
static REG_NAME_BYTE: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'-' | b'.'
            | b'_'
            | b'~'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    ));

/// The error a server answers for an `httparse` failure, or `None` when the
/// request line is unfinished and its version may still turn out well-formed.
fn classify_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> Option<Error> {
    // A target too long to be worth reading is 414 whatever else is wrong with
    // the head: the same answer `check_partial` gives when the head arrives in
    // pieces and the long target is seen before the later fault.
    if request_line_target_len(buf) > limits.max_uri_len {
        return Some(Error::UriTooLong);
    }
    Some(match e {
        httparse::Error::TooManyHeaders => Error::TooManyHeaders,
        httparse::Error::Version => return version_error(buf),
        httparse::Error::HeaderName | httparse::Error::HeaderValue => Error::BadHeader,
        _ => Error::BadRequestLine,
    })
}

/// The request line (without its line ending) and whether it is complete,
/// after the empty lines `httparse` skips before it (RFC 9112 §2.2).
fn request_line(mut buf: &[u8]) -> (&[u8], bool) {
    loop {
        buf = match buf {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => rest,
            _ => break,
        };
    }
    match buf.iter().position(|&b| b == b'\n') {
        Some(end) => (buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]), true),
        None => (buf.strip_suffix(b"\r").unwrap_or(buf), false),
    }
}

/// `HTTP-version = "HTTP/" DIGIT "." DIGIT` (RFC 9112 §2.3) with digits other
/// than 1.0 / 1.1 is a version we do not speak (505); anything else in that
/// place, or a line that is not exactly `method SP target SP version`, is a
/// malformed request line (400). `None`: the line is unfinished and what has
/// arrived of the version may still become `HTTP/d.d` (httparse refuses e.g.
/// `HTTP/2` before the `.0` arrives).
fn version_error(buf: &[u8]) -> Option<Error> {
    let (line, complete) = request_line(buf);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(Error::BadRequestLine);
    };
    const SHAPE: &[u8; 8] = b"HTTP/0.0";
    let fits_shape = version.len() <= SHAPE.len()
        && version
            .iter()
            .zip(SHAPE)
            .all(|(&b, &s)| if s == b'0' { b.is_ascii_digit() } else { b == s });
    if !fits_shape {
        Some(Error::BadRequestLine)
    } else if !complete {
        None
    } else if version.len() == SHAPE.len() {
        Some(Error::VersionNotSupported)
    } else {
        Some(Error::BadRequestLine)
    }
}

/// Length of the target seen so far on the request line (which may be unfinished).
fn request_line_target_len(buf: &[u8]) -> usize {
    let (line, _) = request_line(buf);
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return 0;
    };
    let rest = &line[sp + 1..];
    rest.iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(rest.len())
}

/// An incomplete head is refused as soon as it can no longer fit the limits.
fn check_partial(buf: &[u8], limits: &Limits) -> Result<(), Error> {
    if request_line_target_len(buf) > limits.max_uri_len {
        return Err(Error::UriTooLong);
    }
    if buf.len() > limits.max_head_len {
        return Err(oversized(buf, limits));
    }
    Ok(())
}

fn oversized(buf: &[u8], limits: &Limits) -> Error {
    if request_line_target_len(buf) > limits.max_uri_len {
        Error::UriTooLong
    } else {
        Error::HeadTooLarge
    }
}
