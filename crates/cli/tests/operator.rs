//! Running the binaries as an operator does: signals (SIGHUP is ignored without TLS, a
//! second SIGTERM or SIGINT cuts the shutdown short, `--shutdown-timeout` bounds
//! it), readiness through `NOTIFY_SOCKET` (systemd's `sd_notify`), the start-up
//! summary, the refusals (`--threads 0`, a bad `RUST_LOG`, a bad size), the
//! address grammar (`:PORT`, a bare port), and `rr-cluster --no-admin`.
//! Loopback only; every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{assert_one_error_line, run, static_root, Running, Server, RR_CLUSTER, RR_PROXY, STATIC_SERVER};
use test_support::{agent, get, run_within, TempDir, TIMEOUT};

/// `static-server` serving `static/` on a free loopback port, and `extra`.
fn static_server(extra: &[&str]) -> Server {
    let root = static_root();
    let mut args = vec![
        "--root",
        root.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    Server::start(STATIC_SERVER, "static-server", &args)
}

/// `rr-proxy` on a free loopback port in front of `backend`, and `extra`. The
/// health check probes a page that exists (static/ has no index, so `/` is 404).
fn rr_proxy(backend: SocketAddr, extra: &[&str]) -> Server {
    let backend = backend.to_string();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &backend,
        "--threads",
        "1",
        "--health-path",
        "/page.html",
    ];
    args.extend_from_slice(extra);
    Server::start(RR_PROXY, "rr-proxy", &args)
}

/// A backend that accepts connections, reads what comes and never answers.
/// Each connection that has sent a whole request head is reported on the
/// channel. The connections stay open until the test process ends.
fn silent_backend() -> (SocketAddr, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let _ = conn.set_read_timeout(Some(TIMEOUT));
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(());
            held.push(conn);
        }
    });
    (addr, rx)
}

/// Sends `GET path` to `addr` and returns the connection without reading.
fn send_get(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    s
}

/// `http://127.0.0.1:PORT{path}` for a server announced on any address.
fn loopback_url(addr: SocketAddr, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", addr.port())
}

/// A request for page.html through `addr` answers 200.
#[track_caller]
fn assert_serves(addr: SocketAddr) {
    let r = get(&agent(), &loopback_url(addr, "/page.html"));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn sighup_is_logged_and_ignored() {
    let mut backend = static_server(&[]);
    let mut proxy = rr_proxy(backend.addr, &[]);
    for server in [&mut backend, &mut proxy] {
        for _ in 0..2 {
            server.process.signal("HUP");
            server.process.wait_for_line(&[
                "SIGHUP received: nothing to reload (no --tls-cert, no configuration file); ignoring",
            ]);
            assert!(!server.process.has_exited(), "{:#?}", server.process.stderr());
        }
        assert_serves(server.addr);
    }
    // Both still stop on SIGTERM, with status 0.
    for server in [&mut proxy, &mut backend] {
        server.process.signal("TERM");
        assert_eq!(server.process.wait_exit(TIMEOUT).code(), Some(0));
    }
}

#[test]
fn a_second_signal_during_shutdown_exits_at_once() {
    for (second, status) in [("TERM", 143), ("INT", 130)] {
        let (backend, requests) = silent_backend();
        let mut proxy = rr_proxy(
            backend,
            &[
                "--no-health-check",
                "--shutdown-timeout",
                "30s",
                "--response-timeout",
                "60s",
            ],
        );
        let _client = send_get(proxy.addr, "/slow");
        requests
            .recv_timeout(TIMEOUT)
            .expect("the request reaches the backend");
        proxy.process.signal("TERM");
        proxy
            .process
            .wait_for_line(&["SIGTERM received: shutting down gracefully"]);
        // The request in flight holds the shutdown open...
        std::thread::sleep(Duration::from_millis(500));
        assert!(!proxy.process.has_exited(), "{:#?}", proxy.process.stderr());
        // ...until the second signal.
        let sent = Instant::now();
        proxy.process.signal(second);
        let exit = proxy.process.wait_exit(TIMEOUT);
        let took = sent.elapsed();
        assert_eq!(exit.code(), Some(status), "SIG{second}: {exit:?}");
        assert!(
            took < Duration::from_secs(3),
            "exited {took:?} after the second signal"
        );
        proxy.process.wait_for_line(&[&format!(
            "SIG{second} received again during graceful shutdown: exiting at once"
        )]);
    }
}

/// Waits for the process to exit after SIGTERM; the status and how long it took.
fn terminate(process: &mut Running) -> (Option<i32>, Duration) {
    let start = Instant::now();
    process.signal("TERM");
    let status = process.wait_exit(Duration::from_secs(20));
    (status.code(), start.elapsed())
}

/// A root holding `big.bin`, a 256 MiB sparse file: more than every socket
/// buffer between a server and a client that does not read.
fn root_with_a_big_file() -> TempDir {
    let root = TempDir::new("big");
    root.file("page.html", "<p>hello</p>\n");
    let file = std::fs::File::create(root.join("big.bin")).unwrap();
    file.set_len(256 << 20).unwrap();
    root
}

/// Starts a download of big.bin through `addr` and stops reading after the head.
fn stalled_download(addr: SocketAddr) -> TcpStream {
    let mut s = send_get(addr, "/big.bin");
    let mut head = [0u8; 512];
    let n = s.read(&mut head).unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    // Let the buffers on the way fill.
    std::thread::sleep(Duration::from_millis(300));
    s
}

#[test]
fn shutdown_timeout_bounds_the_drain() {
    // rr-proxy: a request waiting on a backend that never answers.
    let (backend, requests) = silent_backend();
    let mut proxy = rr_proxy(backend, &["--no-health-check", "--shutdown-timeout", "1s"]);
    let _client = send_get(proxy.addr, "/slow");
    requests
        .recv_timeout(TIMEOUT)
        .expect("the request reaches the backend");
    let (code, took) = terminate(&mut proxy.process);
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "rr-proxy exited after {took:?}"
    );
    proxy
        .process
        .wait_for_line(&["shutdown timeout: closing remaining connections"]);

    // static-server: a download the client stopped reading.
    let root = root_with_a_big_file();
    let root_arg = root.path().to_str().unwrap();
    let mut server = Server::start(
        STATIC_SERVER,
        "static-server",
        &[
            "--root",
            root_arg,
            "--listen",
            "127.0.0.1:0",
            "--shutdown-timeout",
            "1s",
        ],
    );
    let _client = stalled_download(server.addr);
    let (code, took) = terminate(&mut server.process);
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "static-server exited after {took:?}"
    );

    // rr-cluster: the same download through its balancer; 10 s without the flag.
    let mut cluster = Running::start(Command::new(RR_CLUSTER).args([
        "--root",
        root_arg,
        "--listen",
        "127.0.0.1:0",
        "--backend-ports",
        "0,0",
        "--no-admin",
        "--threads",
        "2",
        "--shutdown-timeout",
        "1s",
    ]));
    let balancer = wait_for_listener(&mut cluster, "rr-cluster");
    let _client = stalled_download(balancer);
    let (code, took) = terminate(&mut cluster);
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "rr-cluster exited after {took:?}"
    );
}

/// Skips `listening on` lines until `who`'s; its address.
fn wait_for_listener(process: &mut Running, who: &str) -> SocketAddr {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (name, addr) = process.next_listener(deadline);
        if name == who {
            return addr;
        }
    }
}

/// A datagram socket standing in for systemd's notification socket.
struct NotifySocket {
    socket: UnixDatagram,
    /// The value for `NOTIFY_SOCKET`.
    env: String,
    _dir: Option<TempDir>,
}

impl NotifySocket {
    /// A socket file in a temporary directory.
    fn at_path() -> NotifySocket {
        let dir = TempDir::new("notify");
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket::ready(socket, path.to_str().unwrap().to_owned(), Some(dir))
    }

    /// A name in Linux's abstract namespace: `NOTIFY_SOCKET=@NAME`.
    fn abstract_name() -> NotifySocket {
        use std::os::linux::net::SocketAddrExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("rr-http-test-{}-{nanos}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        NotifySocket::ready(socket, format!("@{name}"), None)
    }

    fn ready(socket: UnixDatagram, env: String, dir: Option<TempDir>) -> NotifySocket {
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        NotifySocket {
            socket,
            env,
            _dir: dir,
        }
    }

    /// The next message, within [`TIMEOUT`].
    fn recv(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("a notification in time");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    /// No message within `wait`.
    fn assert_quiet(&self, wait: Duration) {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(n) = self.socket.recv(&mut buf) {
            panic!("unexpected notification {:?}", String::from_utf8_lossy(&buf[..n]));
        }
        self.socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    }
}

#[test]
fn notify_socket_hears_ready_and_stopping() {
    // static-server, a socket file.
    let notify = NotifySocket::at_path();
    let root = static_root();
    let mut process = Running::start(
        Command::new(STATIC_SERVER)
            .args([
                "--root",
                root.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "1",
            ])
            .env("NOTIFY_SOCKET", &notify.env),
    );
    let addr = wait_for_listener(&mut process, "static-server");
    assert_eq!(
        notify.recv(),
        format!("READY=1\nSTATUS=listening: static-server on http://{addr}")
    );
    assert_serves(addr);
    process.signal("HUP");
    process.wait_for_line(&["SIGHUP received"]);
    notify.assert_quiet(Duration::from_millis(200));
    process.signal("TERM");
    assert_eq!(notify.recv(), "STOPPING=1\nSTATUS=shutting down");
    assert_eq!(process.wait_exit(TIMEOUT).code(), Some(0));

    // rr-proxy with its admin listener, an abstract socket name.
    let backend = static_server(&[]);
    let notify = NotifySocket::abstract_name();
    let mut process = Running::start(
        Command::new(RR_PROXY)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--threads",
                "1",
            ])
            .args(["--backend", &backend.addr.to_string()])
            .env("NOTIFY_SOCKET", &notify.env),
    );
    let addr = wait_for_listener(&mut process, "rr-proxy");
    let admin = wait_for_listener(&mut process, "admin");
    assert_eq!(
        notify.recv(),
        format!("READY=1\nSTATUS=listening: rr-proxy on http://{addr}, admin on http://{admin}")
    );
    process.signal("INT");
    assert_eq!(notify.recv(), "STOPPING=1\nSTATUS=shutting down");
    assert_eq!(process.wait_exit(TIMEOUT).code(), Some(0));
}

#[test]
fn a_bad_notify_socket_is_a_warning_not_a_failure() {
    let dir = TempDir::new("nonotify");
    let missing = dir.join("no-such.sock");
    let root = static_root();
    let mut process = Running::start(
        Command::new(STATIC_SERVER)
            .args([
                "--root",
                root.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "1",
            ])
            .env("NOTIFY_SOCKET", &missing),
    );
    let addr = wait_for_listener(&mut process, "static-server");
    process.wait_for_line(&["cannot notify the service manager (NOTIFY_SOCKET)"]);
    assert_serves(addr);
}

#[test]
fn rr_cluster_runs_without_its_admin() {
    let notify = NotifySocket::at_path();
    let root = static_root();
    let mut process = Running::start(
        Command::new(RR_CLUSTER)
            .args(["--root", root.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(["--backend-ports", "0,0", "--no-admin", "--threads", "2"])
            .env("NOTIFY_SOCKET", &notify.env),
    );
    let deadline = Instant::now() + TIMEOUT;
    let mut announced = Vec::new();
    let balancer = loop {
        let (who, addr) = process.next_listener(deadline);
        announced.push(format!("{who} on http://{addr}"));
        if who == "rr-cluster" {
            break addr;
        }
    };
    assert_eq!(announced.len(), 3, "two backends and the balancer: {announced:?}");
    assert!(announced.iter().all(|a| !a.starts_with("admin")), "{announced:?}");
    assert_eq!(
        notify.recv(),
        format!("READY=1\nSTATUS=listening: {}", announced.join(", "))
    );
    process.wait_for_line(&["open http://localhost:", "no status page: --no-admin"]);
    process.wait_for_line(&["balancer on ", "admin off"]);
    assert_serves(balancer);
    process.signal("HUP");
    process.wait_for_line(&["SIGHUP received"]);
    assert_serves(balancer);
    process.signal("TERM");
    assert_eq!(notify.recv(), "STOPPING=1\nSTATUS=shutting down");
    assert_eq!(process.wait_exit(TIMEOUT).code(), Some(0));
    assert!(
        !process.stderr().iter().any(|l| l.contains("admin listening on")),
        "{:#?}",
        process.stderr()
    );

    // --no-admin with an admin flag: which is meant?
    for flag in [["--admin", "127.0.0.1:0"], ["--admin-host", "lb.example"]] {
        let out = run(RR_CLUSTER, &["--no-admin", flag[0], flag[1]]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_one_error_line(&out, &["--no-admin", flag[0]]);
    }
}

#[test]
fn startup_summary_says_what_runs() {
    let mut backend = static_server(&[
        "--listing",
        "--cache-max-file",
        "512KiB",
        "--cache-size",
        "10MB",
        "--max-connections",
        "300",
        "--shutdown-timeout",
        "4s",
    ]);
    let line = backend
        .process
        .wait_for_line(&[&format!("static-server on {}: root ", backend.addr)]);
    for part in [
        &static_root().display().to_string() as &str,
        "listing on",
        "cache files up to 512KiB (10MB in all, checked every 1s)",
        "max connections 300",
        "header timeout 10s",
        "shutdown timeout 4s",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }

    let b = backend.addr.to_string();
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &b,
            "--backend",
            "127.0.0.1:1=3",
            "--strategy",
            "weighted",
            "--health-interval",
            "5s",
            "--health-path",
            "/page.html",
            "--health-expect",
            "200-299",
            "--connect-timeout",
            "2s",
            "--max-connections",
            "500",
        ],
    );
    let line = proxy
        .process
        .wait_for_line(&[&format!("rr-proxy on {}: mode http", proxy.addr)]);
    for part in [
        &format!("2 backends ({b}, 127.0.0.1:1=3)") as &str,
        "strategy weighted",
        "health check GET /page.html every 5s (timeout 1s, expect 200-299, rise 2, fall 3)",
        "timeouts: connect 2s, response 30s, idle 30s",
        "max connections 500",
        "admin off",
        "shutdown timeout 10s",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    let mut off = rr_proxy(backend.addr, &["--no-health-check", "--mode", "tcp"]);
    let line = off.process.wait_for_line(&["rr-proxy on ", "mode tcp"]);
    assert!(
        line.contains("1 backend (") && line.contains("health check off"),
        "{line}"
    );
}

/// Runs `bin` with `args` and `RUST_LOG=rust_log` to completion.
fn run_with_rust_log(bin: &str, args: &[&str], rust_log: &str) -> Output {
    run_within(Command::new(bin).args(args).env("RUST_LOG", rust_log), TIMEOUT)
}

#[test]
fn threads_zero_and_a_bad_rust_log_are_refused() {
    let root = static_root();
    let root = root.to_str().unwrap();
    let cases: [(&str, Vec<&str>); 3] = [
        (STATIC_SERVER, vec!["--root", root, "--listen", "127.0.0.1:0"]),
        (
            RR_PROXY,
            vec!["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"],
        ),
        (
            RR_CLUSTER,
            vec![
                "--root",
                root,
                "--listen",
                "127.0.0.1:0",
                "--backend-ports",
                "0",
                "--no-admin",
            ],
        ),
    ];
    for (bin, base) in &cases {
        let mut args = base.clone();
        args.extend(["--threads", "0"]);
        let out = run(bin, &args);
        assert_eq!(out.status.code(), Some(2), "{bin}: {out:?}");
        assert_one_error_line(&out, &["--threads", "'0'", "at least 1"]);

        if !bin.ends_with("rr-cluster") {
            let mut args = base.clone();
            args.extend(["--max-connections", "0"]);
            let out = run(bin, &args);
            assert_eq!(out.status.code(), Some(2), "{bin}: {out:?}");
            assert_one_error_line(&out, &["--max-connections", "'0'", "1 or more"]);
        }

        for bad in ["foo=bar=baz", "info,rr_proxy=loud"] {
            let out = run_with_rust_log(bin, base, bad);
            assert_eq!(out.status.code(), Some(2), "{bin} RUST_LOG={bad}: {out:?}");
            assert_one_error_line(&out, &[&format!("RUST_LOG=\"{bad}\""), "not a valid log filter"]);
        }
    }
}

#[test]
fn sizes_take_units_and_a_bad_one_is_one_line() {
    let root = static_root();
    let root = root.to_str().unwrap();
    for (flag, value, says) in [
        ("--cache-size", "10XB", "unknown unit \"XB\""),
        ("--cache-max-file", "lots", "bad size"),
        ("--cache-size", "1.5.2", "bad size"),
    ] {
        let out = run(
            STATIC_SERVER,
            &["--root", root, "--listen", "127.0.0.1:0", flag, value],
        );
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_one_error_line(&out, &[flag, value, says]);
    }
    // Sizes with units reach the cache: a 13-byte file over a 12-byte limit is
    // read from disk each time, so a change shows at once (no revalidation wait).
    let dir = TempDir::new("sizes");
    dir.file("page.html", "<p>hello</p>\n");
    let server = Server::start(
        STATIC_SERVER,
        "static-server",
        &[
            "--root",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--cache-max-file",
            "12B",
            "--cache-size",
            "1GiB",
            "--revalidate",
            "1h",
        ],
    );
    assert_eq!(server.get("/page.html").text(), "<p>hello</p>\n");
    dir.file("page.html", "<p>again</p>\n");
    assert_eq!(server.get("/page.html").text(), "<p>again</p>\n");
}

#[test]
fn listen_takes_a_port_alone() {
    // `:0`: every IPv4 address, a free port; reached here over loopback.
    let root = static_root();
    let server = Server::start(
        STATIC_SERVER,
        "static-server",
        &[
            "--root",
            root.to_str().unwrap(),
            "--listen",
            ":0",
            "--threads",
            "1",
        ],
    );
    assert!(server.addr.ip().is_unspecified(), "{}", server.addr);
    assert_eq!(server.addr.ip().to_string(), "0.0.0.0");
    assert_ne!(server.addr.port(), 0);
    assert_serves(server.addr);

    // A bare port.
    let proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "0",
            "--backend",
            &format!("127.0.0.1:{}", server.addr.port()),
            "--threads",
            "1",
            "--health-path",
            "/page.html",
        ],
    );
    assert_eq!(proxy.addr.ip().to_string(), "0.0.0.0");
    assert_serves(proxy.addr);

    for bad in ["localhost:8080", "65536", ":http"] {
        let out = run(RR_PROXY, &["--listen", bad, "--backend", "127.0.0.1:1"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_one_error_line(&out, &["--listen", bad, "IP:PORT, :PORT or PORT"]);
    }
}

#[test]
fn help_opens_with_what_the_tool_is_and_ends_with_signals_and_exit_codes() {
    for (bin, opening) in [
        (STATIC_SERVER, "Static-file server"),
        (RR_PROXY, "Round-robin load balancer"),
        (RR_CLUSTER, "Run the course scenario"),
    ] {
        let out = run(bin, &["--help"]);
        assert!(out.status.success(), "{out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        let first = help.lines().next().unwrap_or_default();
        assert!(first.starts_with(opening), "{bin}: {first:?}");
        for part in [
            "--shutdown-timeout <DUR>",
            "--threads <N>",
            "ADDR is IP:PORT",
            "Signals: SIGINT or SIGTERM",
            "SIGHUP reloads the TLS certificates",
            "NOTIFY_SOCKET",
            "Exit status: 0",
        ] {
            assert!(help.contains(part), "{bin}: {part:?} not in {help}");
        }
    }
    let help = String::from_utf8_lossy(&run(RR_CLUSTER, &["--help"]).stdout).into_owned();
    assert!(help.contains("--no-admin"), "{help}");
    let help = String::from_utf8_lossy(&run(STATIC_SERVER, &["--help"]).stdout).into_owned();
    assert!(
        help.contains("--cache-size <SIZE>") && help.contains("SIZE is a number of bytes"),
        "{help}"
    );
}
