//! Protocol upgrades (WebSocket-style): a tunnel after the backend's 101.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn websocket_style_echo_through_the_proxy() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 2);
    let proxy = TestProxy::start(&rt, builder(&[&bs[0], &bs[1]]));
    for (round, backend) in bs.iter().enumerate() {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Bytes sent right behind the upgrade request are held back until the 101.
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: echo\r\nX-Round: r\r\n\r\nearly",
        )
        .unwrap();
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"echo:early");
        let text = String::from_utf8_lossy(&buf).into_owned();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{text}");
        assert!(text.contains("\r\nUpgrade: echo\r\n"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("\r\nconnection: upgrade\r\n"),
            "{text}"
        );
        assert!(text.contains(&format!("X-Backend: b{round}")), "{text}");
        let head_end = text.find("\r\n\r\n").unwrap() + 4;
        assert_eq!(&text[head_end..], "echo:early");
        for msg in ["ping", "hello world", "\u{1}binary\u{0}"] {
            s.write_all(msg.as_bytes()).unwrap();
            let mut got = Vec::new();
            let want = format!("echo:{msg}");
            read_until(&mut s, &mut got, want.as_bytes());
            assert_eq!(String::from_utf8_lossy(&got), want);
        }
        // The backend saw the upgrade headers.
        let seen = backend.rec.seen();
        let ws = seen.iter().find(|r| r.target == "/ws").unwrap();
        assert_eq!(ws.header("Upgrade"), Some("echo"));
        assert_eq!(ws.header("Connection"), Some("upgrade"));
        assert_eq!(ws.header("X-Round"), Some("r"));
        assert_eq!(
            proxy.handle.stats().backends[round].active,
            1,
            "the tunnel counts as active"
        );
        drop(s);
        wait_for(STEP, "the tunnel to close", || {
            proxy.handle.stats().backends[round].active == 0
        });
    }
}

#[test]
fn upgrade_in_tcp_mode_is_just_bytes() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]).mode(rr_proxy::Mode::Tcp));
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n\r\n");
    s.write_all(b"tcp").unwrap();
    read_until(&mut s, &mut buf, b"echo:tcp");
}
