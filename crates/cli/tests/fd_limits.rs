//! Regression: a full fd table locked new clients out for up to a minute. The
//! binaries ran with the soft `RLIMIT_NOFILE` they inherited while the
//! connection cap defaulted to 25,000, so about a thousand idle keep-alive
//! connections made `accept` fail (logging a warning every 50 ms) and a fresh
//! client got nothing until idle connections timed out. Now the soft limit is
//! raised to the hard one, the cap is sized from it, and at the cap or with the
//! fd table full the longest-idle keep-alive connections are closed to make room.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{static_root, Running, STATIC_SERVER};
use test_support::{content_length, head_len, TIMEOUT};

/// Starts static-server under `ulimit -Sn soft -Hn hard` with `extra` flags and
/// returns it with its address.
fn start_limited(soft: u32, hard: u32, extra: &[&str]) -> (Running, SocketAddr) {
    let script = format!("ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\"");
    let root = static_root();
    let mut args = vec![
        "-c",
        &script,
        STATIC_SERVER,
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--root",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut process = Running::start(Command::new("bash").args(&args));
    let (_, addr) = process.next_listener(Instant::now() + TIMEOUT);
    (process, addr)
}

/// One request on a new keep-alive connection; the connection is returned open
/// (and idle) once the answer is read, or `None` if no answer came in `wait`.
fn request(addr: SocketAddr, wait: Duration) -> Option<TcpStream> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(wait)).unwrap();
    c.write_all(b"GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = c.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = head_len(&got) {
            let head = String::from_utf8_lossy(&got[..end]);
            assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
            let len = content_length(&head).expect("Content-Length");
            if got.len() >= end + len {
                return Some(c);
            }
        }
    }
}

/// Opens `n` idle keep-alive connections (each after one request), then checks
/// that a fresh client is answered within a second.
fn idle_clients_do_not_lock_out_a_fresh_one(process: &mut Running, addr: SocketAddr, n: usize) {
    let mut idle = Vec::new();
    for _ in 0..n {
        if let Some(c) = request(addr, Duration::from_secs(2)) {
            idle.push(c);
        }
    }
    let started = Instant::now();
    let fresh = request(addr, Duration::from_secs(5));
    assert!(
        fresh.is_some() && started.elapsed() < Duration::from_secs(1),
        "a fresh client waited {:?} behind {} idle connections; stderr: {:#?}",
        started.elapsed(),
        idle.len(),
        process.stderr()
    );
}

#[test]
fn full_connection_cap_does_not_lock_out_new_clients() {
    let (mut process, addr) = start_limited(100, 160, &[]);
    process.wait_for_line(&["raised the open-file limit from 100 to 160"]);
    // The cap is sized from the raised limit (160 - 64 reserved = 96), well
    // below the 200 clients opened here.
    idle_clients_do_not_lock_out_a_fresh_one(&mut process, addr, 200);
    process.wait_for_line(&["connection limit reached"]);
}

#[test]
fn full_fd_table_does_not_lock_out_new_clients() {
    // A cap above the fd limit: `accept` itself runs out of descriptors.
    let (mut process, addr) = start_limited(128, 128, &["--max-connections", "10000"]);
    idle_clients_do_not_lock_out_a_fresh_one(&mut process, addr, 200);
    idle_clients_do_not_lock_out_a_fresh_one(&mut process, addr, 200);
    // Logged once per interval, not once per failed accept.
    let warnings = process
        .stderr()
        .iter()
        .filter(|l| l.contains("out of file descriptors"))
        .count();
    assert_eq!(warnings, 1, "{:#?}", process.stderr());
}
