//! What the cli crate's integration tests share: the binaries, started as a user
//! starts them and known by the `WHO listening on http://ADDR` lines they write to
//! stderr; signalling them and waiting for them to exit; running one to
//! completion and checking its errors. Every wait is bounded. What is not about
//! these binaries (clients, temporary directories, commands run within a bound)
//! is in the test-support crate.

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use test_support::{agent, get, run_within, wait_timeout, Reply, TIMEOUT};

/// The binaries under test, as Cargo built them for these tests.
pub const RR_CLUSTER: &str = env!("CARGO_BIN_EXE_rr-cluster");
pub const RR_PROXY: &str = env!("CARGO_BIN_EXE_rr-proxy");
pub const STATIC_SERVER: &str = env!("CARGO_BIN_EXE_static-server");

/// The demo site: `static/` in the workspace root.
pub fn static_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../static")
        .canonicalize()
        .expect("static/ in the workspace root")
}

/// A running binary; killed on drop if still running. A thread reads its stderr
/// line by line into an unbounded channel, so the pipe never fills; the lines
/// taken from the channel are kept, for waits and failure messages.
pub struct Running {
    child: Child,
    /// The binary's file name, for messages.
    name: String,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Running {
    /// Starts `command` with `RUST_LOG=info`, no stdin and stdout discarded.
    /// `NOTIFY_SOCKET` is passed on only when `command` sets it itself: a test
    /// run under systemd must not have its binaries report to the test's unit.
    pub fn start(command: &mut Command) -> Running {
        let name = Path::new(command.get_program())
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !command.get_envs().any(|(k, _)| k == "NOTIFY_SOCKET") {
            command.env_remove("NOTIFY_SOCKET");
        }
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            name,
            lines,
            stderr: Vec::new(),
        }
    }

    /// The next stderr line, waiting for it until `deadline`.
    pub fn next_line(&mut self, deadline: Instant) -> Result<String, RecvTimeoutError> {
        let line = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        self.stderr.push(line.clone());
        Ok(line)
    }

    /// The next `WHO listening on http://ADDR` (or `https://`) line as WHO and ADDR, skipping other
    /// lines. Panics with the stderr so far if none comes by `deadline`.
    pub fn next_listener(&mut self, deadline: Instant) -> (String, SocketAddr) {
        loop {
            let line = match self.next_line(deadline) {
                Ok(line) => line,
                Err(e) => panic!(
                    "{}: no `listening on` line in time ({e}); stderr: {:#?}",
                    self.name, self.stderr
                ),
            };
            let found = line
                .split_once(" listening on http://")
                .or_else(|| line.split_once(" listening on https://"));
            if let Some((who, addr)) = found {
                // With `--log-format json` the line is a JSON object: WHO starts
                // the message, and more follows the address.
                let who = who.rsplit('"').next().unwrap_or(who);
                let addr = addr.split(['"', ' ']).next().unwrap_or(addr);
                let addr = addr.trim().parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
                return (who.to_string(), addr);
            }
        }
    }

    /// The first stderr line, read already or still to come, that contains every
    /// one of `parts`. Panics with the stderr so far if none comes within [`TIMEOUT`].
    pub fn wait_for_line(&mut self, parts: &[&str]) -> String {
        let wanted = |line: &String| parts.iter().all(|p| line.contains(p));
        if let Some(line) = self.stderr().iter().find(|l| wanted(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.next_line(deadline) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!(
                    "{}: no stderr line with {parts:?} within {TIMEOUT:?} ({e}): {:#?}",
                    self.name, self.stderr
                ),
            }
        }
    }

    /// Every stderr line so far.
    pub fn stderr(&mut self) -> &[String] {
        self.stderr.extend(self.lines.try_iter());
        &self.stderr
    }

    /// Sends signal `sig` (`TERM`, `INT`, ...) with `kill`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.name);
    }

    /// The process id (for reading `/proc/PID/status`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited, without waiting for it.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits up to `limit` for the process to exit; kills it and panics otherwise.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        match wait_timeout(&mut self.child, limit) {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.stderr();
                panic!(
                    "{} did not exit within {limit:?}; stderr: {:#?}",
                    self.name, self.stderr
                );
            }
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

/// A binary with one listener: the process and the address it announced.
pub struct Server {
    pub process: Running,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `bin` with `args` and waits up to [`TIMEOUT`] for its
    /// `{name} listening on http://ADDR` line.
    pub fn start(bin: &str, name: &str, args: &[&str]) -> Server {
        let mut process = Running::start(Command::new(bin).args(args));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let (who, addr) = process.next_listener(deadline);
            if who == name {
                return Server { process, addr };
            }
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path` with a fresh [`agent`]; the response whatever its status.
    pub fn get(&self, path: &str) -> Reply {
        get(&agent(), &self.url(path))
    }
}

/// A running `rr-cluster`: four static backends, the balancer and the admin listener.
pub struct Cluster {
    pub process: Running,
    /// The balancer.
    pub proxy: SocketAddr,
    /// The admin listener (`/stats`, the status page, `/backends/...`).
    pub admin: SocketAddr,
    /// In the order they were announced.
    pub backends: Vec<SocketAddr>,
    /// Every announcement as WHO and ADDR, in order.
    pub listeners: Vec<(String, SocketAddr)>,
}

impl Cluster {
    /// Starts `rr-cluster` serving `root` with every listener on a free port of
    /// 127.0.0.1, and `args` besides, and waits up to [`TIMEOUT`] for all six
    /// `listening on` lines.
    pub fn start(root: &Path, args: &[&str]) -> Cluster {
        let mut process = Running::start(
            Command::new(RR_CLUSTER)
                .args([
                    "--listen",
                    "127.0.0.1:0",
                    "--backend-ports",
                    "0,0,0,0",
                    "--admin",
                    "127.0.0.1:0",
                ])
                .arg("--root")
                .arg(root)
                .args(args),
        );
        let (mut backends, mut admin, mut proxy, mut listeners) = (Vec::new(), None, None, Vec::new());
        let deadline = Instant::now() + TIMEOUT;
        while backends.len() < 4 || admin.is_none() || proxy.is_none() {
            let (who, addr) = process.next_listener(deadline);
            match who.as_str() {
                "admin" => admin = Some(addr),
                "rr-cluster" => proxy = Some(addr),
                _ => backends.push(addr),
            }
            listeners.push((who, addr));
        }
        Cluster {
            process,
            proxy: proxy.unwrap(),
            admin: admin.unwrap(),
            backends,
            listeners,
        }
    }

    /// `path` through the balancer.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }
}

/// `backend-PORT`: the name an `rr-cluster` backend announces and gives in `X-Served-By`.
pub fn backend_name(addr: SocketAddr) -> String {
    format!("backend-{}", addr.port())
}

/// Runs `bin` with `args` to completion within [`TIMEOUT`].
pub fn run(bin: &str, args: &[&str]) -> Output {
    run_within(Command::new(bin).args(args), TIMEOUT)
}

/// One line on stderr, `error: ...` containing each of `must_contain`, and a
/// non-zero exit.
#[track_caller]
pub fn assert_one_error_line(out: &Output, must_contain: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit {:?}; stderr: {stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for s in must_contain {
        assert!(lines[0].contains(s), "{s:?} not in {stderr}");
    }
}

/// `bin --help` succeeds and mentions each of `flags`; `bin --version` succeeds and
/// prints `{name} VERSION`, VERSION being this package's.
#[track_caller]
pub fn assert_help_and_version(bin: &str, name: &str, flags: &[&str]) {
    let out = run(bin, &["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in flags {
        assert!(help.contains(flag), "--help lacks {flag}: {help}");
    }
    let out = run(bin, &["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{name} {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// A `static-server` binary serving the demo site on a free port of
/// 127.0.0.1 with one thread, naming itself `id` in `X-Served-By`.
pub fn start_static_backend(id: &str) -> Server {
    start_static_backend_with(id, &[])
}

/// [`start_static_backend`] with more flags (`--tls-cert ...`).
pub fn start_static_backend_with(id: &str, extra: &[&str]) -> Server {
    let root = static_root();
    let mut args = vec![
        "--root",
        root.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--server-id",
        id,
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    Server::start(STATIC_SERVER, "static-server", &args)
}
