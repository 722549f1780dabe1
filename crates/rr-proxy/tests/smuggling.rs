//! Requests a strict backend could frame differently are refused by the proxy, and
//! the recording backend behind it sees nothing of them.

mod common;

use common::*;

const CASES: &[(&str, &[u8], u16)] = &[
    (
        "CL then TE",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE then CL",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE chunked twice in one line",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE chunked on two lines",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE not ending in chunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE identity line after chunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE unknown coding only",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE unsupported coding before chunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    (
        "TE xchunked",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE quoted",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE empty element",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE space before colon",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE in HTTP/1.0",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE obs-folded",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "duplicate differing CL",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        400,
    ),
    (
        "CL list differing",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\nabcde",
        400,
    ),
    ("CL plus sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd", 400),
    ("CL negative", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nabcd", 400),
    ("CL hex", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x4\r\n\r\nabcd", 400),
    ("CL empty", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\nabcd", 400),
    (
        "CL overflowing",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 184467440737095516160\r\n\r\nabcd",
        400,
    ),
    ("CL with inner space", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 4\r\n\r\nabcd", 400),
    (
        "chunk size overflowing",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk size not hex",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk size negative",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk size bare LF",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk size empty line",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk size with inner space",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 2\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk data longer than its size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk data with bare LF after it",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
        400,
    ),
    (
        "chunk extension with bare LF",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\nc\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400),
    ("NUL in the target", b"GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("CR in a header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("bad header name", b"GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("double space in the request line", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("HTTP/2.0 on this wire", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
];

#[test]
fn malformed_requests_are_refused_and_never_forwarded() {
    assert!(CASES.len() >= 30);
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let mut wrong = Vec::new();
    for (name, bytes, want) in CASES {
        let out = exchange(proxy.addr, bytes);
        let got = status_of(&out);
        if got != *want {
            wrong.push(format!("{name}: want {want}, got {got}: {out:?}"));
        }
        if !out.contains("Connection: close") {
            wrong.push(format!("{name}: connection not closed: {out:?}"));
        }
        if b.rec.count() != 0 {
            wrong.push(format!("{name}: forwarded {:?}", b.rec.seen()));
            b.rec.clear();
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing reached the backend at all: not even a connection's worth of bytes.
    assert_eq!(proxy.handle.stats().backends[0].requests, 0);
}

#[test]
fn a_bad_chunk_late_in_a_body_never_completes_a_request() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    // 200 KB of good chunks (past the proxy's look-ahead), then a bad size line,
    // then what would be a smuggled request.
    let mut req = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..50 {
        req.extend_from_slice(b"1000\r\n");
        req.extend_from_slice(&[b'a'; 0x1000]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"zz\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = exchange(proxy.addr, &req);
    assert_eq!(status_of(&out), 400, "{out}");
    assert!(!out.contains("/smuggled"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        b.rec.count(),
        0,
        "{:?}",
        b.rec.seen().iter().map(|s| &s.target).collect::<Vec<_>>()
    );
}

#[test]
fn bytes_after_a_refused_upgrade_are_not_forwarded() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    let tails: [&[u8]; 3] = [
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        b"POST /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ];
    for tail in tails {
        let mut req =
            b"GET /no-ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".to_vec();
        req.extend_from_slice(tail);
        let out = exchange(proxy.addr, &req);
        assert_eq!(status_of(&out), 400, "{out}");
        assert!(out.contains("no upgrade here"), "{out}");
        assert!(out.contains("Connection: close"), "{out}");
        assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out}");
    }
    let targets: Vec<String> = b.rec.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/no-ws", "/no-ws", "/no-ws"]);
}

/// A request with `n` header lines in all (Host among them), asking to close.
fn with_headers(n: usize) -> Vec<u8> {
    let mut req = b"GET /many HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    for i in 2..n {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

/// A request just under the header-count limit used to pass the proxy and get
/// 431 from its backend: the proxy adds `X-Forwarded-For`, `-Proto`, `-Host` and
/// `Via`. The proxy now answers 431 itself and the backend sees nothing.
#[test]
fn a_request_the_added_headers_push_over_the_limit_gets_431_from_the_proxy() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    // Connection is hop-by-hop and not forwarded: 98 - 1 + 4 = 101 > 100.
    for n in [98, 99, 100] {
        let out = exchange(proxy.addr, &with_headers(n));
        assert_eq!(status_of(&out), 431, "{n} headers: {out}");
        assert!(out.contains("Connection: close"), "{out}");
        assert!(!out.contains("X-Backend"), "{out}");
    }
    // Not forwarded at all (the backend's own 431 would not be recorded).
    assert_eq!(proxy.handle.stats().backends[0].requests, 0);
    assert_eq!(b.rec.count(), 0, "{:?}", b.rec.seen());
    // 97 - 1 + 4 = 100 lines reach the backend: allowed.
    let out = exchange(proxy.addr, &with_headers(97));
    assert_eq!(status_of(&out), 200, "{out}");
    assert_eq!(b.rec.seen()[0].headers.len(), 100);

    // The same for the head's size: the added lines push a head just under the
    // 32 KiB limit over it.
    let near = |len: usize| {
        let mut req = b"GET /long HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Long: ".to_vec();
        let fill = len - req.len() - 4;
        req.extend(std::iter::repeat_n(b'l', fill));
        req.extend_from_slice(b"\r\n\r\n");
        req
    };
    let out = exchange(proxy.addr, &near(32 * 1024 - 16));
    assert_eq!(status_of(&out), 431, "{}", &out[..out.len().min(200)]);
    assert!(out.contains("Connection: close"));
    assert_eq!(b.rec.count(), 1);
    let out = exchange(proxy.addr, &near(32 * 1024 - 256));
    assert_eq!(status_of(&out), 200, "{}", &out[..out.len().min(200)]);
    assert_eq!(b.rec.count(), 2);
}
