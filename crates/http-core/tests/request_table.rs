//! Table-driven test of request-head parsing through the public API:
//! [`parse_request`] and [`RequestHead::parse_complete`].
//!
//! Each row is exact input bytes and the exact outcome: incomplete, a parsed head
//! (bytes consumed and every parsed field), or an error together with the status
//! code the "Bad input" table of DESIGN.md gives it. Every row is also fed prefix
//! by prefix: a strict prefix of a head must be incomplete, and a refused input
//! must be refused with the same error however its bytes were split.

use bytes::Bytes;
use http_core::{parse_request, BodyKind, Error, Limits, Method, RequestHead, Version};

/// Everything a parsed head exposes.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// Bytes the head takes; `None`: the whole input.
    consumed: Option<usize>,
    method: Method,
    method_str: &'static str,
    target: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    version: Version,
    host: Option<&'static [u8]>,
    body: BodyKind,
    keep_alive: bool,
    expects_continue: bool,
    is_upgrade: bool,
    names_fields: bool,
}

/// `GET / HTTP/1.1` with `Host: a` and nothing else.
const GET: Head = Head {
    consumed: None,
    method: Method::Get,
    method_str: "GET",
    target: "/",
    path: "/",
    query: None,
    version: Version::Http11,
    host: Some(b"a"),
    body: BodyKind::Empty,
    keep_alive: true,
    expects_continue: false,
    is_upgrade: false,
    names_fields: false,
};

/// `GET / HTTP/1.0` without `Host`.
const GET10: Head = Head {
    version: Version::Http10,
    host: None,
    keep_alive: false,
    ..GET
};

const POST: Head = Head {
    method: Method::Post,
    method_str: "POST",
    ..GET
};

use Want::Incomplete;

#[derive(Debug, Clone, Copy)]
enum Want {
    Incomplete,
    Ok(Head),
    /// The error and the status code of DESIGN.md's table.
    Err(Error, u16),
}

struct Row {
    name: &'static str,
    input: Vec<u8>,
    limits: Limits,
    want: Want,
}

/// Small limits, so the limit rows stay readable.
fn tight() -> Limits {
    Limits {
        max_uri_len: 16,
        max_head_len: 128,
        max_headers: 4,
        max_body_len: 100,
        ..Limits::default()
    }
}

fn row(name: &'static str, input: impl AsRef<[u8]>, want: Want) -> Row {
    Row {
        name,
        input: input.as_ref().to_vec(),
        limits: Limits::default(),
        want,
    }
}

fn tight_row(name: &'static str, input: impl AsRef<[u8]>, want: Want) -> Row {
    Row {
        limits: tight(),
        ..row(name, input, want)
    }
}

/// `GET / HTTP/1.1`, `Host: a`, then `extra` header lines, then the empty line.
fn get_with(extra: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: a\r\n{extra}\r\n")
}

/// `POST / HTTP/1.1`, `Host: a`, then `extra` header lines, then the empty line.
fn post_with(extra: &str) -> String {
    format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n")
}

fn ok(h: Head) -> Want {
    Want::Ok(h)
}

fn err(e: Error, status: u16) -> Want {
    Want::Err(e, status)
}

fn rows() -> Vec<Row> {
    let long_target = format!("/{}", "a".repeat(8 * 1024));
    let many_headers: String = (0..300).map(|i| format!("X-{i}: v\r\n")).collect();
    let big_header = format!("X: {}\r\n", "v".repeat(32 * 1024));
    vec![
        // ---- well-formed heads and target forms -------------------------------
        row("minimal 1.1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", ok(GET)),
        row(
            "origin form with query",
            "GET /p/q?x=1&y HTTP/1.1\r\nHost: a\r\n\r\n",
            ok(Head {
                target: "/p/q?x=1&y",
                path: "/p/q",
                query: Some("x=1&y"),
                ..GET
            }),
        ),
        row(
            "origin form, empty query",
            "GET /p? HTTP/1.1\r\nHost: a\r\n\r\n",
            ok(Head {
                target: "/p?",
                path: "/p",
                query: Some(""),
                ..GET
            }),
        ),
        row(
            "absolute form with path and query",
            "GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
            ok(Head {
                target: "http://h/p?q",
                path: "/p",
                query: Some("q"),
                host: Some(b"h"),
                ..GET
            }),
        ),
        row(
            "absolute form without path",
            "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n",
            ok(Head {
                target: "http://h",
                path: "/",
                host: Some(b"h"),
                ..GET
            }),
        ),
        row(
            "absolute form, query without path",
            "GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n",
            ok(Head {
                target: "http://h?q",
                path: "/",
                query: Some("q"),
                host: Some(b"h"),
                ..GET
            }),
        ),
        row(
            "absolute form: its authority wins over a different Host",
            "GET http://h/p HTTP/1.1\r\nHost: elsewhere\r\n\r\n",
            ok(Head {
                target: "http://h/p",
                path: "/p",
                host: Some(b"h"),
                ..GET
            }),
        ),
        row(
            "absolute form with port",
            "GET https://h:8443/x HTTP/1.1\r\nHost: h:8443\r\n\r\n",
            ok(Head {
                target: "https://h:8443/x",
                path: "/x",
                host: Some(b"h:8443"),
                ..GET
            }),
        ),
        row(
            "asterisk form with OPTIONS",
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            ok(Head {
                method: Method::Options,
                method_str: "OPTIONS",
                target: "*",
                path: "*",
                ..GET
            }),
        ),
        row(
            "authority form with CONNECT",
            "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
            ok(Head {
                method: Method::Connect,
                method_str: "CONNECT",
                target: "h:443",
                path: "h:443",
                host: Some(b"h:443"),
                ..GET
            }),
        ),
        row(
            "authority form with CONNECT, IPv6",
            "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
            ok(Head {
                method: Method::Connect,
                method_str: "CONNECT",
                target: "[::1]:443",
                path: "[::1]:443",
                host: Some(b"[::1]:443"),
                ..GET
            }),
        ),
        row(
            "extension method",
            "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n",
            ok(Head {
                method: Method::Other,
                method_str: "PURGE",
                target: "/x",
                path: "/x",
                ..GET
            }),
        ),
        row(
            "header names are case-insensitive",
            "GET / HTTP/1.1\r\nhOsT: a\r\n\r\n",
            ok(GET),
        ),
        row(
            "OWS around a value is not part of it",
            "GET / HTTP/1.1\r\nHost:   a  \r\n\r\n",
            ok(GET),
        ),
        row(
            "empty Host is allowed (RFC 9110 §7.2)",
            "GET / HTTP/1.1\r\nHost:\r\n\r\n",
            ok(Head {
                host: Some(b""),
                ..GET
            }),
        ),
        row(
            "Host with IPv6 literal and port",
            "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
            ok(Head {
                host: Some(b"[::1]:8080"),
                ..GET
            }),
        ),
        row("empty field value", get_with("X:\r\n"), ok(GET)),
        row("HTAB inside a value", get_with("X: a\tb\r\n"), ok(GET)),
        row(
            "obs-text inside a value (RFC 9110 §5.5)",
            get_with("X: a\u{e9}b\r\n"),
            ok(GET),
        ),
        row(
            "bare LF line endings (RFC 9112 §2.2 MAY)",
            "GET / HTTP/1.1\nHost: a\n\n",
            ok(GET),
        ),
        row(
            "leading CRLF before the request line is skipped (RFC 9112 §2.2)",
            "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            ok(GET),
        ),
        row(
            "several leading empty lines are skipped",
            "\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            ok(GET),
        ),
        row("1.0 without Host", "GET / HTTP/1.0\r\n\r\n", ok(GET10)),
        row(
            "1.0 with Host",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            ok(Head {
                host: Some(b"a"),
                ..GET10
            }),
        ),
        // ---- incomplete ---------------------------------------------------------
        row("nothing yet", "", Incomplete),
        row("only empty lines so far", "\r\n\r\n", Incomplete),
        row("request line only", "GET / HTTP/1.1\r\n", Incomplete),
        row("no final empty line", "GET / HTTP/1.1\r\nHost: a\r\n", Incomplete),
        row(
            "final CR without LF",
            "GET / HTTP/1.1\r\nHost: a\r\n\r",
            Incomplete,
        ),
        // ---- malformed request line (400) --------------------------------------
        row(
            "two spaces after the method",
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "two spaces before the version",
            "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "space after the version",
            "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "space before the method",
            " GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "HTAB as delimiter",
            "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "missing version",
            "GET /\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "missing version after SP",
            "GET / \r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "missing target",
            "GET HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "lowercase http/1.1",
            "GET / http/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "method is not a token",
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "control byte in the target",
            "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "bare CR ends the request line",
            "GET / HTTP/1.1\rHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "leading CR not followed by LF",
            "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        // ---- versions ---------------------------------------------------------
        row(
            "HTTP/2.0",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            err(Error::VersionNotSupported, 505),
        ),
        row(
            "HTTP/1.2",
            "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
            err(Error::VersionNotSupported, 505),
        ),
        row(
            "HTTP/0.9",
            "GET / HTTP/0.9\r\nHost: a\r\n\r\n",
            err(Error::VersionNotSupported, 505),
        ),
        row(
            "HTTP/9.9",
            "GET / HTTP/9.9\r\n\r\n",
            err(Error::VersionNotSupported, 505),
        ),
        row(
            "HTTP/2.0 after a leading CRLF",
            "\r\nGET / HTTP/2.0\r\nHost: a\r\n\r\n",
            err(Error::VersionNotSupported, 505),
        ),
        row(
            "HTTP/2.0 with bare LF",
            "GET / HTTP/2.0\nHost: a\n\n",
            err(Error::VersionNotSupported, 505),
        ),
        row(
            "HTPT/1.1",
            "GET / HTPT/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "HTTP/1 (no minor: not HTTP-version grammar)",
            "GET / HTTP/1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "HTTP/2 (no minor)",
            "GET / HTTP/2\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "HTTP/1.10",
            "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "HTTP/10.1",
            "GET / HTTP/10.1\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "HTTP/1.1x",
            "GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        row(
            "HTTP/2.0 followed by SP",
            "GET / HTTP/2.0 \r\nHost: a\r\n\r\n",
            err(Error::BadRequestLine, 400),
        ),
        // ---- refused target forms (400) ---------------------------------------
        row(
            "asterisk with GET",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "asterisk followed by more",
            "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "authority form with GET",
            "GET h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "CONNECT without port",
            "CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "CONNECT with empty port",
            "CONNECT h: HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "CONNECT without host",
            "CONNECT :443 HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "CONNECT with origin form",
            "CONNECT /p HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "CONNECT with userinfo",
            "CONNECT u@h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "fragment in origin form",
            "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "fragment in absolute form",
            "GET http://h/#f HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "non-ASCII target",
            "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "userinfo in absolute form",
            "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "absolute form with one slash",
            "GET http:/h HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "absolute form without host",
            "GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "relative path",
            "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        row(
            "query only",
            "GET ?q HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::BadTarget, 400),
        ),
        // ---- malformed header lines (400) -------------------------------------
        row(
            "space inside a field name",
            get_with("Bad Header: x\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "line without colon",
            get_with("NoColon\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "empty field name",
            get_with(": empty\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "control byte in a field name",
            get_with("X-\x01: a\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "obs-fold with SP",
            get_with("X: y\r\n z\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "obs-fold with HTAB",
            get_with("X: y\r\n\tz\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "first header line starts with SP",
            "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            err(Error::BadHeader, 400),
        ),
        row(
            "SP before the colon",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            err(Error::BadHeader, 400),
        ),
        row(
            "HTAB before the colon",
            "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
            err(Error::BadHeader, 400),
        ),
        row(
            "CR inside a value",
            get_with("X: a\rb\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "LF inside a value",
            get_with("X: a\nb\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "NUL inside a value",
            get_with("X: a\0b\r\n"),
            err(Error::BadHeader, 400),
        ),
        row(
            "DEL inside a value",
            get_with("X: a\x7fb\r\n"),
            err(Error::BadHeader, 400),
        ),
        // ---- Host (400) ------------------------------------------------------
        row(
            "1.1 without Host",
            "GET / HTTP/1.1\r\n\r\n",
            err(Error::MissingHost, 400),
        ),
        row(
            "two Host lines",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "two Host lines in 1.0",
            "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `a b`",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `a/b`",
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `user@host`",
            "GET / HTTP/1.1\r\nHost: user@host\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host as a list",
            "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `a:b:c`: two colons",
            "GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `a:80x`: non-digit port",
            "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `[::1`: unclosed IP literal",
            "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `[::1]x`: text after an IP literal",
            "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `[]`: empty IP literal",
            "GET / HTTP/1.1\r\nHost: []\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `ex%zzample`: bad percent-escape",
            "GET / HTTP/1.1\r\nHost: ex%zzample\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `ex%4`: truncated percent-escape",
            "GET / HTTP/1.1\r\nHost: ex%4\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `a]b`: bracket in a reg-name",
            "GET / HTTP/1.1\r\nHost: a]b\r\n\r\n",
            err(Error::BadHost, 400),
        ),
        row(
            "Host `127.0.0.1:44444`: IPv4 and port",
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:44444\r\n\r\n",
            ok(Head {
                host: Some(b"127.0.0.1:44444"),
                ..GET
            }),
        ),
        row(
            "Host `example.com:`: empty port (RFC 3986 allows it)",
            "GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n",
            ok(Head {
                host: Some(b"example.com:"),
                ..GET
            }),
        ),
        row(
            "Host `ex%41mple.com`: percent-escape",
            "GET / HTTP/1.1\r\nHost: ex%41mple.com\r\n\r\n",
            ok(Head {
                host: Some(b"ex%41mple.com"),
                ..GET
            }),
        ),
        row(
            "Host `[v1.fe:x]:80`: IPvFuture literal",
            "GET / HTTP/1.1\r\nHost: [v1.fe:x]:80\r\n\r\n",
            ok(Head {
                host: Some(b"[v1.fe:x]:80"),
                ..GET
            }),
        ),
        // ---- Content-Length ----------------------------------------------------
        row(
            "Content-Length 3 (body bytes not consumed)",
            post_with("Content-Length: 3\r\n") + "abc",
            ok(Head {
                consumed: Some(post_with("Content-Length: 3\r\n").len()),
                body: BodyKind::Length(3),
                ..POST
            }),
        ),
        row(
            "Content-Length 0 is no body",
            post_with("Content-Length: 0\r\n"),
            ok(POST),
        ),
        row(
            "Content-Length with leading zeros",
            post_with("Content-Length: 007\r\n"),
            ok(Head {
                body: BodyKind::Length(7),
                ..POST
            }),
        ),
        row(
            "Content-Length `5, 5`",
            post_with("Content-Length: 5, 5\r\n"),
            ok(Head {
                body: BodyKind::Length(5),
                ..POST
            }),
        ),
        row(
            "two Content-Length lines, same value",
            post_with("Content-Length: 5\r\nContent-Length: 5\r\n"),
            ok(Head {
                body: BodyKind::Length(5),
                ..POST
            }),
        ),
        row(
            "two Content-Length lines, differing",
            post_with("Content-Length: 5\r\nContent-Length: 6\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length `5, 6`",
            post_with("Content-Length: 5, 6\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length `+5`",
            post_with("Content-Length: +5\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length `-1`",
            post_with("Content-Length: -1\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length `1 2`",
            post_with("Content-Length: 1 2\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length empty",
            post_with("Content-Length:\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length `5,`",
            post_with("Content-Length: 5,\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length hex",
            post_with("Content-Length: 0x10\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length overflows u64",
            post_with("Content-Length: 18446744073709551616\r\n"),
            err(Error::BadContentLength, 400),
        ),
        row(
            "Content-Length over the default max_body_len",
            post_with("Content-Length: 1073741825\r\n"),
            err(Error::BodyTooLarge, 413),
        ),
        row(
            "Content-Length at the default max_body_len",
            post_with("Content-Length: 1073741824\r\n"),
            ok(Head {
                body: BodyKind::Length(1 << 30),
                ..POST
            }),
        ),
        tight_row(
            "Content-Length over max_body_len",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
            err(Error::BodyTooLarge, 413),
        ),
        tight_row(
            "Content-Length at max_body_len",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n",
            ok(Head {
                body: BodyKind::Length(100),
                ..POST
            }),
        ),
        // ---- Transfer-Encoding ------------------------------------------------
        row(
            "chunked",
            post_with("Transfer-Encoding: chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n",
            ok(Head {
                consumed: Some(post_with("Transfer-Encoding: chunked\r\n").len()),
                body: BodyKind::Chunked,
                ..POST
            }),
        ),
        row(
            "Chunked, any case",
            post_with("Transfer-Encoding: ChUnKeD\r\n"),
            ok(Head {
                body: BodyKind::Chunked,
                ..POST
            }),
        ),
        row(
            "Content-Length with Transfer-Encoding",
            post_with("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"),
            err(Error::LengthWithTransferEncoding, 400),
        ),
        row(
            "Transfer-Encoding with Content-Length",
            post_with("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"),
            err(Error::LengthWithTransferEncoding, 400),
        ),
        row(
            "`chunked, gzip`: chunked not final (RFC 9112 §6.3 rule 4)",
            post_with("Transfer-Encoding: chunked, gzip\r\n"),
            err(Error::BadTransferEncoding, 400),
        ),
        row(
            "`gzip, chunked`: coding we do not decode",
            post_with("Transfer-Encoding: gzip, chunked\r\n"),
            err(Error::UnsupportedTransferCoding, 501),
        ),
        row(
            "`gzip` then `chunked` on two lines",
            post_with("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            err(Error::UnsupportedTransferCoding, 501),
        ),
        row(
            "`gzip` alone: chunked not final",
            post_with("Transfer-Encoding: gzip\r\n"),
            err(Error::BadTransferEncoding, 400),
        ),
        row(
            "`identity`: chunked not final",
            post_with("Transfer-Encoding: identity\r\n"),
            err(Error::BadTransferEncoding, 400),
        ),
        row(
            "`,chunked`: empty element",
            post_with("Transfer-Encoding: ,chunked\r\n"),
            err(Error::BadTransferEncoding, 400),
        ),
        row(
            "`chunked, chunked` on one line",
            post_with("Transfer-Encoding: chunked, chunked\r\n"),
            err(Error::BadTransferEncoding, 400),
        ),
        row(
            "`chunked` on two lines",
            post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            err(Error::BadTransferEncoding, 400),
        ),
        row(
            "empty Transfer-Encoding",
            post_with("Transfer-Encoding:\r\n"),
            err(Error::BadTransferEncoding, 400),
        ),
        row(
            "Transfer-Encoding in HTTP/1.0",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            err(Error::BadTransferEncoding, 400),
        ),
        row(
            "Transfer-Encoding with Content-Length in HTTP/1.0",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            err(Error::LengthWithTransferEncoding, 400),
        ),
        // ---- limits ----------------------------------------------------------
        tight_row(
            "target at max_uri_len",
            "GET /aaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n",
            ok(Head {
                target: "/aaaaaaaaaaaaaaa",
                path: "/aaaaaaaaaaaaaaa",
                ..GET
            }),
        ),
        tight_row(
            "target over max_uri_len",
            "GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n",
            err(Error::UriTooLong, 414),
        ),
        tight_row(
            "target over max_uri_len, line unfinished",
            "GET /aaaaaaaaaaaaaaaa",
            err(Error::UriTooLong, 414),
        ),
        tight_row(
            "target over max_uri_len after a leading CRLF, line unfinished",
            "\r\nGET /aaaaaaaaaaaaaaaa",
            err(Error::UriTooLong, 414),
        ),
        tight_row(
            "target over max_uri_len wins over a bad version",
            "GET /aaaaaaaaaaaaaaaa HTTP/2.0\r\nHost: a\r\n\r\n",
            err(Error::UriTooLong, 414),
        ),
        tight_row(
            "target over max_uri_len wins over a bad header",
            "GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\nBad Header: a\r\n\r\n",
            err(Error::UriTooLong, 414),
        ),
        row(
            "target over the default max_uri_len",
            format!("GET {long_target} HTTP/1.1\r\nHost: a\r\n\r\n"),
            err(Error::UriTooLong, 414),
        ),
        tight_row(
            "head at max_head_len",
            // 16 + 9 + 101 + 2 = 128 bytes.
            format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(96)),
            ok(GET),
        ),
        tight_row(
            "head over max_head_len",
            format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(97)),
            err(Error::HeadTooLarge, 431),
        ),
        tight_row(
            "head at max_head_len, unfinished",
            format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(100)),
            Incomplete,
        ),
        tight_row(
            "head over max_head_len, unfinished",
            format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(101)),
            err(Error::HeadTooLarge, 431),
        ),
        row(
            "head over the default max_head_len",
            get_with(&big_header),
            err(Error::HeadTooLarge, 431),
        ),
        tight_row(
            "max_headers headers",
            "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n",
            ok(GET),
        ),
        tight_row(
            "one header over max_headers",
            "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n",
            err(Error::TooManyHeaders, 431),
        ),
        row(
            "more headers than the parser's table holds",
            get_with(&many_headers),
            err(Error::TooManyHeaders, 431),
        ),
        // ---- connection management ---------------------------------------------
        row(
            "1.1 Connection: close",
            get_with("Connection: close\r\n"),
            ok(Head {
                keep_alive: false,
                ..GET
            }),
        ),
        row(
            "1.1 Connection: CLOSE",
            get_with("Connection: CLOSE\r\n"),
            ok(Head {
                keep_alive: false,
                ..GET
            }),
        ),
        row(
            "1.1 close and keep-alive: close wins",
            get_with("Connection: keep-alive, close\r\n"),
            ok(Head {
                keep_alive: false,
                ..GET
            }),
        ),
        row(
            "1.1 Connection: Keep-Alive, foo",
            get_with("Connection: Keep-Alive, foo\r\n"),
            ok(Head {
                names_fields: true,
                ..GET
            }),
        ),
        row(
            "1.0 Connection: keep-alive",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            ok(Head {
                keep_alive: true,
                ..GET10
            }),
        ),
        row(
            "1.0 Connection: Keep-Alive, foo",
            "GET / HTTP/1.0\r\nConnection: Keep-Alive, foo\r\n\r\n",
            ok(Head {
                keep_alive: true,
                names_fields: true,
                ..GET10
            }),
        ),
        row(
            "1.0 keep-alive on a second Connection line",
            "GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n",
            ok(Head {
                keep_alive: true,
                names_fields: true,
                ..GET10
            }),
        ),
        row(
            "1.0 Connection: keep-alive, close",
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            ok(GET10),
        ),
        row(
            "1.1 Expect: 100-continue",
            post_with("Expect: 100-continue\r\nContent-Length: 3\r\n"),
            ok(Head {
                body: BodyKind::Length(3),
                expects_continue: true,
                ..POST
            }),
        ),
        row(
            "1.1 Expect: 100-Continue (case-insensitive)",
            post_with("Expect: 100-Continue\r\nContent-Length: 3\r\n"),
            ok(Head {
                body: BodyKind::Length(3),
                expects_continue: true,
                ..POST
            }),
        ),
        row(
            "1.1 Expect: something else",
            post_with("Expect: 200-ok\r\n"),
            ok(POST),
        ),
        row(
            "1.0 Expect: 100-continue is ignored",
            "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            ok(Head {
                method: Method::Post,
                method_str: "POST",
                body: BodyKind::Length(3),
                ..GET10
            }),
        ),
        row(
            "1.1 Upgrade with Connection: upgrade",
            get_with("Connection: Upgrade\r\nUpgrade: websocket\r\n"),
            ok(Head {
                is_upgrade: true,
                ..GET
            }),
        ),
        row(
            "1.1 Upgrade with Connection: keep-alive, upgrade",
            get_with("Upgrade: websocket\r\nConnection: keep-alive, upgrade\r\n"),
            ok(Head {
                is_upgrade: true,
                ..GET
            }),
        ),
        row(
            "1.1 Upgrade without Connection: upgrade",
            get_with("Upgrade: websocket\r\n"),
            ok(GET),
        ),
        row(
            "1.1 Connection: upgrade without Upgrade",
            get_with("Connection: upgrade\r\n"),
            ok(GET),
        ),
        row(
            "1.0 Upgrade with Connection: upgrade",
            "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            ok(GET10),
        ),
    ]
}

/// The outcome of one parse, compared with `want`. `Ok(Some)` is checked through
/// [`RequestHead::parse_complete`], which exposes every field.
fn check(name: &str, input: &[u8], limits: &Limits, want: Want) {
    let got = parse_request(input, limits);
    let complete = RequestHead::parse_complete(Bytes::copy_from_slice(input), limits);
    match want {
        Want::Incomplete => {
            assert_eq!(got, Ok(None), "{name}");
            assert_eq!(complete.unwrap_err(), Error::UnexpectedEof, "{name}");
        }
        Want::Err(e, status) => {
            assert_eq!(got, Err(e), "{name}");
            assert_eq!(complete.unwrap_err(), e, "{name}: parse_complete");
            assert_eq!(e.status(), status, "{name}: status");
        }
        Want::Ok(h) => {
            let consumed = h.consumed.unwrap_or(input.len());
            let parsed = got
                .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                .unwrap_or_else(|| panic!("{name}: incomplete"));
            assert_eq!(parsed.len(), consumed, "{name}: len");
            assert!(!parsed.is_empty(), "{name}");
            assert_eq!(parsed.body(), h.body, "{name}: body");
            let head = complete.unwrap_or_else(|e| panic!("{name}: parse_complete: {e:?}"));
            assert_eq!(head.as_bytes().as_ref(), &input[..consumed], "{name}: bytes");
            assert_eq!(head.method(), h.method, "{name}: method");
            assert_eq!(head.method_str(), h.method_str, "{name}: method_str");
            assert_eq!(head.target(), h.target, "{name}: target");
            assert_eq!(head.path(), h.path, "{name}: path");
            assert_eq!(head.query(), h.query, "{name}: query");
            assert_eq!(head.version(), h.version, "{name}: version");
            assert_eq!(head.host(), h.host, "{name}: host");
            if !head.is_absolute_form() {
                assert_eq!(head.header("host"), h.host, "{name}: header(host)");
            }
            assert_eq!(head.body(), h.body, "{name}: body");
            assert_eq!(head.keep_alive(), h.keep_alive, "{name}: keep_alive");
            assert_eq!(
                head.expects_continue(),
                h.expects_continue,
                "{name}: expects_continue"
            );
            assert_eq!(head.is_upgrade(), h.is_upgrade, "{name}: is_upgrade");
            assert_eq!(
                head.connection_names_fields(),
                h.names_fields,
                "{name}: connection_names_fields"
            );
        }
    }
}

#[test]
fn request_table() {
    let rows = rows();
    for r in &rows {
        check(r.name, &r.input, &r.limits, r.want);
    }
    eprintln!("{} rows", rows.len());
}

/// A strict prefix of a head is incomplete; a refused input is refused with the
/// same error from the first prefix that is refused on, so the answer does not
/// depend on how the bytes arrived.
#[test]
fn request_table_prefixes() {
    for r in rows() {
        let full = parse_request(&r.input, &r.limits);
        let mut refused = false;
        // Every prefix of the small rows; of the few large ones (default limits),
        // every 61st and the last 64, which keeps the test fast.
        let prefixes = (0..r.input.len())
            .filter(|&end| r.input.len() <= 1024 || end % 61 == 0 || end + 64 >= r.input.len());
        for end in prefixes {
            let got = parse_request(&r.input[..end], &r.limits);
            match r.want {
                Want::Incomplete => assert_eq!(got, Ok(None), "{}: prefix {end}", r.name),
                Want::Ok(h) => {
                    if end < h.consumed.unwrap_or(r.input.len()) {
                        assert_eq!(got, Ok(None), "{}: prefix {end}", r.name);
                    } else {
                        assert_eq!(got, full, "{}: prefix {end}", r.name);
                    }
                }
                Want::Err(e, _) => {
                    if refused {
                        assert_eq!(got, Err(e), "{}: prefix {end}", r.name);
                    } else {
                        assert!(
                            got == Ok(None) || got == Err(e),
                            "{}: prefix {end}: {got:?}",
                            r.name
                        );
                        refused = got.is_err();
                    }
                }
            }
        }
    }
}

#[test]
fn byte_by_byte() {
    let limits = Limits::default();
    let req = b"POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    for end in 0..req.len() {
        assert_eq!(parse_request(&req[..end], &limits), Ok(None), "prefix {end}");
    }
    let parsed = parse_request(req, &limits).unwrap().unwrap();
    assert_eq!(parsed.len(), req.len());
    assert_eq!(parsed.body(), BodyKind::Length(5));
    let head = parsed.into_head(Bytes::from_static(req));
    assert_eq!(head.method(), Method::Post);
    assert_eq!(head.path(), "/upload");
    assert_eq!(head.query(), Some("x=1"));
    assert_eq!(head.host(), Some(&b"example.com"[..]));
    assert!(head.expects_continue());
    assert!(head.keep_alive());
}

#[test]
fn unsupported_version_split_anywhere() {
    // httparse refuses `HTTP/2` as soon as the `2` arrives; the answer must still
    // be 505 once the line is complete, whatever the split.
    let limits = Limits::default();
    let req = b"GET / HTTP/2.0\r\nHost: a\r\n\r\n";
    for end in 0..req.len() {
        let got = parse_request(&req[..end], &limits);
        let line_done = req[..end].contains(&b'\n');
        let want = if line_done {
            Err(Error::VersionNotSupported)
        } else {
            Ok(None)
        };
        assert_eq!(got, want, "prefix {end}");
    }
    assert_eq!(parse_request(req, &limits), Err(Error::VersionNotSupported));
    assert_eq!(parse_request(b"GET / HTTP/2", &limits), Ok(None));
    assert_eq!(parse_request(b"GET / HTTP/2.0\r", &limits), Ok(None));
    assert_eq!(
        parse_request(b"GET / HTTP/2.0\n", &limits),
        Err(Error::VersionNotSupported)
    );
    assert_eq!(
        parse_request(b"GET / HTTP/2x", &limits),
        Err(Error::BadRequestLine)
    );
}

#[test]
fn pipelined() {
    let limits = Limits::default();
    let first = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
    let second = "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    let body = "xyz";
    let third = "GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let all = Bytes::from(format!("{first}{second}{body}{third}"));

    let p1 = parse_request(&all, &limits).unwrap().unwrap();
    assert_eq!(p1.len(), first.len());
    assert_eq!(p1.body(), BodyKind::Empty);
    let h1 = p1.into_head(all.slice(..first.len()));
    assert_eq!(h1.target(), "/one");
    assert!(h1.keep_alive());

    let rest = all.slice(first.len()..);
    let p2 = parse_request(&rest, &limits).unwrap().unwrap();
    assert_eq!(p2.len(), second.len());
    assert_eq!(p2.body(), BodyKind::Length(3));
    let h2 = p2.into_head(rest.slice(..second.len()));
    assert_eq!(h2.method(), Method::Post);
    assert_eq!(h2.target(), "/two");
    assert_eq!(&rest[second.len()..second.len() + 3], body.as_bytes());

    let rest = rest.slice(second.len() + body.len()..);
    let p3 = parse_request(&rest, &limits).unwrap().unwrap();
    assert_eq!(p3.len(), third.len());
    assert_eq!(p3.len(), rest.len());
    let h3 = p3.into_head(rest.clone());
    assert_eq!(h3.target(), "/three");
    assert!(!h3.keep_alive());

    // parse_complete takes the first head of a pipelined buffer too.
    let h = RequestHead::parse_complete(all.clone(), &limits).unwrap();
    assert_eq!(h.as_bytes().len(), first.len());
    assert_eq!(h.path(), "/one");
}

#[test]
fn headers_in_order() {
    let raw = Bytes::from_static(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nEmpty:\r\n\r\n");
    let head = RequestHead::parse_complete(raw, &Limits::default()).unwrap();
    let headers: Vec<(&str, &[u8])> = head.headers().collect();
    assert_eq!(
        headers,
        [("Host", &b"a"[..]), ("X-A", b"1"), ("x-a", b"2"), ("Empty", b"")]
    );
    assert_eq!(head.headers().len(), 4);
    assert_eq!(head.header("X-a"), Some(&b"1"[..]));
    assert_eq!(head.header("missing"), None);
}
