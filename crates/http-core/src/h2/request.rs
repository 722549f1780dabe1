//! An HTTP/2 request as the [`RequestHead`] of its HTTP/1.1 form: the head is
//! written out as HTTP/1.1 text and run through the same strict parser, so
//! that both protocols answer to one set of rules and a proxy forwards an
//! HTTP/2 request exactly as it would forward that HTTP/1.1 request.
//!
//! Before that, what RFC 9113 §8.2–8.3 calls malformed and the h2 crate lets
//! through is refused here: a `host` that differs from `:authority`, a value
//! with whitespace at either end, a connection-specific field, `te` other
//! than `trailers`, a `:path` not in origin form (or `*` for OPTIONS). (A
//! request without `:path` reaches us as `/`: the h2 crate lets it through and
//! the `http` crate cannot tell it from `:path: /`.)

use bytes::{BufMut, BytesMut};
use http::request::Parts;
use http::{header, Method as HttpMethod};

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

/// Builds the head of `parts` in `scratch` (which keeps its allocation for
/// the next heads) and parses it. `end_stream`: the HEADERS frame ended the
/// stream (no body follows).
pub(crate) fn build_head(
    parts: &Parts,
    end_stream: bool,
    limits: &Limits,
    scratch: &mut BytesMut,
) -> Result<RequestHead, Refusal> {
    scratch.clear();
    let r = write_head(parts, scratch).and_then(|()| parse(scratch, end_stream, limits));
    if r.is_err() {
        scratch.clear();
    }
    r
}

fn write_head(parts: &Parts, out: &mut BytesMut) -> Result<(), Refusal> {
    let authority = parts.uri.authority().map(|a| a.as_str());
    if authority.is_some_and(|a| a.contains('@')) {
        // RFC 9113 §8.3.1: no userinfo in `:authority`.
        return Err(Refusal::Malformed("userinfo in :authority"));
    }
    let target = if parts.method == HttpMethod::CONNECT {
        authority.ok_or(Refusal::Malformed("CONNECT without :authority"))?
    } else {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .ok_or(Refusal::Malformed("missing :path"))?;
        if !(path.starts_with('/') || (path == "*" && parts.method == HttpMethod::OPTIONS)) {
            return Err(Refusal::Malformed(":path not in origin or asterisk form"));
        }
        path
    };
    // The whole head is about this long: reserved once.
    let fields: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let need = parts.method.as_str().len() + target.len() + authority.map_or(0, str::len) + fields + 32;
    if out.capacity() - out.len() < need {
        // Heads are split off this buffer and live as long as their request:
        // room for many is taken at once (and taken back once they are gone).
        out.reserve(need.max(HEAD_BUFFER));
    }
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    if let Some(a) = authority {
        out.put_slice(b"host: ");
        out.put_slice(a.as_bytes());
        out.put_slice(b"\r\n");
    }
    let mut cookies = 0;
    for (name, value) in &parts.headers {
        let v = value.as_bytes();
        check_field(name, v)?;
        if name == header::HOST {
            if let Some(a) = authority {
                // RFC 9113 §8.3.1: a `host` naming another entity than
                // `:authority` is malformed; an equal one is said once.
                if v != a.as_bytes() {
                    return Err(Refusal::Malformed("host differs from :authority"));
                }
                continue;
            }
        }
        if name == header::COOKIE {
            cookies += 1;
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    if cookies > 0 {
        // RFC 9113 §8.2.3: crumbs are joined with "; " for HTTP/1.1.
        out.put_slice(b"cookie: ");
        for (i, v) in parts.headers.get_all(header::COOKIE).iter().enumerate() {
            if i > 0 {
                out.put_slice(b"; ");
            }
            out.put_slice(v.as_bytes());
        }
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    Ok(())
}

/// The field rules of RFC 9113 §8.2 the h2 crate does not enforce itself
/// (names are lowercase tokens and values free of CR, LF and NUL by the time
/// they get here; the connection-specific names are checked again all the same).
fn check_field(name: &header::HeaderName, value: &[u8]) -> Result<(), Refusal> {
    let n = name.as_str();
    if matches!(
        n,
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
    ) {
        return Err(Refusal::Malformed("connection-specific field"));
    }
    if n == "te" && value != b"trailers" {
        return Err(Refusal::Malformed("te other than trailers"));
    }
    if matches!(value.first(), Some(b' ' | b'\t')) || matches!(value.last(), Some(b' ' | b'\t')) {
        return Err(Refusal::Malformed("whitespace at the start or end of a value"));
    }
    let bad = value
        .iter()
        .fold(false, |bad, &b| bad | (b == b'\r') | (b == b'\n') | (b == 0));
    if bad || n.bytes().any(|b| b.is_ascii_uppercase() || b == b':') {
        return Err(Refusal::Malformed("invalid field"));
    }
    Ok(())
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
    use crate::{Method, Version};

    fn parts(method: &str, uri: &str, headers: &[(&str, &[u8])]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, http::HeaderValue::from_bytes(v).unwrap());
        }
        b.body(()).unwrap().into_parts().0
    }

    fn build(p: &Parts, end: bool) -> Result<RequestHead, Refusal> {
        build_head(p, end, &Limits::default(), &mut BytesMut::new())
    }

    #[test]
    fn maps_to_the_http11_form() {
        let p = parts(
            "GET",
            "https://example.test/a/b?c=d",
            &[
                ("accept", b"*/*"),
                ("cookie", b"a=1"),
                ("x-y", b"z"),
                ("cookie", b"b=2"),
            ],
        );
        let head = build(&p, true).unwrap();
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
        let p = parts("POST", "http://h/u", &[("content-length", b"5")]);
        assert_eq!(build(&p, false).unwrap().body(), BodyKind::Length(5));
        let p = parts("POST", "http://h/u", &[]);
        assert_eq!(build(&p, false).unwrap().body(), BodyKind::Chunked);
        assert_eq!(build(&p, true).unwrap().body(), BodyKind::Empty);
        let p = parts("POST", "http://h/u", &[("content-length", b"0")]);
        assert_eq!(build(&p, false).unwrap().body(), BodyKind::Empty);
        let p = parts("POST", "http://h/u", &[("content-length", b"99999999999999")]);
        assert_eq!(
            build(&p, false).unwrap_err(),
            Refusal::Status(Error::BodyTooLarge)
        );
    }

    #[test]
    fn malformed_requests() {
        let m = |p: Parts| match build(&p, true) {
            Err(Refusal::Malformed(_)) => {}
            other => panic!("{p:?}: {other:?}"),
        };
        m(parts("GET", "http://a.test/", &[("host", b"b.test")]));
        m(parts("GET", "http://a.test/", &[("x", b" lead")]));
        m(parts("GET", "http://a.test/", &[("x", b"trail\t")]));
        m(parts(
            "GET",
            "http://a.test/",
            &[("transfer-encoding", b"chunked")],
        ));
        m(parts("GET", "http://a.test/", &[("connection", b"keep-alive")]));
        m(parts("GET", "http://a.test/", &[("keep-alive", b"5")]));
        m(parts("GET", "http://a.test/", &[("upgrade", b"websocket")]));
        m(parts("GET", "http://a.test/", &[("te", b"gzip")]));
        m(parts("GET", "http://u@a.test/", &[]));
        // An equal host is said once; `te: trailers` passes.
        let p = parts(
            "GET",
            "http://a.test/",
            &[("host", b"a.test"), ("te", b"trailers")],
        );
        let head = build(&p, true).unwrap();
        assert_eq!(head.headers().filter(|(n, _)| *n == "host").count(), 1);
    }

    #[test]
    fn the_http11_rules_answer_with_their_status() {
        let s = |p: Parts| match build(&p, true) {
            Err(Refusal::Status(e)) => e.status(),
            other => panic!("{p:?}: {other:?}"),
        };
        // No :authority and no host: as an HTTP/1.1 request without Host.
        assert_eq!(s(parts("GET", "/x", &[])), 400);
        let long = format!("http://a.test/{}", "x".repeat(9000));
        assert_eq!(s(parts("GET", &long, &[])), 414);
        let mut many = parts("GET", "http://a.test/", &[]);
        for i in 0..120 {
            let name = http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap();
            many.headers.insert(name, http::HeaderValue::from_static("v"));
        }
        assert_eq!(s(many), 431);
        // Without :authority a host header stands, as in HTTP/1.1.
        let p = parts("GET", "/x", &[("host", b"h.test")]);
        assert_eq!(build(&p, true).unwrap().host(), Some(&b"h.test"[..]));
    }
}
