//! The `static-server` binary as a user runs it: flags, the listening line,
//! errors, and shutdown on SIGTERM/SIGINT. Requests go through ureq.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_static-server");
const TIMEOUT: Duration = Duration::from_secs(10);

/// A unique temporary root with one page; removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Root {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "static-server-bin-{}-{tag}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("dir")).unwrap();
        std::fs::write(dir.join("page.html"), "<p>hello</p>\n").unwrap();
        std::fs::write(dir.join("dir/a.txt"), "a").unwrap();
        Root(dir)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server; killed on drop if still running.
struct Running {
    child: Child,
    addr: SocketAddr,
    /// stderr lines after the listening line, as they arrive.
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn static-server");
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
        let deadline = Instant::now() + TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    panic!("no listening line within {TIMEOUT:?}: {e}");
                }
            };
            if let Some(i) = line.find("listening on http://") {
                let addr = &line[i + "listening on http://".len()..];
                break addr
                    .trim()
                    .parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            }
        };
        Running {
            child,
            addr,
            lines: rx,
        }
    }

    fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new().timeout(TIMEOUT).redirects(0).build()
    }

    fn get(&self, path: &str) -> ureq::Response {
        match Self::agent().get(&format!("http://{}{path}", self.addr)).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
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
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("static-server did not exit within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// stderr lines received so far (after the listening line).
    fn drain_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
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

/// Runs the binary to completion with a timeout.
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
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
            panic!("static-server {args:?} did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn prints_the_real_port_serves_and_names_itself() {
    let root = Root::new("serve");
    let srv = Running::start(&[
        "--root",
        root.0.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--server-id",
        "backend-9002",
        "--header",
        "X-Extra: yes",
    ]);
    assert_eq!(srv.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(srv.addr.port(), 0);
    let r = srv.get("/page.html");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("X-Served-By"), Some("backend-9002"));
    assert_eq!(r.header("X-Extra"), Some("yes"));
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.into_string().unwrap(), "<p>hello</p>\n");
    let r = srv.get("/missing");
    assert_eq!(r.status(), 404);
    assert_eq!(r.header("X-Served-By"), Some("backend-9002"));
    // Listing is off by default.
    assert_eq!(srv.get("/dir/").status(), 404);
}

#[test]
fn access_log_line_per_request() {
    let root = Root::new("log");
    let srv = Running::start(&["--root", root.0.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(srv.get("/page.html?x=1").status(), 200);
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen.extend(srv.drain_lines());
        if seen
            .iter()
            .any(|l| l.contains("GET /page.html?x=1 HTTP/1.1\" 200 13"))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no access line for the request in {seen:?}");
}

#[test]
fn listing_flag_turns_listings_on() {
    let root = Root::new("listing");
    let srv = Running::start(&[
        "--root",
        root.0.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--listing",
    ]);
    let r = srv.get("/dir/");
    assert_eq!(r.status(), 200);
    assert!(r.into_string().unwrap().contains(">a.txt</a>"));
}

#[test]
fn builder_flags_reach_the_library() {
    let root = Root::new("flags");
    std::fs::write(root.0.join(".env"), "ENV").unwrap();
    std::fs::write(root.0.join("dir/home.html"), "HOME").unwrap();
    std::fs::write(root.0.join("page.html.gz"), "GZ").unwrap();
    std::os::unix::fs::symlink("page.html", root.0.join("link")).unwrap();
    let dir = root.0.to_str().unwrap();
    let defaults = Running::start(&["--root", dir, "--listen", "127.0.0.1:0"]);
    assert_eq!(defaults.get("/.env").status(), 404);
    assert_eq!(defaults.get("/link").status(), 200);
    assert_eq!(defaults.get("/dir/").status(), 404);
    let gz = Running::agent()
        .get(&format!("http://{}/page.html", defaults.addr))
        .set("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(gz.header("Content-Encoding"), Some("gzip"));
    let srv = Running::start(&[
        "--root",
        dir,
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--dotfiles",
        "--symlinks",
        "never",
        "--index",
        "home.html",
        "--no-precompressed",
        "--cache-size",
        "0",
    ]);
    assert_eq!(srv.get("/.env").into_string().unwrap(), "ENV");
    assert_eq!(srv.get("/link").status(), 404);
    assert_eq!(srv.get("/dir/").into_string().unwrap(), "HOME");
    let plain = Running::agent()
        .get(&format!("http://{}/page.html", srv.addr))
        .set("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(plain.header("Content-Encoding"), None);
    assert_eq!(plain.into_string().unwrap(), "<p>hello</p>\n");
}

#[test]
fn sigterm_and_sigint_shut_down_with_exit_0() {
    let root = Root::new("signal");
    for (sig, threads) in [("TERM", "2"), ("INT", "1")] {
        let mut srv = Running::start(&[
            "--root",
            root.0.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--threads",
            threads,
        ]);
        assert_eq!(srv.get("/page.html").status(), 200);
        srv.signal(sig);
        let status = srv.wait();
        assert_eq!(status.code(), Some(0), "SIG{sig}: {status:?}");
        // The port is released.
        assert!(std::net::TcpStream::connect_timeout(&srv.addr, Duration::from_secs(1)).is_err());
    }
}

/// One line on stderr, `error: ...`, and a non-zero exit.
#[track_caller]
fn assert_one_error_line(out: &Output, must_contain: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit {:?}", out.status);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(must_contain), "{stderr}");
}

#[test]
fn a_missing_root_is_one_clear_error() {
    let root = Root::new("missing");
    let missing = root.0.join("no-such-dir");
    let out = run(&["--root", missing.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_one_error_line(&out, missing.to_str().unwrap());
    // A file given as root.
    let file = root.0.join("page.html");
    let out = run(&["--root", file.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_one_error_line(&out, "not a directory");
}

#[test]
fn a_taken_port_is_one_clear_error() {
    let root = Root::new("taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["--root", root.0.to_str().unwrap(), "--listen", &addr]);
    assert_one_error_line(&out, &addr);
    assert_one_error_line(&out, "already in use");
}

#[test]
fn a_bad_flag_fails_with_a_clear_first_line() {
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("--no-such-flag"),
        "{stderr}"
    );
    let out = run(&["--listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--header", "no colon", "--listen", "127.0.0.1:0"]);
    assert_one_error_line(&out, "--header");
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--root",
        "--listen",
        "--threads",
        "--server-id",
        "--listing",
        "--index",
        "--symlinks",
        "--dotfiles",
        "--no-precompressed",
        "--cache-max-file",
        "--cache-size",
        "--header",
        "--help",
        "--version",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}: {help}");
    }
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("static-server {}\n", env!("CARGO_PKG_VERSION"))
    );
}
