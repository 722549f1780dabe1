//! Regression: pipelined requests that are never read pinned memory. The driver
//! answered every buffered request before writing and copied each small body
//! into its write buffer, so 200 connections that each wrote about 28 KB of
//! pipelined `GET /k` (a 32,000-byte cached file) and never read grew the server
//! by over 1.3 GB. This file holds one test so that the process's RSS is the
//! server's.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Site, Srv};
use test_support::rss_bytes;

#[test]
fn pipelined_requests_never_read_do_not_pin_memory() {
    let site = Site::new("pipelined");
    site.file("k", vec![b'k'; 32_000]);
    let srv = Srv::start(site, |b| b);
    // Warm the cache and the runtime, so that what follows measures connections.
    assert_eq!(srv.get("/k", &[]).status, 200);
    let before = rss_bytes(None);

    let request = b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n";
    let batch: Vec<u8> = request.repeat(28_000 / request.len());
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(srv.addr).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // Nothing is ever read from these connections.
        c.write_all(&batch).unwrap();
        clients.push(c);
    }
    // Sample while the server works through what it can.
    let mut peak = before;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        peak = peak.max(rss_bytes(None));
        std::thread::sleep(Duration::from_millis(50));
    }
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "200 never-reading pipelining clients grew the server by {} MiB",
        grown >> 20
    );

    // Everyone else is still served.
    drop(clients);
    let reply = srv.get("/k", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 32_000);
}
