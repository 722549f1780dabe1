//! The `rr-cluster` binary as a user runs it (issue 5): four static backends and
//! the round-robin balancer on ephemeral ports, the turns they take, the admin
//! JSON, draining, Ctrl-C (SIGINT) during a burst, the errors for a taken port or
//! a bad port list, and the admin refusing other sites' pages. Requests go through
//! ureq, and through curl where a test sets `Host` or `Origin` itself.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use common::{assert_help_and_version, backend_name, run, static_root, Cluster, RR_CLUSTER};
use test_support::{
    accepts_connections, agent, agent_builder, call, content_length, curl_status, get, head_len, TempDir,
    TIMEOUT,
};

/// [`Cluster::start`] with two worker threads, checking every announcement: a real
/// port on 127.0.0.1, and each backend named `backend-PORT`.
fn start_cluster(root: &Path) -> Cluster {
    let cluster = Cluster::start(root, &["--threads", "2"]);
    for (who, addr) in &cluster.listeners {
        assert_eq!(addr.ip().to_string(), "127.0.0.1", "{who} {addr}");
        assert_ne!(addr.port(), 0, "{who} {addr}");
        if cluster.backends.contains(addr) {
            assert_eq!(*who, backend_name(*addr), "{who} {addr}");
        }
    }
    cluster
}

/// One backend of the admin `/stats` document.
#[derive(Debug, Clone)]
struct BackendStat {
    requests: u64,
    state: String,
}

/// The backends of `/stats`, by address. The document is flat JSON written by
/// the admin endpoint; the few fields needed are picked out by hand (the cli
/// crate has no JSON dependency).
fn stats(agent: &ureq::Agent, admin: SocketAddr) -> BTreeMap<SocketAddr, BackendStat> {
    let r = get(agent, &format!("http://{admin}/stats"));
    let text = String::from_utf8(r.body).unwrap();
    assert_eq!(r.status, 200, "{text}");
    parse_stats(&text)
}

fn parse_stats(text: &str) -> BTreeMap<SocketAddr, BackendStat> {
    fn field<'a>(obj: &'a str, name: &str) -> &'a str {
        let key = format!("\"{name}\":");
        let at = obj.find(&key).unwrap_or_else(|| panic!("no {name} in {obj}")) + key.len();
        let rest = &obj[at..];
        match rest.strip_prefix('"') {
            Some(s) => &s[..s.find('"').unwrap()],
            None => &rest[..rest.find([',', '}']).unwrap_or(rest.len())],
        }
    }
    let list = text
        .split_once("\"backends\":[")
        .unwrap_or_else(|| panic!("no backends in {text}"))
        .1;
    let mut out = BTreeMap::new();
    for obj in list.split("{\"addr\":").skip(1) {
        let obj = format!("{{\"addr\":{obj}");
        let addr: SocketAddr = field(&obj, "addr").parse().unwrap();
        let stat = BackendStat {
            requests: field(&obj, "requests").parse().unwrap(),
            state: field(&obj, "state").to_string(),
        };
        out.insert(addr, stat);
    }
    out
}

/// `n` sequential GETs of page.html through the balancer on one keep-alive
/// connection; how many each backend answered (by `X-Served-By`).
fn turns(cluster: &Cluster, agent: &ureq::Agent, n: usize, page: &[u8]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let r = get(agent, &cluster.url("/page.html"));
        assert_eq!(r.status, 200, "request {i}");
        assert!(r.body == page, "request {i}: page.html differs from the file");
        let by = r.header("X-Served-By").unwrap_or_default().to_string();
        *counts.entry(by).or_insert(0) += 1;
    }
    counts
}

/// The per-backend request counts of `/stats` moved by exactly `counted`.
#[track_caller]
fn assert_stats_agree(
    before: &BTreeMap<SocketAddr, BackendStat>,
    after: &BTreeMap<SocketAddr, BackendStat>,
    counted: &BTreeMap<String, u64>,
) {
    for (addr, b) in after {
        let delta = b.requests - before[addr].requests;
        let mine = counted.get(&backend_name(*addr)).copied().unwrap_or(0);
        assert_eq!(
            delta, mine,
            "/stats says {addr} took {delta} requests, the test counted {mine}"
        );
    }
}

#[test]
fn four_backends_take_turns_stats_agree_and_draining_moves_the_share() {
    let mut cluster = start_cluster(&static_root());
    let page = std::fs::read(static_root().join("page.html")).unwrap();
    let agent = agent();
    assert_eq!(cluster.backends.len(), 4);
    let names: Vec<String> = cluster.backends.iter().map(|&a| backend_name(a)).collect();

    // Every backend serves the page itself and names itself.
    for (addr, name) in cluster.backends.iter().zip(&names) {
        let r = get(&agent, &format!("http://{addr}/page.html"));
        assert_eq!(r.status, 200, "{addr}");
        assert_eq!(r.header("X-Served-By"), Some(name.as_str()), "{addr}");
        assert!(r.body == page, "{addr}: page.html differs from the file");
    }

    // The admin JSON knows the four, all healthy.
    let before = stats(&agent, cluster.admin);
    let listed: HashSet<SocketAddr> = before.keys().copied().collect();
    assert_eq!(listed, cluster.backends.iter().copied().collect(), "{before:?}");
    assert!(before.values().all(|b| b.state == "healthy"), "{before:?}");

    // 40 requests through the balancer: 10 each.
    let counts = turns(&cluster, &agent, 40, &page);
    let expected: BTreeMap<String, u64> = names.iter().map(|n| (n.clone(), 10)).collect();
    assert_eq!(counts, expected);
    let after = stats(&agent, cluster.admin);
    assert_stats_agree(&before, &after, &counts);

    // Draining one moves its share to the other three.
    let drained = cluster.backends[1];
    let (status, body) = post(
        &agent,
        &format!("http://{}/backends/{drained}/drain", cluster.admin),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"state\":\"draining\""), "{body}");
    let before = stats(&agent, cluster.admin);
    assert_eq!(before[&drained].state, "draining");
    let counts = turns(&cluster, &agent, 30, &page);
    let expected: BTreeMap<String, u64> = names
        .iter()
        .filter(|n| **n != backend_name(drained))
        .map(|n| (n.clone(), 10))
        .collect();
    assert_eq!(counts, expected, "after draining {drained}");
    let after = stats(&agent, cluster.admin);
    assert_stats_agree(&before, &after, &counts);

    // Enabling brings it back into the rotation.
    let (status, body) = post(
        &agent,
        &format!("http://{}/backends/{drained}/enable", cluster.admin),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"state\":\"healthy\""), "{body}");
    let before = stats(&agent, cluster.admin);
    let counts = turns(&cluster, &agent, 40, &page);
    let expected: BTreeMap<String, u64> = names.iter().map(|n| (n.clone(), 10)).collect();
    assert_eq!(counts, expected, "after enabling {drained} again");
    let after = stats(&agent, cluster.admin);
    assert_stats_agree(&before, &after, &counts);
    assert!(after.values().all(|b| b.state == "healthy"), "{after:?}");

    // The access log interleaves the balancer's and the backends' lines: each
    // request through the balancer names the backend it went to.
    cluster
        .process
        .wait_for_line(&["GET /page.html", &format!("backend={drained}")]);

    cluster.process.signal("TERM");
    assert_eq!(cluster.process.wait_exit(TIMEOUT).code(), Some(0));
}

/// POST `url` without a body: the status and the body, whatever the status.
fn post(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let r = call(agent, "POST", url, None).unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (r.status, String::from_utf8(r.body).unwrap())
}

/// Size of the file the slow downloads fetch: far more than the balancer's socket
/// buffer towards a client (4 MiB at most on Linux) plus the client's small receive
/// buffer, so the balancer still has most of each response to send when SIGINT
/// arrives.
const BIG: usize = 12 << 20;
/// Body bytes a slow download reads before SIGINT is sent.
const BIG_BEFORE_SIGNAL: usize = 256 << 10;

fn big_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// A download of `/big.bin` that is certainly in flight when SIGINT is sent: it
/// connects with a small receive buffer, reads the head and the first
/// [`BIG_BEFORE_SIGNAL`] body bytes, reports on `ready`, waits for `go`, then reads
/// the rest. Returns an error text unless the whole body arrived intact.
fn slow_download(addr: SocketAddr, ready: mpsc::Sender<()>, go: mpsc::Receiver<()>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let mut stream = rt
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            // Fixes the buffer (no autotuning): the response cannot all sit in
            // this side's kernel buffer.
            socket.set_recv_buffer_size(16 << 10)?;
            socket.connect(addr).await?.into_std()
        })
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: rr-cluster-test\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(end) = head_len(&buf) {
            break end;
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("reading the head: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed before the head: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(format!("not 200: {head}"));
    }
    let len = content_length(&head).ok_or_else(|| format!("no Content-Length: {head}"))?;
    if len != BIG {
        return Err(format!("Content-Length {len}, file has {BIG}"));
    }
    let mut body: Vec<u8> = buf[head_end..].to_vec();
    let mut signalled = false;
    while body.len() < len {
        if !signalled && body.len() >= BIG_BEFORE_SIGNAL {
            let _ = ready.send(());
            go.recv_timeout(TIMEOUT)
                .map_err(|e| format!("never told to go on: {e}"))?;
            signalled = true;
        }
        let want = if signalled {
            chunk.len()
        } else {
            (BIG_BEFORE_SIGNAL - body.len()).clamp(1, chunk.len())
        };
        let n = stream
            .read(&mut chunk[..want])
            .map_err(|e| format!("body cut off after {} of {len} bytes: {e}", body.len()))?;
        if n == 0 {
            return Err(format!("body cut off after {} of {len} bytes", body.len()));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if body.len() != len || body.iter().enumerate().any(|(i, &b)| b != big_byte(i)) {
        return Err("body differs from the file".into());
    }
    Ok(())
}

/// What one request of the burst gave.
#[derive(Debug)]
enum Outcome {
    /// A response with this status, its body complete and equal to the file.
    Complete(u16),
    /// A response head, then an error or a wrong body.
    Broken(String),
    /// No response at all (refused, reset or closed before a response).
    NoResponse(String),
}

#[derive(Debug)]
struct Attempt {
    started: Instant,
    ended: Instant,
    outcome: Outcome,
}

fn attempt(agent: &ureq::Agent, url: &str, page: &[u8]) -> Outcome {
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => return Outcome::Complete(code),
        Err(e) => return Outcome::NoResponse(e.to_string()),
    };
    let status = resp.status();
    let mut body = Vec::new();
    match resp.into_reader().read_to_end(&mut body) {
        Ok(_) if body == page => Outcome::Complete(status),
        Ok(_) => Outcome::Broken(format!(
            "{} body bytes, not the file's {}",
            body.len(),
            page.len()
        )),
        Err(e) => Outcome::Broken(format!("body cut off after {} bytes: {e}", body.len())),
    }
}

#[test]
fn sigint_during_a_burst_exits_0_and_no_request_in_flight_fails() {
    /// How long before the signal a request may start and still meet a
    /// keep-alive connection closed for the shutdown.
    const CLOSE_RACE: Duration = Duration::from_millis(20);
    let root = TempDir::new("sigint");
    let page = std::fs::read(static_root().join("page.html")).unwrap();
    root.file("page.html", &page);
    let big: Vec<u8> = (0..BIG).map(big_byte).collect();
    root.file("big.bin", &big);
    drop(big);
    let mut cluster = start_cluster(root.path());
    let proxy = cluster.proxy;

    // Downloads that are mid-body when the signal comes: they must complete.
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut go = Vec::new();
    let mut downloads = Vec::new();
    for _ in 0..4 {
        let (go_tx, go_rx) = mpsc::channel();
        let ready = ready_tx.clone();
        go.push(go_tx);
        downloads.push(std::thread::spawn(move || slow_download(proxy, ready, go_rx)));
    }
    for i in 0..downloads.len() {
        if ready_rx.recv_timeout(TIMEOUT).is_err() {
            let errors: Vec<_> = downloads.into_iter().map(|d| d.join().unwrap()).collect();
            panic!("only {i} downloads got going: {errors:?}");
        }
    }

    // A burst: 20 threads, each looping GETs of page.html on a keep-alive agent.
    const THREADS: usize = 20;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let page = Arc::new(page);
    let url = cluster.url("/page.html");
    let burst: Vec<_> = (0..THREADS)
        .map(|_| {
            let (stop, start, page, url) = (stop.clone(), start.clone(), page.clone(), url.clone());
            std::thread::spawn(move || {
                let agent = agent_builder().timeout(Duration::from_secs(5)).build();
                let mut log = Vec::new();
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let outcome = attempt(&agent, &url, &page);
                    let failed = matches!(outcome, Outcome::NoResponse(_));
                    log.push(Attempt {
                        started,
                        ended: Instant::now(),
                        outcome,
                    });
                    if failed {
                        // Refused after shutdown: no need to spin.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                log
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    cluster.process.signal("INT");
    // The balancer has stopped accepting but keeps serving what is in flight: the
    // process is still there while the downloads are unfinished.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !cluster.process.has_exited(),
        "rr-cluster exited while responses were still in flight"
    );
    for g in &go {
        let _ = g.send(());
    }
    let status = cluster.process.wait_exit(TIMEOUT);
    let exited = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for (i, d) in downloads.into_iter().enumerate() {
        if let Err(e) = d.join().unwrap() {
            panic!("download {i}, in flight when SIGINT came, failed: {e}");
        }
    }
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}; stderr: {:#?}",
        cluster.process.stderr()
    );
    assert!(
        exited < Duration::from_secs(5),
        "took {exited:?} to exit after SIGINT"
    );
    // Every listener is closed.
    for addr in cluster.backends.iter().chain([&cluster.proxy, &cluster.admin]) {
        assert!(!accepts_connections(*addr), "{addr} still open");
    }

    // What counts:
    // - every request that got a response got a complete 200 (never a 502/503 from
    //   backends stopped too early, never a cut-off body), whenever it was sent;
    // - a request that got no response at all is acceptable only if it was started
    //   after SIGINT was sent (or just before, see CLOSE_RACE): the balancer no
    //   longer accepts connections then, and a keep-alive connection may be
    //   closed between two requests.
    let attempts: Vec<Attempt> = burst.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut complete_before = 0;
    let mut complete_across = 0;
    let mut refused_after = 0;
    let mut failures = Vec::new();
    for a in &attempts {
        let at = |t: Instant| {
            if t >= signalled {
                format!("+{:?}", t - signalled)
            } else {
                format!("-{:?}", signalled - t)
            }
        };
        match &a.outcome {
            Outcome::Complete(200) if a.ended < signalled => complete_before += 1,
            Outcome::Complete(200) => complete_across += 1,
            // A request sent on an idle keep-alive connection in the moment the
            // server closes it for shutdown reaches a closed connection (the
            // client then retries on a new one, which is refused): the race
            // every HTTP/1.1 server has. Seen once 0.35 ms before the signal
            // left the test; a few milliseconds cover it.
            Outcome::NoResponse(_) if a.started + CLOSE_RACE >= signalled => refused_after += 1,
            other => {
                let what = match other {
                    Outcome::Complete(status) => format!("status {status}"),
                    Outcome::Broken(e) => format!("broken response: {e}"),
                    Outcome::NoResponse(e) => format!("no response: {e}"),
                };
                failures.push(format!("started {} ended {}: {what}", at(a.started), at(a.ended)));
            }
        }
    }
    eprintln!(
        "burst: {complete_before} complete before SIGINT, {complete_across} completed after it was sent, \
         {refused_after} refused after shutdown began, {} failed; exit {exited:?} after SIGINT",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "requests failed around SIGINT: {failures:#?}"
    );
    assert!(
        complete_before >= THREADS,
        "the burst hardly ran: {complete_before} requests"
    );
}

/// [`common::assert_one_error_line`], and nothing on stdout.
#[track_caller]
fn assert_one_error_line_and_no_stdout(out: &Output, must_contain: &[&str]) {
    common::assert_one_error_line(out, must_contain);
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_taken_port_is_one_clear_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let port = taken.local_addr().unwrap().port().to_string();
    let root = static_root();
    let root = root.to_str().unwrap();
    // The balancer's port, the admin port, a backend port.
    for (listen, admin, backends) in [
        (addr.as_str(), "127.0.0.1:0", "0,0,0,0"),
        ("127.0.0.1:0", addr.as_str(), "0,0,0,0"),
        ("127.0.0.1:0", "127.0.0.1:0", &*format!("0,{port},0")),
    ] {
        let out = run(
            RR_CLUSTER,
            &[
                "--root",
                root,
                "--listen",
                listen,
                "--admin",
                admin,
                "--backend-ports",
                backends,
            ],
        );
        assert_one_error_line_and_no_stdout(&out, &[&addr, "already in use"]);
    }
}

/// The issue's attack on the demo: a page on another site POSTs `text/plain` to
/// the admin (no CORS preflight) to drain the backends; a DNS-rebound page reads
/// `/stats` under its own name. Both are refused, the four keep taking turns,
/// and the status page's own same-origin POST still drains.
#[test]
fn cross_site_post_cannot_drain_the_clusters_backends() {
    let root = static_root();
    let cluster = start_cluster(&root);
    let page = std::fs::read(root.join("page.html")).unwrap();
    let agent = agent();
    let admin = cluster.admin;
    for b in &cluster.backends {
        let drain = format!("http://{admin}/backends/{b}/drain");
        let (status, body) = curl_status(&[
            "-H",
            "Origin: http://evil.example",
            "-H",
            "Sec-Fetch-Site: cross-site",
            "-H",
            "Content-Type: text/plain;charset=UTF-8",
            "--data",
            "x",
            &drain,
        ]);
        assert_eq!(status, 403, "{body}");
        let (status, body) = curl_status(&["-X", "POST", "-H", "Origin: http://evil.example", &drain]);
        assert_eq!(status, 403, "{body}");
        let (status, body) = curl_status(&[
            "-X",
            "POST",
            "-H",
            &format!("Host: evil.example:{}", admin.port()),
            &drain,
        ]);
        assert_eq!(status, 421, "{body}");
    }
    let (status, body) = curl_status(&["-H", "Host: evil.example", &format!("http://{admin}/stats")]);
    assert_eq!(status, 421, "{body}");
    assert!(!body.contains("backends"), "{body}");

    let now = stats(&agent, admin);
    assert!(now.values().all(|b| b.state == "healthy"), "{now:?}");
    let counts = turns(&cluster, &agent, 8, &page);
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(counts.values().all(|&n| n == 2), "{counts:?}");

    // The status page's own request: same origin, no body.
    let drained = cluster.backends[0];
    let (status, body) = curl_status(&[
        "-X",
        "POST",
        "-H",
        &format!("Origin: http://{admin}"),
        "-H",
        "Sec-Fetch-Site: same-origin",
        &format!("http://{admin}/backends/{drained}/drain"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(stats(&agent, admin)[&drained].state, "draining");
}

#[test]
fn non_loopback_admin_without_token_refuses_to_start() {
    let out = run(
        RR_CLUSTER,
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend-ports",
            "0",
            "--admin",
            "0.0.0.0:0",
        ],
    );
    assert_one_error_line_and_no_stdout(&out, &["--admin 0.0.0.0:0", "--admin-token FILE"]);
}

#[test]
fn a_bad_port_range_is_one_line_and_exit_2() {
    let out = run(RR_CLUSTER, &["--backend-ports", "9002-9001"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line_and_no_stdout(&out, &["9002-9001", "--backend-ports"]);
}

#[test]
fn help_and_version() {
    assert_help_and_version(
        RR_CLUSTER,
        "rr-cluster",
        &[
            "--root",
            "--listen",
            "--backend-ports",
            "--strategy",
            "--admin",
            "--admin-token",
            "--admin-host",
            "--threads",
            "--help",
            "--version",
        ],
    );
}

#[test]
fn stats_parser_reads_the_admin_document() {
    let doc = r#"{"strategy":"round-robin","mode":"http","requests":3,"no_backend":0,"retries":0,"bad_gateway":0,"gateway_timeout":0,"backends":[{"addr":"127.0.0.1:9002","weight":1,"state":"healthy","healthy":true,"draining":false,"requests":2,"failures":0,"active":0,"idle":1,"bytes_sent":1,"bytes_received":2,"connects":1,"reused":1},{"addr":"127.0.0.1:9003","weight":1,"state":"draining","healthy":true,"draining":true,"requests":1,"failures":0,"active":0,"idle":0,"bytes_sent":0,"bytes_received":0,"connects":0,"reused":0}]}"#;
    let s = parse_stats(doc);
    assert_eq!(s.len(), 2);
    let a: SocketAddr = "127.0.0.1:9002".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:9003".parse().unwrap();
    assert_eq!((s[&a].requests, s[&a].state.as_str()), (2, "healthy"));
    assert_eq!((s[&b].requests, s[&b].state.as_str()), (1, "draining"));
}
