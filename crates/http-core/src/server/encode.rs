//! Response encoding: the framing decisions for a [`Response`] and the bytes of
//! its head, with a small body copied in behind it. What is left to send after
//! the head (a large or streamed body) the connection writes itself.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::AsyncRead;

use super::service::{Body, Response};
use crate::wire::response::{write_content_length, write_header, write_status_line};
use crate::{with_date_at, Method, Version};

/// Response bodies up to this size are copied into the write buffer so the head
/// and body leave in one write; larger ones are written from their own buffer.
const COPY_BODY_MAX: usize = 32 * 1024;

/// The text of the answer that replaces a misused [`Body::Length`].
const LENGTH_WITHOUT_BODY: &str = "internal error: a length without its body\n";

/// What remains to be sent once [`encode`] has written a head.
pub(super) enum Payload {
    /// Nothing: the head and a body of this many bytes (copied behind the head,
    /// or none at all) are in the write buffer.
    Written(u64),
    /// A body too large to copy: to be written from its own buffer.
    Large(Bytes),
    /// A body read from `reader` as it is sent: exactly `len` bytes when
    /// given, else chunked (`chunked`) or until the connection closes.
    Stream {
        reader: Box<dyn AsyncRead + Send + Unpin>,
        len: Option<u64>,
        chunked: bool,
    },
}

/// 1xx, 204 and 304 responses have no body, whatever they declare.
pub(crate) fn is_bodiless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// What a response answers, as its encoding needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answering {
    /// The request's method (HEAD: no body follows).
    pub method: Method,
    /// The request's version (HTTP/1.0: no chunked coding, keep-alive named).
    pub version: Version,
    /// The response switches protocols (`Connection: upgrade`).
    pub upgrade: bool,
    /// The time the `Date` header gives.
    pub dated: Instant,
}

/// Writes the head of `resp`, an answer to the request `to` describes, into
/// `w`, with the body behind it when that is small, and takes the body out of
/// `resp`. The driver writes the framing: `Date` (as of `dated`), then the
/// service's header block and headers, then `Connection` (`upgrade` for a
/// protocol switch, `close` when `close` is set, `keep-alive` for HTTP/1.0), then
/// `Content-Length` or `Transfer-Encoding: chunked`. Sets `close` when the body
/// can only be delimited by closing (an unknown length for HTTP/1.0).
///
/// A [`Body::Length`] where a body must follow is a service's mistake: `resp` is
/// replaced by a 500 (its log fields kept) and `close` set.
/// `extra` is header lines (each with its CRLF) the connection adds to every
/// response, after the service's (HSTS over TLS; empty otherwise).
pub(super) fn encode(
    w: &mut BytesMut,
    resp: &mut Response,
    to: Answering,
    extra: &[u8],
    close: &mut bool,
) -> Payload {
    let Answering {
        method,
        version,
        upgrade,
        dated: now,
    } = to;
    if matches!(resp.body, Body::Length(_)) && method != Method::Head && !is_bodiless(resp.status) {
        refuse_length_only(resp, close);
    }
    let status = resp.status;
    let bodiless_status = is_bodiless(status);
    let body_len = resp.body.len();
    let chunked =
        !bodiless_status && body_len.is_none() && version == Version::Http11 && method != Method::Head;
    if !bodiless_status && body_len.is_none() && version == Version::Http10 && method != Method::Head {
        // Close-delimited: the only way to end an unknown-length body for HTTP/1.0.
        *close = true;
    }
    write_status_line(w, status);
    with_date_at(now, |d| write_header(w, "Date", d));
    w.extend_from_slice(resp.block.as_bytes());
    for (name, value) in &resp.headers {
        write_header(w, name, value);
    }
    if !extra.is_empty() {
        w.extend_from_slice(extra);
    }
    if upgrade {
        write_header(w, "Connection", b"upgrade");
    } else if *close {
        write_header(w, "Connection", b"close");
    } else if version == Version::Http10 {
        write_header(w, "Connection", b"keep-alive");
    }
    if !bodiless_status {
        match body_len {
            Some(n) => write_content_length(w, n),
            None if chunked => write_header(w, "Transfer-Encoding", b"chunked"),
            None => {}
        }
    }
    w.put_slice(b"\r\n");
    let body = std::mem::replace(&mut resp.body, Body::Empty);
    if bodiless_status || method == Method::Head {
        return Payload::Written(0);
    }
    match body {
        // `Length` was refused above.
        Body::Empty | Body::Length(_) => Payload::Written(0),
        Body::Full(b) if b.len() <= COPY_BODY_MAX => {
            w.extend_from_slice(&b);
            Payload::Written(b.len() as u64)
        }
        Body::Full(b) => Payload::Large(b),
        Body::Stream { len, reader } => Payload::Stream { reader, len, chunked },
    }
}

/// Replaces a response that announces a length it cannot send with a 500.
#[cold]
#[inline(never)]
pub(crate) fn refuse_length_only(resp: &mut Response, close: &mut bool) {
    tracing::warn!(
        status = resp.status,
        "the service answered a request other than HEAD with Body::Length; sending 500 instead"
    );
    let log = std::mem::take(&mut resp.log);
    *resp = Response::text(500, LENGTH_WITHOUT_BODY);
    resp.log = log;
    *close = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `encode` made of `resp`: the bytes written, what is left to send,
    /// whether the connection is to close, and the response as it was left.
    struct Encoded {
        text: String,
        rest: Payload,
        close: bool,
        resp: Response,
    }

    fn answering(method: Method, version: Version) -> Answering {
        Answering {
            method,
            version,
            upgrade: false,
            dated: Instant::now(),
        }
    }

    fn encoded(mut resp: Response, method: Method, version: Version) -> Encoded {
        let mut w = BytesMut::new();
        let mut close = false;
        let rest = encode(&mut w, &mut resp, answering(method, version), &[], &mut close);
        let text = String::from_utf8(w.to_vec()).unwrap();
        // The `Date` line comes second, always; the rest is compared without it.
        let mut lines = text.split_inclusive("\r\n");
        let status = lines.next().unwrap_or_default();
        assert!(lines.next().is_some_and(|l| l.starts_with("Date: ")), "{text}");
        let text = status.to_string() + &lines.collect::<String>();
        Encoded {
            text,
            rest,
            close,
            resp,
        }
    }

    #[test]
    fn head_order_is_status_date_block_headers_connection_framing() {
        let mut block = crate::HeaderBlock::builder();
        block.push("Server", b"t");
        let resp = Response::new(200)
            .header_block(block.build())
            .header("X-A", "1")
            .body("hi")
            .close();
        let mut close = resp.close;
        let mut resp = resp;
        let mut w = BytesMut::new();
        let rest = encode(
            &mut w,
            &mut resp,
            answering(Method::Get, Version::Http11),
            &[],
            &mut close,
        );
        assert!(matches!(rest, Payload::Written(2)));
        let text = String::from_utf8(w.to_vec()).unwrap();
        let (status_date, rest) = text.split_at(text.find("\r\nServer").unwrap());
        assert!(status_date.starts_with("HTTP/1.1 200 OK\r\nDate: "));
        assert_eq!(
            rest,
            "\r\nServer: t\r\nX-A: 1\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn length_only_body_announces_its_length_for_head() {
        let resp = Response::new(200).header("X-A", "1").body(Body::Length(1918));
        let e = encoded(resp, Method::Head, Version::Http11);
        assert_eq!(
            e.text,
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 1918\r\n\r\n"
        );
        assert!(matches!(e.rest, Payload::Written(0)));
        assert!(!e.close);
    }

    #[test]
    fn length_only_body_is_allowed_for_bodiless_statuses() {
        let e = encoded(
            Response::new(304).body(Body::Length(10)),
            Method::Get,
            Version::Http11,
        );
        assert_eq!(e.text, "HTTP/1.1 304 Not Modified\r\n\r\n");
        assert!(matches!(e.rest, Payload::Written(0)));
        assert!(!e.close);
    }

    #[test]
    fn length_only_body_for_get_becomes_a_500_and_closes() {
        for version in [Version::Http11, Version::Http10] {
            let resp = Response::new(200)
                .header("X-A", "1")
                .body(Body::Length(1918))
                .log_field("backend", crate::LogValue::Text("b1".into()));
            let e = encoded(resp, Method::Get, version);
            let n = LENGTH_WITHOUT_BODY.len();
            assert!(matches!(e.rest, Payload::Written(m) if m == n as u64));
            assert!(e.close);
            assert_eq!(e.resp.status(), 500);
            assert_eq!(e.resp.log.len(), 1, "the service's log fields are kept");
            assert_eq!(
                e.text,
                format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\
                     Connection: close\r\nContent-Length: {n}\r\n\r\n{LENGTH_WITHOUT_BODY}"
                )
            );
        }
    }

    #[test]
    fn unknown_length_is_chunked_for_http11_and_close_delimited_for_http10() {
        let stream = || {
            Response::new(200).body(Body::Stream {
                len: None,
                reader: Box::new(tokio::io::empty()),
            })
        };
        let e = encoded(stream(), Method::Get, Version::Http11);
        assert!(matches!(
            e.rest,
            Payload::Stream {
                chunked: true,
                len: None,
                ..
            }
        ));
        assert_eq!(e.text, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(!e.close);

        let e = encoded(stream(), Method::Get, Version::Http10);
        assert!(matches!(
            e.rest,
            Payload::Stream {
                chunked: false,
                len: None,
                ..
            }
        ));
        assert_eq!(e.text, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        assert!(e.close);
    }

    #[test]
    fn large_bodies_are_left_to_write_from_their_own_buffer() {
        let big = Bytes::from(vec![b'x'; COPY_BODY_MAX + 1]);
        let e = encoded(Response::new(200).body(big.clone()), Method::Get, Version::Http11);
        assert!(matches!(e.rest, Payload::Large(b) if b == big));
        assert_eq!(
            e.text,
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len())
        );
    }
}
