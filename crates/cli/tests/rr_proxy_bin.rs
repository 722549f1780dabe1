//! The `rr-proxy` binary as a user runs it: the listening line, balancing over
//! `static-server` children, the admin listener, the flag errors, a taken port,
//! `--help`/`--version` and shutdown on SIGTERM/SIGINT. Requests go through ureq.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PROXY: &str = env!("CARGO_BIN_EXE_rr-proxy");
const STATIC: &str = env!("CARGO_BIN_EXE_static-server");
const TIMEOUT: Duration = Duration::from_secs(10);

fn static_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../static")
        .canonicalize()
        .expect("static/ in the workspace root")
}

/// A running binary; killed on drop if still running.
struct Running {
    child: Child,
    /// From its `NAME listening on http://ADDR` line.
    addr: SocketAddr,
    /// stderr lines after that line; a thread keeps reading so the pipe never fills.
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `bin` and waits for the line `{name} listening on http://ADDR`.
    fn start(bin: &str, name: &str, args: &[&str]) -> Running {
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let prefix = format!("{name} listening on http://");
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        let addr = loop {
            let line = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{bin} {args:?}: no {prefix:?} line within {TIMEOUT:?} ({e}); stderr: {seen:#?}");
                }
            };
            if let Some(addr) = line.strip_prefix(&prefix) {
                let addr: SocketAddr = addr.trim().parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
                break addr;
            }
            seen.push(line);
        };
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0, "the line must give the real port");
        Running {
            child,
            addr,
            lines: rx,
        }
    }

    fn backend(id: &str) -> Running {
        let root = static_root();
        Running::start(
            STATIC,
            "static-server",
            &[
                "--root",
                root.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--server-id",
                id,
                "--threads",
                "1",
            ],
        )
    }

    /// The admin listener's address, from its announcement (`admin listening on
    /// http://ADDR`) or, failing that, the proxy's log line about it.
    fn admin_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| panic!("no admin address within {TIMEOUT:?} ({e}); stderr: {seen:#?}"));
            for marker in ["admin listening on http://", "admin endpoint on http://"] {
                if let Some(i) = line.find(marker) {
                    let rest = &line[i + marker.len()..];
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    return addr.parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
                }
            }
            seen.push(line);
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for exit within the timeout; kills and panics otherwise.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("did not exit within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET with a fresh agent (so a fresh connection): status, `X-Served-By`, body.
fn get(url: &str) -> (u16, String, String) {
    let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).redirects(0).build();
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let by = resp.header("X-Served-By").unwrap_or_default().to_string();
    (status, by, resp.into_string().unwrap())
}

/// Who answered `n` requests for page.html, counted by `X-Served-By`.
fn served_by(proxy: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let (status, by, body) = get(&format!("http://{proxy}/page.html"));
        assert_eq!(status, 200);
        assert!(body.contains("Round-robin demo"), "{body}");
        *counts.entry(by).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

#[test]
fn prints_the_real_port_balances_and_serves_stats() {
    let a = Running::backend("backend-a");
    let b = Running::backend("backend-b");
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let proxy = Running::start(
        PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &a_addr,
            "--backend",
            &b_addr,
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let admin = proxy.admin_addr();
    assert_ne!(admin.port(), 0);

    assert_eq!(
        served_by(proxy.addr, 6),
        counts(&[("backend-a", 3), ("backend-b", 3)])
    );

    let (status, _, stats) = get(&format!("http://{admin}/stats"));
    assert_eq!(status, 200, "{stats}");
    assert!(stats.contains("\"strategy\":\"round-robin\""), "{stats}");
    assert!(stats.contains("\"mode\":\"http\""), "{stats}");
    for addr in [&a_addr, &b_addr] {
        assert!(
            stats.contains(&format!(
                "{{\"addr\":\"{addr}\",\"weight\":1,\"state\":\"healthy\""
            )),
            "{addr} in {stats}"
        );
    }
    assert_eq!(
        stats.matches("\"requests\":3,").count(),
        2,
        "3 requests each: {stats}"
    );
    let (status, _, metrics) = get(&format!("http://{admin}/metrics"));
    assert_eq!(status, 200);
    assert!(!metrics.is_empty());
}

#[test]
fn weights_and_strategies_from_the_command_line() {
    let a = Running::backend("backend-a");
    let b = Running::backend("backend-b");
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let weighted = Running::start(
        PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--strategy",
            "weighted",
            "--backend",
            &format!("{a_addr}=3"),
            "--backend",
            &format!("{b_addr}=1"),
        ],
    );
    assert_eq!(
        served_by(weighted.addr, 8),
        counts(&[("backend-a", 6), ("backend-b", 2)])
    );

    // TCP mode balances connections: each fresh connection goes to the next one.
    let tcp = Running::start(
        PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--mode",
            "tcp",
            "--backend",
            &a_addr,
            "--backend",
            &b_addr,
        ],
    );
    assert_eq!(
        served_by(tcp.addr, 4),
        counts(&[("backend-a", 2), ("backend-b", 2)])
    );
}

#[test]
fn sigterm_and_sigint_shut_down_with_exit_0() {
    let backend = Running::backend("backend-a");
    let backend_addr = backend.addr.to_string();
    for sig in ["TERM", "INT"] {
        let mut proxy = Running::start(
            PROXY,
            "rr-proxy",
            &[
                "--listen",
                "127.0.0.1:0",
                "--backend",
                &backend_addr,
                "--admin",
                "127.0.0.1:0",
            ],
        );
        let admin = proxy.admin_addr();
        assert_eq!(get(&format!("http://{}/page.html", proxy.addr)).0, 200);
        proxy.signal(sig);
        let status = proxy.wait();
        assert_eq!(status.code(), Some(0), "SIG{sig}: {status:?}");
        for addr in [proxy.addr, admin] {
            assert!(
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
                "SIG{sig}: {addr} still open"
            );
        }
    }
}

/// Runs the proxy to completion with a timeout.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(PROXY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rr-proxy {args:?} did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// One line on stderr, `error: ...` containing each of `must_contain`, and a
/// non-zero exit.
#[track_caller]
fn assert_one_error_line(out: &Output, must_contain: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit {:?}; stderr: {stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for s in must_contain {
        assert!(lines[0].contains(s), "{s:?} not in {stderr}");
    }
}

#[test]
fn no_backend_is_one_clear_error() {
    let out = run(&["--listen", "127.0.0.1:0"]);
    assert_one_error_line(&out, &["no backends", "--backend"]);
}

#[test]
fn a_bad_weight_is_one_clear_error() {
    let out = run(&["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1=abc"]);
    assert_one_error_line(&out, &["127.0.0.1:1=abc", "abc"]);
    let out = run(&["--listen", "127.0.0.1:0", "--backend", "not-an-address"]);
    assert_one_error_line(&out, &["not-an-address"]);
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "127.0.0.1:1",
        "--no-such-flag",
    ]);
    assert_one_error_line(&out, &["--no-such-flag"]);
}

#[test]
fn a_taken_port_is_one_clear_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The taken listener doubles as the backend, so health checks find it up.
    let out = run(&["--listen", &addr, "--backend", &addr]);
    assert_one_error_line(&out, &[&addr, "already in use"]);
    let out = run(&["--listen", "127.0.0.1:0", "--admin", &addr, "--backend", &addr]);
    assert_one_error_line(&out, &[&addr, "already in use"]);
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--backend",
        "--strategy",
        "--mode",
        "--threads",
        "--admin",
        "--help",
        "--version",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}: {help}");
    }
    let out = run(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("rr-proxy {}\n", env!("CARGO_PKG_VERSION"))
    );
}
