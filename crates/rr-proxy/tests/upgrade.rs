//! Protocol upgrades (WebSocket-style): a tunnel after the backend's 101.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use test_support::head_len;

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
        let head_end = head_len(&buf).unwrap();
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
        wait_for(TIMEOUT, "the tunnel to close", || {
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

/// `Upgrade: h2c` used to be forwarded: a backend that speaks h2c would switch a
/// connection the proxy can only tunnel, and HTTP2-Settings went along. As nginx
/// does, the offer is stripped and the request goes on as a plain one (other
/// protocols offered alongside stay).
#[test]
fn an_h2c_upgrade_offer_is_stripped_and_the_request_forwarded_plain() {
    let rt = runtime();
    let b = TestBackend::start(&rt, "b0");
    let proxy = TestProxy::start(&rt, builder(&[&b]));
    for (connection, settings_named) in [("Upgrade, HTTP2-Settings", true), ("Upgrade", false)] {
        b.rec.clear();
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        let req = format!(
            "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\nUpgrade: h2c\r\n\
             HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"b0 /plain\n");
        let text = String::from_utf8_lossy(&buf).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            !text.contains("Connection: close"),
            "a plain request keeps the connection: {text}"
        );
        // The connection goes on as HTTP/1.1.
        s.write_all(b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let rest = String::from_utf8_lossy(&rest).into_owned();
        assert!(
            rest.starts_with("HTTP/1.1 200 OK\r\n") && rest.ends_with("b0 /next\n"),
            "{rest}"
        );
        let seen = b.rec.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        for gone in ["Upgrade", "HTTP2-Settings", "Connection"] {
            assert!(
                seen[0].header(gone).is_none(),
                "{gone} forwarded (HTTP2-Settings named in Connection: {settings_named}): {:?}",
                seen[0].headers
            );
        }
    }

    // Offered with another protocol: only the other one goes on, and the switch to it works.
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, echo\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"\r\n\r\n");
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    s.write_all(b"hi").unwrap();
    read_until(&mut s, &mut buf, b"echo:hi");
    let seen = b.rec.seen();
    let ws = seen.iter().find(|r| r.target == "/ws").unwrap();
    assert_eq!(ws.header("Upgrade"), Some("echo"));
}

/// A backend's 101 used to be tunnelled whatever protocol it named, one the
/// client never asked for included (`h2c` or `echo` asked, `websocket`
/// answered). Now the client gets 502 and the backend connection is closed.
#[test]
fn a_101_to_a_protocol_the_client_did_not_offer_is_502() {
    use std::sync::{Arc, Mutex};
    let rt = runtime();
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = events.clone();
    let b = ScriptBackend::start(&rt, move |mut s, _| {
        let log = log.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = Vec::new();
            if next_head(&mut s, &mut buf).await.is_none() {
                return;
            }
            let switch =
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
            if s.write_all(switch).await.is_err() {
                return;
            }
            let mut chunk = [0u8; 1024];
            loop {
                match tokio::time::timeout(TIMEOUT, s.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        log.lock().unwrap().push("closed".into());
                        return;
                    }
                    Ok(Ok(n)) => log
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&chunk[..n]).into_owned()),
                    Err(_) => {
                        log.lock().unwrap().push("still open".into());
                        return;
                    }
                }
            }
        }
    });
    let proxy = TestProxy::start(&rt, rr_proxy::Proxy::builder().backend(b.addr, 1));
    for offer in ["echo", "h2c"] {
        events.lock().unwrap().clear();
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: {offer}\r\n\r\nframe-bytes"
        );
        let out = exchange(proxy.addr, req.as_bytes());
        assert_eq!(status_of(&out), 502, "offer {offer}: {out}");
        assert!(out.contains("Connection: close"), "{out}");
        assert!(!out.contains("websocket"), "{out}");
        wait_for(TIMEOUT, "the backend connection to close", || {
            !events.lock().unwrap().is_empty()
        });
        assert_eq!(*events.lock().unwrap(), ["closed"], "offer {offer}");
    }
}
