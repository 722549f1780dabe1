//! The access log as an operator reads it from the binaries' stderr: the text
//! line's shape (the same for served, refused and TCP-mode lines), escaping that
//! a request cannot forge, refused requests with their reason and rate limit,
//! and `--log-format json`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{static_root, Server, RR_PROXY, STATIC_SERVER};
use serde_json::Value;
use test_support::{exchange, wait_for, TIMEOUT};

/// A text access line, parsed as the README's pattern reads it:
/// `^(\S+) "([^"]*)" (\d{3}) (\d+|-) (\d+)us((?: [a-z_]+=\S+)*)$`, after the
/// time stamp and level.
#[derive(Debug)]
struct Access {
    peer: String,
    request: String,
    status: u16,
    bytes: Option<u64>,
    fields: BTreeMap<String, String>,
}

fn parse_access(line: &str) -> Option<Access> {
    let rest = line.split_once("  INFO ")?.1;
    let (peer, rest) = rest.split_once(" \"")?;
    let (request, rest) = rest.split_once("\" ")?;
    if peer.is_empty() || peer.contains(char::is_whitespace) || request.contains('"') {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = rest.split(' ');
    let status = parts.next().filter(|s| s.len() == 3 && digits(s))?;
    let bytes = parts.next().filter(|s| *s == "-" || digits(s))?;
    parts.next()?.strip_suffix("us").filter(|s| digits(s))?;
    let mut fields = BTreeMap::new();
    for part in parts {
        let (k, v) = part.split_once('=')?;
        let key_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !key_ok || v.is_empty() {
            return None;
        }
        fields.insert(k.to_owned(), v.to_owned());
    }
    Some(Access {
        peer: peer.to_owned(),
        request: request.to_owned(),
        status: status.parse().ok()?,
        bytes: bytes.parse().ok(),
        fields,
    })
}

fn static_server(extra: &[&str]) -> Server {
    let root = static_root();
    let args = [
        &["--root", root.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        extra,
    ]
    .concat();
    Server::start(STATIC_SERVER, "static-server", &args)
}

/// Waits for the access line whose stderr text contains every one of `parts`
/// and parses it, failing when it does not have the shape.
#[track_caller]
fn access_line(server: &mut Server, parts: &[&str]) -> Access {
    let line = server.process.wait_for_line(parts);
    parse_access(&line).unwrap_or_else(|| panic!("not an access line's shape: {line:?}"))
}

#[test]
fn a_quote_or_backslash_in_the_target_is_escaped_and_cannot_forge_a_field() {
    let mut srv = static_server(&[]);
    let reply = exchange(
        srv.addr,
        b"GET /page.html?x=1&y=\"q\" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let a = access_line(&mut srv, &["/page.html?x=1"]);
    assert_eq!(a.request, r#"GET /page.html?x=1&y=\x22q\x22 HTTP/1.1"#);
    assert_eq!(a.status, 200);
    assert!(a.peer.starts_with("127.0.0.1:"), "{a:?}");

    // A line that tries to end the request early and add its own fields.
    exchange(
        srv.addr,
        b"GET /x\"\x20200\x201\x201us\x20backend=evil\\ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    exchange(
        srv.addr,
        b"GET /forged\" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let a = access_line(&mut srv, &["/forged"]);
    assert_eq!(a.request, r#"GET /forged\x22 HTTP/1.1"#);
    assert!(a.fields.is_empty(), "{a:?}");
    for line in srv.process.stderr() {
        assert!(!line.contains("backend=evil"), "{line}");
    }
}

/// Sends `bytes` and waits for the answer's status line; the server closes.
fn refused(addr: SocketAddr, bytes: &[u8], status: &str) {
    let reply = exchange(addr, bytes);
    assert!(reply.starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
}

#[test]
fn refused_requests_get_an_info_line_with_the_reason() {
    let mut srv = static_server(&["--header-timeout", "1s"]);
    refused(srv.addr, b"garbage\r\n\r\n", "400");
    let a = access_line(&mut srv, &["refused=bad_request_line"]);
    assert_eq!((a.request.as_str(), a.status), ("-", 400), "{a:?}");
    assert!(
        a.peer.starts_with("127.0.0.1:"),
        "the peer is printed plainly: {a:?}"
    );
    assert!(a.bytes.is_some_and(|b| b > 0), "{a:?}");

    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    refused(srv.addr, big.as_bytes(), "431");
    let a = access_line(&mut srv, &["refused=head_too_large"]);
    assert_eq!(a.status, 431);

    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9 * 1024));
    refused(srv.addr, long.as_bytes(), "414");
    assert_eq!(access_line(&mut srv, &["refused=uri_too_long"]).status, 414);

    refused(
        srv.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "501",
    );
    assert_eq!(
        access_line(&mut srv, &["refused=unsupported_transfer_coding"]).status,
        501
    );

    refused(srv.addr, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505");
    assert_eq!(
        access_line(&mut srv, &["refused=version_not_supported"]).status,
        505
    );

    // The head starts and never ends: 408 once the header timeout has passed,
    // and the line's duration is that wait.
    refused(srv.addr, b"GET / HTTP/1.1\r\nHost: a\r\n", "408");
    let line = srv.process.wait_for_line(&["refused=header_timeout"]);
    let a = parse_access(&line).unwrap_or_else(|| panic!("{line:?}"));
    assert_eq!((a.request.as_str(), a.status), ("-", 408));
    let micros: u64 = line
        .split(' ')
        .find_map(|p| p.strip_suffix("us")?.parse().ok())
        .unwrap();
    assert!((900_000..TIMEOUT.as_micros() as u64).contains(&micros), "{line}");

    // A declared body over the limit.
    refused(
        srv.addr,
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n",
        "413",
    );
    let a = access_line(&mut srv, &["refused=body_too_large"]);
    assert_eq!(a.status, 413);
}

#[test]
fn a_burst_of_refused_requests_is_rate_limited_and_the_rest_counted() {
    const BURST: usize = 1000;
    const PER_SECOND: usize = 10;
    let mut srv = static_server(&[]);
    let addr = srv.addr;
    let started = Instant::now();
    let senders: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..BURST / 4 {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(TIMEOUT)).unwrap();
                    s.write_all(b"garbage\r\n\r\n").unwrap();
                    let mut out = Vec::new();
                    let _ = s.read_to_end(&mut out);
                    assert!(out.starts_with(b"HTTP/1.1 400 "));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let spent = started.elapsed();
    // A second later the budget is back: this line reports what was left out.
    std::thread::sleep(Duration::from_millis(1100));
    refused(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        "400",
    );
    srv.process.wait_for_line(&["refused=bad_content_length"]);

    let lines: Vec<Access> = srv
        .process
        .stderr()
        .iter()
        .filter(|l| l.contains("refused="))
        .map(|l| parse_access(l).unwrap_or_else(|| panic!("{l:?}")))
        .collect();
    let suppressed: usize = lines
        .iter()
        .filter_map(|a| a.fields.get("suppressed"))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    // Each wall-clock second the burst touched allows PER_SECOND lines.
    let seconds = spent.as_secs() as usize + 2;
    let in_burst = lines.len() - 1;
    assert!(in_burst <= PER_SECOND * seconds, "{in_burst} lines in {spent:?}");
    assert!(
        in_burst >= PER_SECOND,
        "{in_burst} lines: the first second's budget is used"
    );
    assert_eq!(
        lines.len() + suppressed,
        BURST + 1,
        "every refused request is a line or counted"
    );
    let last = lines.last().unwrap();
    assert_eq!(
        last.fields.get("refused").map(String::as_str),
        Some("bad_content_length")
    );
    assert!(last.fields.contains_key("suppressed"), "{last:?}");
}

/// Every stderr line of `server` as JSON; panics on one that is not.
fn json_lines(server: &mut Server) -> Vec<Value> {
    server
        .process
        .stderr()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

#[test]
fn json_lines_parse_and_carry_the_fields() {
    let mut backend = static_server(&["--log-format", "json"]);
    let backend_addr = backend.addr.to_string();
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend_addr,
            "--admin",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--no-health-check",
        ],
    );
    let (who, admin) = proxy.process.next_listener(Instant::now() + TIMEOUT);
    assert_eq!(who, "admin");

    let reply = exchange(
        proxy.addr,
        b"GET /page.html?q=\"x\" HTTP/1.1\r\nHost: example.test\r\nUser-Agent: test \xe9 \"agent\"\r\n\
          Referer: http://ref.test/\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let reply = exchange(
        admin,
        format!("GET /stats HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    refused(proxy.addr, b"garbage\r\n\r\n", "400");
    let mut proxy_lines = Vec::new();
    wait_for(TIMEOUT, "three access lines from the proxy", || {
        proxy_lines = json_lines(&mut proxy);
        proxy_lines.iter().filter(|v| v.get("status").is_some()).count() >= 3
    });
    let mut backend_lines = Vec::new();
    wait_for(TIMEOUT, "the backend's access line", || {
        backend_lines = json_lines(&mut backend);
        backend_lines.iter().any(|v| v.get("status").is_some())
    });

    // Other events are JSON too, with a level and a message.
    for v in proxy_lines.iter().chain(&backend_lines) {
        assert!(
            v["time"]
                .as_str()
                .is_some_and(|t| t.len() == 24 && t.ends_with('Z')),
            "{v}"
        );
        let event = v["level"].is_string() && v["message"].is_string();
        assert!(v.get("status").is_some() || event, "{v}");
    }
    assert!(proxy_lines.iter().any(|v| v["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("rr-proxy listening on http://"))));

    let find = |lines: &[Value], target: &str| -> Value {
        lines
            .iter()
            .find(|v| v["target"] == target && v.get("status").is_some())
            .unwrap_or_else(|| panic!("no access line for {target}: {lines:#?}"))
            .clone()
    };
    let page = find(&proxy_lines, r"/page.html?q=\x22x\x22");
    assert!(
        page["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{page}"
    );
    assert_eq!(page["method"], "GET");
    assert_eq!(page["version"], "HTTP/1.1");
    assert_eq!(page["status"], 200);
    assert!(page["bytes"].as_u64().unwrap() > 0, "{page}");
    assert!(page["duration_us"].is_u64(), "{page}");
    assert_eq!(page["host"], "example.test");
    assert_eq!(page["user_agent"], r"test \xE9 \x22agent\x22");
    assert_eq!(page["referer"], "http://ref.test/");
    assert_eq!(page["backend"], backend_addr.as_str());
    assert!(page["upstream_us"].is_u64(), "{page}");
    assert_eq!(page["retries"], 0);
    assert!(page.get("admin").is_none(), "{page}");
    assert!(page.get("refused").is_none(), "{page}");

    // The backend saw the request the proxy sent on.
    let seen = find(&backend_lines, r"/page.html?q=\x22x\x22");
    assert_eq!(seen["status"], 200);
    assert_eq!(seen["user_agent"], r"test \xE9 \x22agent\x22");

    let stats = find(&proxy_lines, "/stats");
    assert_eq!(stats["admin"], true);
    assert_eq!(stats["status"], 200);

    let bad = proxy_lines
        .iter()
        .find(|v| v.get("refused").is_some())
        .unwrap_or_else(|| panic!("no refused line: {proxy_lines:#?}"));
    assert_eq!(bad["refused"], "bad_request_line");
    assert_eq!(bad["status"], 400);
    assert!(bad["method"].is_null() && bad["target"].is_null(), "{bad}");
}

#[test]
fn tcp_mode_lines_have_the_shape_and_unit_of_http_lines() {
    let backend = static_server(&[]);
    let backend_addr = backend.addr.to_string();
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend_addr,
            "--mode",
            "tcp",
            "--no-health-check",
        ],
    );
    let request = b"GET /page.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let reply = exchange(proxy.addr, request);
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let a = access_line(&mut proxy, &["\"TCP\""]);
    assert_eq!(a.status, 200);
    assert!(a.peer.starts_with("127.0.0.1:"), "{a:?}");
    assert_eq!(a.bytes, Some(reply.len() as u64), "bytes sent to the client");
    assert_eq!(a.fields["backend"], backend_addr);
    assert_eq!(a.fields["received"], request.len().to_string());
    for line in proxy.process.stderr().iter().filter(|l| l.contains("\"TCP\"")) {
        assert!(!line.contains("ms"), "no millisecond figures: {line}");
    }
}
