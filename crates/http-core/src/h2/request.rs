//! An HTTP/2 request as the [`RequestHead`] of its HTTP/1.1 form: the head is
//! written out as HTTP/1.1 text and run through the same strict parser, so
//! that both protocols answer to one set of rules and a proxy forwards an
//! HTTP/2 request exactly as it would forward that HTTP/1.1 request.
//!
//! Before that, the decoded field list is held to RFC 9113 §8.1–8.3: what it
//! calls malformed (a pseudo-header unknown, repeated, missing or after a
//! regular field; a name with uppercase or a byte outside a token; a value
//! with CR, LF or NUL or whitespace at either end; a connection-specific
//! field; `te` other than `trailers`; a `host` that differs from
//! `:authority`; userinfo in `:authority`; a `:path` not in origin form, or
//! `*` for OPTIONS) is refused as a stream error and never reaches a service.

use bytes::{BufMut, BytesMut};

use super::hpack::HeaderList;
use crate::{parse_request, BodyKind, Error, Limits, RequestHead};

/// The least a connection's head buffer grows by.
const HEAD_BUFFER: usize = 8 * 1024;

/// Why a request is not handed to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Malformed by RFC 9113 §8.1.1: a stream error of type PROTOCOL_ERROR.
    Malformed(&'static str),
    /// Well-formed HTTP/2, refused by the HTTP/1.1 rules (a bad target, a
    /// limit): answered with the error's status, as over HTTP/1.1.
    Status(Error),
}

/// The pseudo-header fields of a request.
#[derive(Default)]
struct Pseudo<'a> {
    method: Option<&'a [u8]>,
    scheme: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
}

/// Builds the head of the request `fields` in `scratch` (which keeps its
/// allocation for the next heads) and parses it. `end_stream`: the HEADERS
/// frame ended the stream (no body follows).
pub(crate) fn build_head(
    fields: &HeaderList,
    end_stream: bool,
    limits: &Limits,
    scratch: &mut BytesMut,
) -> Result<RequestHead, Refusal> {
    scratch.clear();
    let r = write_head(fields, scratch).and_then(|()| {
        if fields.too_large() {
            // Well-formed as far as it was kept, but past the header list
            // size: 431, as an HTTP/1.1 head past its limit.
            return Err(Refusal::Status(Error::HeadTooLarge));
        }
        parse(scratch, end_stream, limits)
    });
    if r.is_err() {
        scratch.clear();
    }
    r
}

fn pseudo<'a>(fields: &'a HeaderList) -> Result<(Pseudo<'a>, usize), Refusal> {
    let mut p = Pseudo::default();
    let mut n = 0;
    for (name, value) in fields.iter() {
        if name.first() != Some(&b':') {
            break;
        }
        n += 1;
        let slot = match name {
            b":method" => &mut p.method,
            b":scheme" => &mut p.scheme,
            b":authority" => &mut p.authority,
            b":path" => &mut p.path,
            _ => return Err(Refusal::Malformed("unknown pseudo-header")),
        };
        if slot.replace(value).is_some() {
            return Err(Refusal::Malformed("repeated pseudo-header"));
        }
    }
    Ok((p, n))
}

fn write_head(fields: &HeaderList, out: &mut BytesMut) -> Result<(), Refusal> {
    let (p, npseudo) = pseudo(fields)?;
    let method = p.method.ok_or(Refusal::Malformed("missing :method"))?;
    if method.is_empty() {
        return Err(Refusal::Malformed("empty :method"));
    }
    let connect = method == b"CONNECT";
    let authority = p.authority;
    if authority.is_some_and(|a| a.contains(&b'@')) {
        // RFC 9113 §8.3.1: no userinfo in `:authority`.
        return Err(Refusal::Malformed("userinfo in :authority"));
    }
    let target = if connect {
        if p.scheme.is_some() || p.path.is_some() {
            return Err(Refusal::Malformed("CONNECT with :scheme or :path"));
        }
        authority.ok_or(Refusal::Malformed("CONNECT without :authority"))?
    } else {
        if p.scheme.is_none_or(<[u8]>::is_empty) {
            return Err(Refusal::Malformed("missing :scheme"));
        }
        let path = p.path.ok_or(Refusal::Malformed("missing :path"))?;
        if !(path.starts_with(b"/") || (path == b"*" && method == b"OPTIONS")) {
            return Err(Refusal::Malformed(":path not in origin or asterisk form"));
        }
        path
    };
    for v in [Some(method), Some(target), authority].into_iter().flatten() {
        if v.iter().any(|&b| b <= b' ' || b == 0x7f) {
            // Spaces or controls would change the request line's meaning.
            return Err(Refusal::Malformed("invalid byte in a pseudo-header"));
        }
    }
    // The whole head is about this long: reserved once.
    let need = fields.size() + 32;
    if out.capacity() - out.len() < need {
        // Heads are split off this buffer and live as long as their request:
        // room for many is taken at once (and taken back once they are gone).
        out.reserve(need.max(HEAD_BUFFER));
    }
    out.put_slice(method);
    out.put_u8(b' ');
    out.put_slice(target);
    out.put_slice(b" HTTP/1.1\r\n");
    if let Some(a) = authority {
        out.put_slice(b"host: ");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
    let mut cookies = 0;
    for (name, v) in fields.iter().skip(npseudo) {
        check_field(name, v)?;
        if name == b"host" {
            if let Some(a) = authority {
                // RFC 9113 §8.3.1: a `host` naming another entity than
                // `:authority` is malformed; an equal one is said once.
                if v != a {
                    return Err(Refusal::Malformed("host differs from :authority"));
                }
                continue;
            }
        }
        if name == b"cookie" {
            cookies += 1;
            continue;
        }
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    if cookies > 0 {
        // RFC 9113 §8.2.3: crumbs are joined with "; " for HTTP/1.1.
        out.put_slice(b"cookie: ");
        let crumbs = fields.iter().skip(npseudo).filter(|(n, _)| *n == b"cookie");
        for (i, (_, v)) in crumbs.enumerate() {
            if i > 0 {
                out.put_slice(b"; ");
            }
            out.put_slice(v);
        }
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    Ok(())
}

/// The field rules of RFC 9113 §8.2: a regular field's name is lowercase
/// with no byte outside `!`..`~` (and no colon: a pseudo-header here comes
/// after a regular field), its value free of CR, LF and NUL and of
/// whitespace at either end; no connection-specific field; `te` only as
/// `trailers`.
pub(super) fn check_field(name: &[u8], value: &[u8]) -> Result<(), Refusal> {
    if name.first() == Some(&b':') {
        return Err(Refusal::Malformed("pseudo-header after a regular field"));
    }
    let bad_name = name.is_empty()
        || name
            .iter()
            .any(|&b| b <= b' ' || b >= 0x7f || b.is_ascii_uppercase() || b == b':');
    if bad_name {
        return Err(Refusal::Malformed("invalid field name"));
    }
    if is_connection_specific(name) {
        return Err(Refusal::Malformed("connection-specific field"));
    }
    if name == b"te" && value != b"trailers" {
        return Err(Refusal::Malformed("te other than trailers"));
    }
    if matches!(value.first(), Some(b' ' | b'\t')) || matches!(value.last(), Some(b' ' | b'\t')) {
        return Err(Refusal::Malformed("whitespace at the start or end of a value"));
    }
    let bad = value
        .iter()
        .fold(false, |bad, &b| bad | (b == b'\r') | (b == b'\n') | (b == 0));
    if bad {
        return Err(Refusal::Malformed("CR, LF or NUL in a value"));
    }
    Ok(())
}

/// Fields HTTP/2 does not carry (RFC 9113 §8.2.2), by their lowercase names.
fn is_connection_specific(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
    )
}

fn parse(scratch: &mut BytesMut, end_stream: bool, limits: &Limits) -> Result<RequestHead, Refusal> {
    let parsed = match parse_request(scratch, limits) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(Refusal::Status(Error::BadRequestLine)),
        Err(e) => return Err(Refusal::Status(e)),
    };
    let len = parsed.len();
    let head = parsed.into_head(scratch.split_to(len).freeze());
    let body = match head.body() {
        BodyKind::Length(n) => BodyKind::Length(n),
        _ if end_stream || head.header("content-length").is_some() => BodyKind::Empty,
        // No declared length: DATA frames until END_STREAM, which is what a
        // chunked body is in HTTP/1.1.
        _ => BodyKind::Chunked,
    };
    Ok(head.into_http2(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::hpack::Decoder;
    use crate::{Method, Version};

    /// A header list as a peer's block of literals would decode to: the
    /// fields exactly as given, any case, any bytes.
    fn list(fields: &[(&str, &[u8])]) -> HeaderList {
        let mut block = Vec::new();
        for (n, v) in fields {
            // Literal without indexing, new name (RFC 7541 §6.2.2); short strings.
            block.push(0);
            block.push(n.len() as u8);
            block.extend_from_slice(n.as_bytes());
            block.push(v.len() as u8);
            block.extend_from_slice(v);
        }
        let mut out = HeaderList::default();
        Decoder::new(4096).decode(&block, 1 << 20, &mut out).unwrap();
        out
    }

    fn req(method: &str, authority: &str, path: &str, headers: &[(&str, &[u8])]) -> HeaderList {
        let mut f: Vec<(&str, &[u8])> = vec![(":method", method.as_bytes()), (":scheme", b"https")];
        if !authority.is_empty() {
            f.push((":authority", authority.as_bytes()));
        }
        f.push((":path", path.as_bytes()));
        f.extend_from_slice(headers);
        list(&f)
    }

    fn build(l: &HeaderList, end: bool) -> Result<RequestHead, Refusal> {
        build_head(l, end, &Limits::default(), &mut BytesMut::new())
    }

    #[test]
    fn maps_to_the_http11_form() {
        let l = req(
            "GET",
            "example.test",
            "/a/b?c=d",
            &[
                ("accept", b"*/*"),
                ("cookie", b"a=1"),
                ("x-y", b"z"),
                ("cookie", b"b=2"),
            ],
        );
        let head = build(&l, true).unwrap();
        assert_eq!(head.method(), Method::Get);
        assert_eq!(head.version(), Version::Http2);
        assert_eq!(head.target(), "/a/b?c=d");
        assert_eq!(head.host(), Some(&b"example.test"[..]));
        assert_eq!(head.header("cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(head.body(), BodyKind::Empty);
        assert!(head.keep_alive());
        assert_eq!(
            &head.as_bytes()[..],
            b"GET /a/b?c=d HTTP/1.1\r\nhost: example.test\r\naccept: */*\r\nx-y: z\r\ncookie: a=1; b=2\r\n\r\n"
        );
    }

    #[test]
    fn body_framing() {
        let l = req("POST", "h", "/u", &[("content-length", b"5")]);
        assert_eq!(build(&l, false).unwrap().body(), BodyKind::Length(5));
        let l = req("POST", "h", "/u", &[]);
        assert_eq!(build(&l, false).unwrap().body(), BodyKind::Chunked);
        assert_eq!(build(&l, true).unwrap().body(), BodyKind::Empty);
        let l = req("POST", "h", "/u", &[("content-length", b"0")]);
        assert_eq!(build(&l, false).unwrap().body(), BodyKind::Empty);
        let l = req("POST", "h", "/u", &[("content-length", b"99999999999999")]);
        assert_eq!(
            build(&l, false).unwrap_err(),
            Refusal::Status(Error::BodyTooLarge)
        );
    }

    #[test]
    fn malformed_requests() {
        let m = |l: HeaderList| match build(&l, true) {
            Err(Refusal::Malformed(_)) => {}
            other => panic!("{l:?}: {other:?}"),
        };
        m(req("GET", "a.test", "/", &[("host", b"b.test")]));
        m(req("GET", "a.test", "/", &[("x", b" lead")]));
        m(req("GET", "a.test", "/", &[("x", b"trail\t")]));
        m(req("GET", "a.test", "/", &[("x", b"a\rb")]));
        m(req("GET", "a.test", "/", &[("x", b"a\nb")]));
        m(req("GET", "a.test", "/", &[("x", b"a\x00b")]));
        m(req("GET", "a.test", "/", &[("X-Upper", b"1")]));
        m(req("GET", "a.test", "/", &[("x:y", b"1")]));
        m(req("GET", "a.test", "/", &[("x y", b"1")]));
        m(req("GET", "a.test", "/", &[("transfer-encoding", b"chunked")]));
        m(req("GET", "a.test", "/", &[("connection", b"keep-alive")]));
        m(req("GET", "a.test", "/", &[("keep-alive", b"5")]));
        m(req("GET", "a.test", "/", &[("upgrade", b"websocket")]));
        m(req("GET", "a.test", "/", &[("te", b"gzip")]));
        m(req("GET", "u@a.test", "/", &[]));
        m(req("GET", "a.test", "", &[]));
        m(req("GET", "a.test", "x", &[]));
        m(req("GET", "a.test", "/", &[(":path", b"/again")]));
        m(req("GET", "a.test", "/", &[(":status", b"200")]));
        m(list(&[(":method", b"GET"), (":path", b"/")]));
        m(list(&[(":method", b"GET"), (":scheme", b"https")]));
        m(list(&[(":scheme", b"https"), (":path", b"/")]));
        m(list(&[
            (":method", b"GET"),
            ("x", b"1"),
            (":scheme", b"https"),
            (":path", b"/"),
        ]));
        m(list(&[
            (":method", b"GET"),
            (":protocol", b"websocket"),
            (":scheme", b"https"),
            (":path", b"/"),
        ]));
        // CONNECT names its target in :authority, and nothing else.
        m(list(&[(":method", b"CONNECT")]));
        m(list(&[
            (":method", b"CONNECT"),
            (":authority", b"a:1"),
            (":path", b"/"),
        ]));
        // An equal host is said once; `te: trailers` passes.
        let l = req("GET", "a.test", "/", &[("host", b"a.test"), ("te", b"trailers")]);
        let head = build(&l, true).unwrap();
        assert_eq!(head.headers().filter(|(n, _)| *n == "host").count(), 1);
        // `*` is a target for OPTIONS only.
        assert!(build(&req("OPTIONS", "a.test", "*", &[]), true).is_ok());
        m(req("GET", "a.test", "*", &[]));
    }

    #[test]
    fn the_http11_rules_answer_with_their_status() {
        let s = |l: HeaderList| match build(&l, true) {
            Err(Refusal::Status(e)) => e.status(),
            other => panic!("{l:?}: {other:?}"),
        };
        // No :authority and no host: as an HTTP/1.1 request without Host.
        assert_eq!(s(req("GET", "", "/x", &[])), 400);
        let long = format!("/{}", "x".repeat(9000));
        let mut block = Vec::new();
        for (n, v) in [(":method", "GET"), (":scheme", "https"), (":authority", "a.test")] {
            block.extend_from_slice(&[0, n.len() as u8]);
            block.extend_from_slice(n.as_bytes());
            block.push(v.len() as u8);
            block.extend_from_slice(v.as_bytes());
        }
        // A long :path: its length as an HPACK integer (7-bit prefix).
        block.extend_from_slice(&[0, 5]);
        block.extend_from_slice(b":path");
        let mut n = long.len() - 127;
        block.push(0x7f);
        while n >= 128 {
            block.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        block.push(n as u8);
        block.extend_from_slice(long.as_bytes());
        let mut l = HeaderList::default();
        Decoder::new(4096).decode(&block, 1 << 20, &mut l).unwrap();
        assert_eq!(s(l), 414);
        let names: Vec<String> = (0..120).map(|i| format!("x-{i}")).collect();
        let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"v"[..])).collect();
        assert_eq!(s(req("GET", "a.test", "/", &many)), 431);
        // Without :authority a host header stands, as in HTTP/1.1.
        let l = req("GET", "", "/x", &[("host", b"h.test")]);
        assert_eq!(build(&l, true).unwrap().host(), Some(&b"h.test"[..]));
        // A list decoded past the limit: 431.
        let mut block = Vec::new();
        for (n, v) in [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "a.test"),
            (":path", "/"),
        ] {
            block.extend_from_slice(&[0, n.len() as u8]);
            block.extend_from_slice(n.as_bytes());
            block.push(v.len() as u8);
            block.extend_from_slice(v.as_bytes());
        }
        for _ in 0..20 {
            block.extend_from_slice(&[0, 1, b'x', 100]);
            block.extend_from_slice(&[b'v'; 100]);
        }
        let mut big = HeaderList::default();
        Decoder::new(4096).decode(&block, 1000, &mut big).unwrap();
        assert!(big.too_large());
        assert_eq!(s(big), 431);
    }
}
