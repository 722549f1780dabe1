//! Header rewriting, as pure functions: what the backend receives (hop-by-hop
//! and `Connection`-named fields removed, `X-Forwarded-*` and `Via` added, an
//! absolute-form target turned into origin form) and what the client receives
//! back; which protocol switches are passed on; whether a forwarded head still
//! fits the limits.

use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};
use http_core::{
    is_hop_by_hop, write_header, write_request_line, BodyEncoder, HeaderBlock, Limits, RequestHead, Response,
    ResponseHead, Version,
};

use crate::hooks::{HeaderEdits, RequestEdits};

/// Header lines forwarding can add to a request: `X-Forwarded-For`,
/// `X-Forwarded-Proto`, `Via`, and `X-Forwarded-Host` or (without one) `Host`.
/// The framing and upgrade lines only replace the client's.
const ADDED_LINES: usize = 4;
/// More than forwarding can add to a head besides a copy of the host: the four
/// lines above with the client's address and our `Via` entry, and a longest
/// backend address as `Host`.
const ADDED_BYTES: usize = 256;
/// Stands for the backend's address (the `Host` of a request that had none) when
/// a head is sized before a backend is chosen: as long as any address can be.
const LONGEST_ADDR: &[u8] = b"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
/// The `Via` entry this proxy adds (it names the protocol the request came in with).
const VIA: &[u8] = b"1.1 rr-proxy";
const VIA_10: &[u8] = b"1.0 rr-proxy";
/// RFC 9110 §7.6.3: `Via` names the protocol received, also when the request
/// goes on in another (a request received over HTTP/2 leaves as HTTP/1.1).
const VIA_20: &[u8] = b"2.0 rr-proxy";

/// Writes the head sent to the backend, without its framing line and final
/// blank line (the client role adds those for the body it sends). `backend` is
/// the backend's address, the `Host` of a request that came without one;
/// `tls`: the client's request came over TLS (`X-Forwarded-Proto: https`).
pub(crate) fn write_request_head(
    out: &mut BytesMut,
    head: &RequestHead,
    peer: Option<SocketAddr>,
    tls: bool,
    backend: &[u8],
    edits: &RequestEdits,
) {
    // An absolute-form target goes on in origin form, with its authority as the
    // Host (RFC 9112 §3.2.2: the received Host is then replaced).
    let absolute = head.is_absolute_form();
    match &edits.target {
        Some(t) => write_request_line(out, head.method_str(), t),
        None => {
            let target = head.origin_form();
            if target.starts_with(['/', '*']) {
                write_request_line(out, head.method_str(), target);
            } else {
                out.put_slice(head.method_str().as_bytes());
                out.put_slice(b" /");
                out.put_slice(target.as_bytes());
                out.put_slice(b" HTTP/1.1\r\n");
            }
        }
    }

    let named = head.connection_names_fields();
    // X-Forwarded-For and Via are rebuilt below, each as one line that keeps the
    // values received and appends ours; written straight into `out`.
    let (mut has_xff, mut has_via) = (false, false);
    for (n, value) in head.headers().raw() {
        if is_hop_by_hop(n)
            || n.eq_ignore_ascii_case(b"content-length")
            || n.eq_ignore_ascii_case(b"expect")
            || n.eq_ignore_ascii_case(b"x-forwarded-proto")
            || n.eq_ignore_ascii_case(b"x-forwarded-host")
            // Only meaningful with an h2c upgrade, which is never passed on.
            || n.eq_ignore_ascii_case(b"http2-settings")
        {
            continue;
        }
        if n.eq_ignore_ascii_case(b"x-forwarded-for") {
            has_xff = true;
            continue;
        }
        if n.eq_ignore_ascii_case(b"via") {
            has_via = true;
            continue;
        }
        if named && !n.eq_ignore_ascii_case(b"host") && connection_names(head, n) {
            continue;
        }
        if absolute && n.eq_ignore_ascii_case(b"host") {
            continue;
        }
        if !edits.headers.is_empty() && edits.headers.removes(n) {
            continue;
        }
        write_header(out, n, value);
    }
    for (n, v) in &edits.headers.add {
        write_header(out, n.as_bytes(), v);
    }
    let host = head.host();
    match host {
        Some(h) if absolute => write_header(out, b"Host", h),
        Some(_) => {}
        // An HTTP/1.0 request without Host: HTTP/1.1 requires one.
        None => write_header(out, b"Host", backend),
    }
    if has_xff || peer.is_some() {
        out.put_slice(b"X-Forwarded-For: ");
        let mut first = true;
        if has_xff {
            put_values(out, head, "x-forwarded-for", &mut first);
        }
        if let Some(peer) = peer {
            if !first {
                out.put_slice(b", ");
            }
            put_ip(out, peer.ip());
        }
        out.put_slice(b"\r\n");
    }
    write_header(out, b"X-Forwarded-Proto", if tls { b"https" } else { b"http" });
    if let Some(h) = host {
        write_header(out, b"X-Forwarded-Host", h);
    }
    out.put_slice(b"Via: ");
    let mut first = true;
    if has_via {
        put_values(out, head, "via", &mut first);
    }
    if !first {
        out.put_slice(b", ");
    }
    out.put_slice(match head.version() {
        Version::Http10 => VIA_10,
        Version::Http11 => VIA,
        Version::Http2 => VIA_20,
    });
    out.put_slice(b"\r\n");
    if upgrade_passed_on(head) {
        write_header(out, b"Connection", b"upgrade");
        out.put_slice(b"Upgrade: ");
        let mut first = true;
        for_each_offer(head, |t| {
            if !first {
                out.put_slice(b", ");
            }
            out.put_slice(t);
            first = false;
        });
        out.put_slice(b"\r\n");
    }
}

/// True when the request, forwarded, fits `limits` (which the backends are taken
/// to apply as well): the lines the proxy adds must not push it over the count
/// or size limit the client's head was held to.
pub(crate) fn fits_limits(
    head: &RequestHead,
    peer: Option<SocketAddr>,
    tls: bool,
    edits: &RequestEdits,
    limits: &Limits,
) -> bool {
    let lines = head.headers().len();
    let len = head.as_bytes().len();
    // Forwarding adds at most ADDED_LINES lines, a copy of the host (shorter
    // than the head) and ADDED_BYTES, and may normalise each line's separator
    // to `: ` and its end to CRLF.
    if edits.is_empty()
        && lines + ADDED_LINES <= limits.max_headers
        && 2 * len + 2 * lines + ADDED_BYTES <= limits.max_head_len
    {
        return true;
    }
    // Close to a limit, or edited: size the head exactly as it would be sent.
    let mut out = BytesMut::new();
    write_request_head(&mut out, head, peer, tls, LONGEST_ADDR, edits);
    BodyEncoder::new(head.body()).write_framing_header(&mut out);
    out.put_slice(b"\r\n");
    // Every line ends in LF: the request line, the headers and the blank line.
    let lines = out.iter().filter(|&&b| b == b'\n').count().saturating_sub(2);
    lines <= limits.max_headers && out.len() <= limits.max_head_len
}

/// A protocol named in `Upgrade` that the proxy passes on: any but HTTP/2's.
/// `h2c` is stripped, as nginx does (a backend switching to it would hold a
/// connection the proxy can only tunnel); `h2` is never valid in `Upgrade`.
pub(crate) fn passes_on(token: &[u8]) -> bool {
    !same_protocol(b"h2c", token) && !same_protocol(b"h2", token)
}

/// Calls `f` with each protocol of the request's `Upgrade` lines that is passed on.
pub(crate) fn for_each_offer(head: &RequestHead, mut f: impl FnMut(&[u8])) {
    for (n, v) in head.headers().raw() {
        if n.eq_ignore_ascii_case(b"upgrade") {
            http_core::for_each_token(v, |t| {
                if passes_on(t) {
                    f(t)
                }
            });
        }
    }
}

/// The request asks to switch protocols and offers one that is passed on.
pub(crate) fn upgrade_passed_on(head: &RequestHead) -> bool {
    if !head.is_upgrade() {
        return false;
    }
    let mut any = false;
    for_each_offer(head, |_| any = true);
    any
}

/// The backend's 101 names, in `Upgrade`, only protocols the client offered (a
/// version the client left open may be chosen), and at least one.
pub(crate) fn switches_to_offered(resp: &ResponseHead, req: &RequestHead) -> bool {
    let (mut any, mut all) = (false, true);
    for (n, v) in resp.headers().raw() {
        if n.eq_ignore_ascii_case(b"upgrade") {
            http_core::for_each_token(v, |answered| {
                any = true;
                let mut offered = false;
                for_each_offer(req, |o| offered |= same_protocol(o, answered));
                all &= offered;
            });
        }
    }
    any && all
}

/// `offered` and `answered` (`name[/version]`) name the same protocol: the
/// names match, and so do the versions if both give one.
pub(crate) fn same_protocol(offered: &[u8], answered: &[u8]) -> bool {
    fn split(t: &[u8]) -> (&[u8], Option<&[u8]>) {
        match t.iter().position(|&b| b == b'/') {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        }
    }
    let ((on, ov), (an, av)) = (split(offered), split(answered));
    on.eq_ignore_ascii_case(an)
        && match (ov, av) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        }
}

/// A failure answer to a request that asked to switch protocols closes the
/// connection: what the client sends next may be in the other protocol.
pub(crate) fn after_upgrade(head: &RequestHead, resp: Response) -> Response {
    if head.is_upgrade() {
        resp.close()
    } else {
        resp
    }
}

/// True when a `Connection` header of `head` names the field `name`.
pub(crate) fn connection_names(head: &RequestHead, name: &[u8]) -> bool {
    head.headers()
        .raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .any(|(_, v)| http_core::list_contains(v, name))
}

/// Appends every value of header `name`, comma-separated, after what `first` says
/// was written already.
fn put_values(out: &mut BytesMut, head: &RequestHead, name: &str, first: &mut bool) {
    for (_, v) in head
        .headers()
        .raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    {
        if !*first {
            out.put_slice(b", ");
        }
        out.put_slice(v);
        *first = false;
    }
}

/// Writes an address as `Display` does; IPv4 without the formatting machinery,
/// which cost as much as building the rest of the request head.
fn put_ip(out: &mut BytesMut, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut num = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.put_u8(b'.');
                }
                out.put_slice(num.format(octet).as_bytes());
            }
        }
        std::net::IpAddr::V6(_) => {
            let _ = std::fmt::Write::write_fmt(&mut BytesMutWriter(out), format_args!("{ip}"));
        }
    }
}

struct BytesMutWriter<'a>(&'a mut BytesMut);

impl std::fmt::Write for BytesMutWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

/// The response headers passed to the client: hop-by-hop fields and those the
/// backend's `Connection` names are removed (`Upgrade` is kept on a 101).
pub(crate) fn response_headers(head: &ResponseHead, switching: bool, edits: &HeaderEdits) -> HeaderBlock {
    // The values of the `Connection` lines (a name listed there is hop-by-hop).
    let mut connection: Vec<&[u8]> = Vec::new();
    for (n, v) in head.headers().raw() {
        // A value that only names a header dropped anyway (the usual
        // `keep-alive`) changes nothing: not keeping it spares an allocation.
        if n.eq_ignore_ascii_case(b"connection") && !is_hop_by_hop(v) {
            connection.push(v);
        }
    }
    let mut block = HeaderBlock::builder_with_capacity(head.as_bytes().len());
    // The lines come from a parsed head: copied as they are, framing lines left out.
    block.extend_from_parsed(head.headers(), |name, _| {
        if switching && name.eq_ignore_ascii_case(b"upgrade") {
            return true;
        }
        !(is_hop_by_hop(name)
            || connection.iter().any(|v| http_core::list_contains(v, name))
            || (!edits.is_empty() && edits.removes(name)))
    });
    for (name, value) in &edits.add {
        block.push(name.as_bytes(), value);
    }
    block.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn head(text: &str) -> RequestHead {
        RequestHead::parse_complete(Bytes::copy_from_slice(text.as_bytes()), &Limits::default()).unwrap()
    }

    /// The whole head as the backend receives it (with its framing line).
    fn request_head(head: &RequestHead, peer: Option<SocketAddr>, backend: &[u8]) -> BytesMut {
        request_head_edited(head, peer, backend, &RequestEdits::default())
    }

    fn request_head_edited(
        head: &RequestHead,
        peer: Option<SocketAddr>,
        backend: &[u8],
        edits: &RequestEdits,
    ) -> BytesMut {
        let mut out = BytesMut::new();
        write_request_head(&mut out, head, peer, false, backend, edits);
        BodyEncoder::new(head.body()).write_framing_header(&mut out);
        out.put_slice(b"\r\n");
        out
    }

    fn forwarded(text: &str, peer: Option<SocketAddr>) -> String {
        String::from_utf8(request_head(&head(text), peer, b"10.0.0.9:80").to_vec()).unwrap()
    }

    const PEER: Option<SocketAddr> = Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
        5000,
    ));

    #[test]
    fn forwarded_proto_is_https_for_tls_clients() {
        let h = head("GET / HTTP/1.1\r\nHost: site\r\nX-Forwarded-Proto: http\r\n\r\n");
        let mut out = BytesMut::new();
        write_request_head(&mut out, &h, PEER, true, b"10.0.0.9:80", &RequestEdits::default());
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(out.matches("X-Forwarded-Proto").count(), 1, "{out}");
        assert!(out.contains("\r\nX-Forwarded-Proto: https\r\n"), "{out}");
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_not_forwarded() {
        let out = forwarded(
            "GET /a HTTP/1.1\r\nHost: site\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n\
             TE: trailers\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n",
            PEER,
        );
        assert!(
            out.starts_with("GET /a HTTP/1.1\r\nHost: site\r\nX-Kept: 2\r\n"),
            "{out}"
        );
        for gone in ["Connection", "Keep-Alive", "TE:", "X-Secret"] {
            assert!(!out.contains(gone), "{gone} forwarded: {out}");
        }
    }

    #[test]
    fn forwarded_for_proto_host_and_via_are_appended_or_replaced() {
        let out = forwarded(
            "GET / HTTP/1.1\r\nHost: site\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Host: forged\r\nVia: 1.0 edge\r\n\r\n",
            PEER,
        );
        assert!(
            out.contains("\r\nX-Forwarded-For: 203.0.113.1, 192.0.2.7\r\n"),
            "{out}"
        );
        assert!(
            out.contains("\r\nX-Forwarded-Proto: http\r\n") && !out.contains("https"),
            "{out}"
        );
        assert!(
            out.contains("\r\nX-Forwarded-Host: site\r\n") && !out.contains("forged"),
            "{out}"
        );
        assert!(out.contains("\r\nVia: 1.0 edge, 1.1 rr-proxy\r\n"), "{out}");
        let out = forwarded("GET / HTTP/1.0\r\n\r\n", None);
        assert!(!out.contains("X-Forwarded-For"), "{out}");
        assert!(
            out.contains("\r\nHost: 10.0.0.9:80\r\n"),
            "an HTTP/1.0 request gets a Host: {out}"
        );
        assert!(out.contains("\r\nVia: 1.0 rr-proxy\r\n"), "{out}");
    }

    #[test]
    fn absolute_targets_go_on_in_origin_form_with_their_authority_as_host() {
        let out = forwarded(
            "GET http://example.com/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
            None,
        );
        assert!(out.starts_with("GET /p?q=1 HTTP/1.1\r\n"), "{out}");
        assert!(
            out.contains("\r\nHost: example.com\r\n") && !out.contains("other"),
            "{out}"
        );
    }

    #[test]
    fn bodies_are_reframed_and_expect_is_not_forwarded() {
        let out = forwarded(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\nExpect: 100-continue\r\n\r\n",
            None,
        );
        assert!(
            out.ends_with("\r\nContent-Length: 5\r\n\r\n") && !out.contains("Expect"),
            "{out}"
        );
        let out = forwarded(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            None,
        );
        assert!(out.ends_with("\r\nTransfer-Encoding: chunked\r\n\r\n"), "{out}");
    }

    #[test]
    fn hook_edits_are_applied_and_counted_in_the_limits() {
        let mut edits = RequestEdits::default();
        assert!(edits.set_header("X-User", "alice"));
        assert!(edits.remove_header("Cookie"));
        assert!(edits.set_target("/v2/"));
        let h = head("GET /v1/ HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nX-User: mallory\r\n\r\n");
        let out = String::from_utf8(request_head_edited(&h, None, b"b", &edits).to_vec()).unwrap();
        assert!(
            out.starts_with("GET /v2/ HTTP/1.1\r\nHost: h\r\nX-User: alice\r\n"),
            "{out}"
        );
        assert!(!out.contains("Cookie") && !out.contains("mallory"), "{out}");
        let limits = Limits {
            max_headers: 5,
            ..Limits::default()
        };
        // Host, X-User, X-Forwarded-Proto, -Host and Via: five; one more is too many.
        assert!(fits_limits(&h, None, false, &edits, &limits));
        assert!(edits.set_header("X-More", "1"));
        assert!(!fits_limits(&h, None, false, &edits, &limits));
    }

    #[test]
    fn response_headers_drop_hop_by_hop_length_and_date() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: 5\r\n\
                    Content-Length: 2\r\nDate: x\r\nUpgrade: h2c\r\nX-Kept: y\r\n\r\n";
        let p = http_core::parse_response(raw, http_core::Method::Get, &Limits::default())
            .unwrap()
            .unwrap();
        let len = p.len();
        let resp = p.into_head(Bytes::copy_from_slice(&raw[..len]));
        let block = response_headers(&resp, false, &HeaderEdits::default());
        assert_eq!(block.as_bytes(), b"X-Kept: y\r\n");
        let switching = response_headers(&resp, true, &HeaderEdits::default());
        assert_eq!(switching.as_bytes(), b"Upgrade: h2c\r\nX-Kept: y\r\n");
    }

    #[test]
    fn protocols_match_by_name_and_by_version_when_both_give_one() {
        assert!(same_protocol(b"websocket", b"WebSocket"));
        assert!(same_protocol(b"websocket", b"websocket/13"));
        assert!(same_protocol(b"websocket/13", b"websocket"));
        assert!(!same_protocol(b"websocket/13", b"websocket/8"));
        assert!(!same_protocol(b"websocket", b"h2c"));
        assert!(!passes_on(b"h2c") && !passes_on(b"H2C") && !passes_on(b"h2") && !passes_on(b"h2c/1"));
        assert!(passes_on(b"websocket") && passes_on(b"h2cx"));
    }

    #[test]
    fn h2c_offers_are_not_passed_on() {
        let only_h2c = head("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
        assert!(only_h2c.is_upgrade() && !upgrade_passed_on(&only_h2c));
        let both =
            head("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n");
        assert!(upgrade_passed_on(&both));
        let out = request_head(&both, None, b"b");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: upgrade\r\n"), "{text}");
    }

    /// The quick bound and the exact count agree on either side of the limit.
    #[test]
    fn forwarded_heads_are_sized_exactly_near_the_limits() {
        let limits = Limits {
            max_headers: 10,
            ..Limits::default()
        };
        let with = |n: usize| {
            let mut t = "GET / HTTP/1.1\r\nHost: x\r\n".to_owned();
            for i in 1..n {
                t.push_str(&format!("X-{i}: v\r\n"));
            }
            t.push_str("\r\n");
            RequestHead::parse_complete(Bytes::from(t), &limits).unwrap()
        };
        let peer = Some(([127, 0, 0, 1], 1).into());
        let none = RequestEdits::default();
        // Host and n - 1 others, plus X-Forwarded-For, -Proto, -Host and Via.
        assert!(fits_limits(&with(6), peer, false, &none, &limits));
        assert!(!fits_limits(&with(7), peer, false, &none, &limits));
        // Without a peer address there is no X-Forwarded-For to add.
        assert!(fits_limits(&with(7), None, false, &none, &limits));
        // Hop-by-hop lines are not forwarded and leave room.
        let hop = "GET / HTTP/1.1\r\nHost: x\r\nKeep-Alive: 1\r\nTE: trailers\r\nX-1: v\r\nX-2: v\r\nX-3: v\r\nX-4: v\r\n\r\n";
        assert!(fits_limits(&head(hop), peer, false, &none, &limits));

        let size = |len: usize| {
            let mut t = "GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_owned();
            let fill = len - t.len() - 4;
            t.push_str(&"l".repeat(fill));
            t.push_str("\r\n\r\n");
            head(&t)
        };
        let added = request_head(&size(1000), peer, b"b").len() - 1000;
        let limits = Limits {
            max_head_len: 2000,
            ..Limits::default()
        };
        assert!(fits_limits(&size(2000 - added), peer, false, &none, &limits));
        assert!(!fits_limits(&size(2000 - added + 1), peer, false, &none, &limits));
    }
}
