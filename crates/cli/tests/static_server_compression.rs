//! The `static-server` binary's compression as a user meets it: on by default,
//! `--compression LIST` choosing and ordering the codings, `none` turning it
//! off, a bad list refused with one line and exit 2, and a 200 MB text file
//! streamed compressed (decoded by curl) while the process's memory stays flat.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{run, Server, STATIC_SERVER};
use test_support::{agent, proc_status_kib, send, Reply, TempDir};

fn serve(root: &Path, flags: &[&str]) -> Server {
    let root = root.to_str().unwrap();
    let args = [&["--root", root, "--listen", "127.0.0.1:0"], flags].concat();
    Server::start(STATIC_SERVER, "static-server", &args)
}

/// Lines of text, `len` bytes.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 80);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "line {i}: the quick brown fox {} jumps\n",
                i * 2_654_435_761 % 100_000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn get(srv: &Server, path: &str, accept: Option<&str>) -> Reply {
    let mut req = agent().get(&srv.url(path));
    if let Some(a) = accept {
        req = req.set("Accept-Encoding", a);
    }
    send(req, None).unwrap()
}

#[test]
fn compression_flag_chooses_orders_and_turns_off() {
    let root = TempDir::new("compress-flag");
    root.file("page.html", text(3000));
    let srv = serve(root.path(), &[]);
    for (accept, want) in [("gzip, br", "br"), ("gzip, br, zstd", "zstd"), ("gzip", "gzip")] {
        let r = get(&srv, "/page.html", Some(accept));
        assert_eq!(r.header("Content-Encoding"), Some(want), "{accept}");
        assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    }
    let srv = serve(
        root.path(),
        &["--compression", "gzip,br", "--compression-level", "best"],
    );
    assert_eq!(
        get(&srv, "/page.html", Some("br, gzip, zstd")).header("Content-Encoding"),
        Some("gzip")
    );
    assert_eq!(
        get(&srv, "/page.html", Some("zstd")).header("Content-Encoding"),
        None
    );
    let srv = serve(root.path(), &["--compression", "none"]);
    let r = get(&srv, "/page.html", Some("gzip, br, zstd"));
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.header("Vary"), None);
    assert_eq!(r.body, text(3000));
    let srv = serve(root.path(), &["--compression-min-size", "4KiB"]);
    assert_eq!(
        get(&srv, "/page.html", Some("gzip")).header("Content-Encoding"),
        None
    );
}

#[test]
fn a_bad_compression_list_is_one_line_and_exit_2() {
    for (bad, says) in [
        ("deflate", "deflate"),
        ("zstd,,br", "\"\""),
        ("br,br", "twice"),
        ("", "\"\""),
    ] {
        let out = run(STATIC_SERVER, &["--compression", bad, "--listen", "127.0.0.1:0"]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{bad:?}: {stderr}");
        assert!(
            stderr.contains("--compression") && stderr.contains(says),
            "{bad:?}: {stderr}"
        );
    }
    let out = run(
        STATIC_SERVER,
        &["--compression-level", "max", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// 200 MB of text, larger than the cache takes, downloaded with zstd: the
/// server compresses it as it streams, so its memory grows by the encoder's
/// window and buffers, not by the file.
#[test]
fn a_200_mb_file_streams_compressed_in_bounded_memory() {
    const SIZE: usize = 200 << 20;
    let root = TempDir::new("compress-rss");
    {
        use std::io::Write;
        let block = text(1 << 20);
        let mut f = std::fs::File::create(root.join("big.txt")).unwrap();
        for _ in 0..SIZE >> 20 {
            f.write_all(&block).unwrap();
        }
    }
    root.file("small.txt", text(4000));
    let srv = serve(root.path(), &["--threads", "2"]);
    let pid = srv.process.id();
    // Warm up: the runtime's threads and buffers exist before the baseline.
    assert_eq!(get(&srv, "/small.txt", Some("zstd")).status, 200);
    let baseline = proc_status_kib(Some(pid), "VmRSS").expect("VmRSS") * 1024;

    let peak = AtomicU64::new(baseline);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (decoded, head) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status_kib(Some(pid), "VmRSS") {
                    peak.fetch_max(kib * 1024, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // curl decodes (zstd), the test counts the decoded bytes.
        let head_file = root.join("head");
        let mut curl = Command::new("curl")
            .args([
                "-s",
                "-S",
                "--max-time",
                "120",
                "--compressed",
                "-H",
                "Accept-Encoding: zstd",
                "-D",
            ])
            .arg(&head_file)
            .arg(srv.url("/big.txt"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl (installed by .ci/run)");
        let mut out = curl.stdout.take().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        let mut same = true;
        let block = text(1 << 20);
        loop {
            let n = out.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            // Spot-check the content as it passes: each 1 MiB repeats `block`.
            let at = total % (1 << 20);
            let take = n.min((1 << 20) - at);
            same &= buf[..take] == block[at..at + take];
            total += n;
        }
        assert!(curl.wait().unwrap().success(), "curl failed");
        done.store(true, Ordering::Relaxed);
        assert!(same, "decoded bytes differ from the file");
        (
            total,
            std::fs::read_to_string(&head_file).unwrap().to_ascii_lowercase(),
        )
    });
    let took = started.elapsed();
    assert_eq!(decoded, SIZE);
    assert!(head.contains("content-encoding: zstd\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let hwm = proc_status_kib(Some(pid), "VmHWM").expect("VmHWM") * 1024;
    let peak = peak.load(Ordering::Relaxed).max(hwm);
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "200 MB zstd stream in {took:?}: RSS baseline {} KiB, peak {} KiB (+{} KiB)",
        baseline / 1024,
        peak / 1024,
        grew / 1024
    );
    assert!(grew < 64 << 20, "RSS grew by {} MiB", grew >> 20);
}
