//! The plain-HTTP listener beside an HTTPS one: every request is sent to the
//! same URL over HTTPS with `308 Permanent Redirect`.

use bytes::Bytes;

use super::service::{Request, Response, Service};
use crate::RequestHead;

/// The answer of a plain listener that sends clients to HTTPS: `308
/// Permanent Redirect` to `https://HOST[:PORT]TARGET`, where HOST is the
/// request's host (the `Host` header, or the authority of an absolute-form
/// target) without its port, PORT is `https_port` unless it is 443, and
/// TARGET is the path and query as sent. 308 keeps the method and body, so a
/// POST is repeated as a POST. A request without a host, or whose host is not
/// a DNS name or an IP address literal, gets 400. Never with HSTS: RFC 6797
/// §7.2 has it ignored over plain HTTP.
///
/// ```
/// use http_core::{https_redirect, Limits, RequestHead};
/// let head = RequestHead::parse_complete(
///     "GET /page.html?x=1 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n".into(),
///     &Limits::default(),
/// )
/// .unwrap();
/// let location = |port| {
///     let r = https_redirect(&head, port);
///     assert_eq!(r.status(), 308);
///     let location = r.headers().find(|(n, _)| *n == "Location").map(|(_, v)| v.to_vec());
///     location
/// };
/// assert_eq!(location(8443).unwrap(), b"https://example.test:8443/page.html?x=1");
/// assert_eq!(location(443).unwrap(), b"https://example.test/page.html?x=1");
/// ```
pub fn https_redirect(head: &RequestHead, https_port: u16) -> Response {
    let Some(host) = head.host().and_then(host_without_port) else {
        return Response::text(400, "bad or missing Host: cannot redirect to https\n");
    };
    let target = head.origin_form();
    let mut location = String::with_capacity(16 + host.len() + target.len());
    location.push_str("https://");
    location.push_str(host);
    if https_port != 443 {
        location.push(':');
        location.push_str(itoa::Buffer::new().format(https_port));
    }
    if !target.starts_with('/') {
        // An absolute-form target without a path, or the asterisk form.
        location.push('/');
        if target.starts_with('?') {
            location.push_str(target);
        }
    } else {
        location.push_str(target);
    }
    Response::text(308, "redirecting to https\n").header("Location", Bytes::from(location))
}

/// The host of a `Host` value without its port, if it is a DNS name, an IPv4
/// address or a bracketed IPv6 literal (no user info, no percent-encoding).
fn host_without_port(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?;
    let host = if text.starts_with('[') {
        let end = text.find(']')?;
        let (literal, rest) = text.split_at(end + 1);
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        literal[1..literal.len() - 1].parse::<std::net::Ipv6Addr>().ok()?;
        literal
    } else {
        let (name, port) = match text.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (text, None),
        };
        if port.is_some_and(|p| !is_port(p)) {
            return None;
        }
        name
    };
    let name_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    name_ok.then_some(host)
}

fn is_port(p: &str) -> bool {
    p.is_empty() || (p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok())
}

/// A [`Service`] answering every request with [`https_redirect`]: run it on
/// the plain listener beside an HTTPS one.
///
/// ```no_run
/// use http_core::{RedirectToHttps, Server};
/// # async fn run() -> std::io::Result<()> {
/// let listener = http_core::listen("0.0.0.0:80".parse().unwrap())?;
/// Server::new(RedirectToHttps::new(443)).serve(listener, std::future::pending()).await
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RedirectToHttps {
    https_port: u16,
}

impl RedirectToHttps {
    /// Redirects to the HTTPS listener on `https_port`.
    pub fn new(https_port: u16) -> Self {
        RedirectToHttps { https_port }
    }
}

impl Service for RedirectToHttps {
    async fn call(&self, req: Request<'_>) -> Response {
        https_redirect(req.head, self.https_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(req: &str, port: u16) -> (u16, Option<String>) {
        let head =
            RequestHead::parse_complete(Bytes::from(req.to_owned()), &crate::Limits::default()).unwrap();
        let r = https_redirect(&head, port);
        let location = r
            .headers()
            .find(|(n, _)| *n == "Location")
            .map(|(_, v)| String::from_utf8(v.to_vec()).unwrap());
        (r.status(), location)
    }

    #[test]
    fn locations() {
        let ok = |req: &str, port, want: &str| {
            assert_eq!(location(req, port), (308, Some(want.to_owned())), "{req}")
        };
        ok("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", 443, "https://a.test/");
        ok(
            "GET /x?q=1 HTTP/1.1\r\nHost: a.test:80\r\n\r\n",
            8443,
            "https://a.test:8443/x?q=1",
        );
        ok(
            "GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
            443,
            "https://127.0.0.1/x",
        );
        ok(
            "GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
            9443,
            "https://[::1]:9443/x",
        );
        ok(
            "GET http://b.test:8080/p?q HTTP/1.1\r\nHost: b.test\r\n\r\n",
            443,
            "https://b.test/p?q",
        );
        ok(
            "GET http://b.test HTTP/1.1\r\nHost: b.test\r\n\r\n",
            443,
            "https://b.test/",
        );
        ok(
            "GET http://b.test?q HTTP/1.1\r\nHost: b.test\r\n\r\n",
            443,
            "https://b.test/?q",
        );
    }

    #[test]
    fn bad_hosts_get_400() {
        assert_eq!(location("GET / HTTP/1.0\r\n\r\n", 443).0, 400);
        for host in [
            "a_b.test",
            "-a.test",
            "a..test",
            "[zz]:80",
            "[::1]x",
            "a.test:99999",
            "a.test:x",
        ] {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            // A host the parser refuses already gets its 400 there.
            if let Ok(head) = RequestHead::parse_complete(Bytes::from(req), &crate::Limits::default()) {
                assert_eq!(https_redirect(&head, 443).status(), 400, "{host}");
            }
        }
    }
}
