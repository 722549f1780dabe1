//! Large files stream with bounded memory: a 1 GiB sparse file is downloaded in
//! full while the resident memory of this process (server included, it runs
//! in-process) is sampled. This file holds only this test so that no other
//! test shares the process's memory while it runs.

mod common;

use std::time::{Duration, Instant};

use common::{Site, Srv};
use test_support::{find, rss_bytes, TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GIB: u64 = 1 << 30;
/// Asserted bound on RSS growth while streaming. The design budget is about
/// 64 KiB per download (nine here, under 1 MiB); the test's own client buffers
/// take 12 MiB; the rest is slack for allocator and runtime noise. Reading the
/// file into memory, or buffering megabytes per connection, would exceed it.
const RSS_BOUND: u64 = 32 << 20;
/// Concurrent partial downloads run alongside the full one.
const CLIENTS: usize = 8;
/// Bytes each concurrent partial download reads before disconnecting.
const PARTIAL: usize = 16 << 20;

#[test]
fn one_gib_sparse_file_streams_with_bounded_memory() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("SKIPPED: no /proc/self/status on this system; cannot measure RSS");
        return;
    }
    let site = Site::new("stream");
    let path = site.root.join("huge.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(GIB).unwrap(); // sparse: takes no disk space, reads as zeros
    drop(f);
    // The tail is real data, so the last bytes prove the offset arithmetic.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(GIB - 8)).unwrap();
        f.write_all(b"THE-END!").unwrap();
    }
    let srv = Srv::start(site, |b| b);
    let addr = srv.addr;

    // Warm up the runtime, the buffer pools and the allocator before the baseline.
    let r = srv.raw_get("/huge.bin", "Range: bytes=-8\r\n");
    assert_eq!((r.status, r.text().as_str()), (206, "THE-END!"));
    let baseline = rss_bytes(None);
    let started = Instant::now();

    let (total, peak, tail) = srv.rt.block_on(async move {
        // Partial downloads alongside: each reads 16 MiB, then disconnects.
        let mut partial = Vec::new();
        for _ in 0..CLIENTS {
            partial.push(tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = vec![0u8; 1 << 20];
                let mut got = 0usize;
                while got < PARTIAL {
                    let n = tokio::time::timeout(TIMEOUT, s.read(&mut buf))
                        .await
                        .expect("partial read timed out")
                        .unwrap();
                    assert!(n > 0, "partial download ended early");
                    got += n;
                }
            }));
        }

        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4 << 20];
        let mut head: Vec<u8> = Vec::new();
        let mut body_len: u64 = 0;
        let mut head_done = false;
        let mut peak = rss_bytes(None);
        let mut next_sample = 0u64;
        let mut tail = Vec::new();
        loop {
            let n = tokio::time::timeout(TIMEOUT, s.read(&mut buf))
                .await
                .expect("read timed out")
                .unwrap();
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            if !head_done {
                head.extend_from_slice(chunk);
                let Some(i) = find(&head, b"\r\n\r\n") else {
                    continue;
                };
                let text = String::from_utf8_lossy(&head[..i]).into_owned();
                assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
                assert!(text.contains(&format!("\r\nContent-Length: {GIB}")), "{text}");
                assert!(
                    text.contains("\r\nContent-Type: application/octet-stream"),
                    "{text}"
                );
                let after = head.split_off(i + 4);
                head_done = true;
                body_len += after.len() as u64;
                continue;
            }
            body_len += n as u64;
            if body_len > GIB - 8 {
                // Keep the last bytes (they may straddle reads).
                tail.extend_from_slice(chunk);
                let keep = tail.len().saturating_sub(8);
                tail.drain(..keep);
            }
            if body_len >= next_sample {
                peak = peak.max(rss_bytes(None));
                next_sample += 32 << 20;
            }
        }
        for p in partial {
            p.await.unwrap();
        }
        peak = peak.max(rss_bytes(None));
        (body_len, peak, tail)
    });

    let elapsed = started.elapsed();
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "streamed {total} bytes (+{CLIENTS} x {} MiB) in {elapsed:?}; RSS baseline {} MiB, peak {} MiB, growth {} KiB",
        PARTIAL >> 20,
        baseline >> 20,
        peak >> 20,
        growth >> 10
    );
    assert_eq!(total, GIB, "whole body received");
    assert_eq!(tail, b"THE-END!");
    assert!(
        growth < RSS_BOUND,
        "RSS grew by {} MiB while streaming (bound {} MiB)",
        growth >> 20,
        RSS_BOUND >> 20
    );
    assert!(elapsed < Duration::from_secs(50), "too slow: {elapsed:?}");
}
