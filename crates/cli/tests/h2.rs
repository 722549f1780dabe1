//! HTTP/2 on the real binaries, seen by clients written elsewhere: curl
//! (`--http2-prior-knowledge`, `--http2` over TLS), nghttp2's `nghttp` and
//! `h2load`, and raw frame-level probes with Python's h2
//! (`crates/http-core/tests/h2_probe.py`). static-server serves files,
//! ranges and conditional requests over h2c and h2; rr-proxy turns requests
//! received over HTTP/2 into strict HTTP/1.1 for its backends and never
//! forwards one of the h2-to-h1 smuggling vectors.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{static_root, Cluster, Server, RR_PROXY, STATIC_SERVER};
use serde_json::Value;
use test_support::{curl, python_script, run_within, TempDir, TestCa};

fn static_server(extra: &[&str]) -> Server {
    let root = static_root().display().to_string();
    let mut args = vec!["--root", &root, "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(STATIC_SERVER, "static-server", &args)
}

/// curl with `args`, which must succeed: the response head (stderr, through
/// `-D`) and the body.
fn curl_ok(args: &[&str]) -> Option<(String, Vec<u8>)> {
    let mut all = vec!["-D", "/dev/stderr"];
    all.extend_from_slice(args);
    let out = curl(&all)?;
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    Some((String::from_utf8_lossy(&out.stderr).into_owned(), out.stdout))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn static_server_serves_files_ranges_and_revalidation_over_h2c() {
    let mut s = static_server(&["--h2c"]);
    s.process.wait_for_line(&["http/2 h2c (prior knowledge)"]);
    let page = std::fs::read(static_root().join("page.html")).unwrap();
    let url = s.url("/page.html");
    let h2 = "--http2-prior-knowledge";

    let Some((head, body)) = curl_ok(&[h2, &url]) else {
        return;
    };
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(body, page);
    let etag = header(&head, "etag").unwrap().to_owned();
    // The access line names the protocol as nginx does.
    s.process.wait_for_line(&["\"GET /page.html HTTP/2.0\" 200"]);

    let (head, body) = curl_ok(&[h2, "-I", &url]).unwrap();
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(page.len().to_string().as_str())
    );
    assert!(String::from_utf8_lossy(&body).starts_with("HTTP/2 200"));

    let (head, body) = curl_ok(&[h2, "-r", "10-19", &url]).unwrap();
    assert!(head.starts_with("HTTP/2 206"), "{head}");
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes 10-19/{}", page.len()).as_str())
    );
    assert_eq!(body, &page[10..20]);

    let inm = format!("If-None-Match: {etag}");
    let (head, body) = curl_ok(&[h2, "-H", &inm, &url]).unwrap();
    assert!(head.starts_with("HTTP/2 304"), "{head}");
    assert!(body.is_empty());

    let (head, _) = curl_ok(&[h2, &s.url("/no-such-file")]).unwrap();
    assert!(head.starts_with("HTTP/2 404"), "{head}");

    // HTTP/1.1 on the same listener, as before.
    let r = s.get("/page.html");
    assert_eq!((r.status, r.body.len()), (200, page.len()));
}

#[test]
fn static_server_without_h2c_does_not_speak_it() {
    let mut s = static_server(&[]);
    s.process.wait_for_line(&["http/2 off"]);
    if let Some(out) = curl(&["--http2-prior-knowledge", &s.url("/page.html")]) {
        assert!(!out.status.success(), "{out:?}");
    }
    let reply = test_support::exchange(s.addr, http_core_preface());
    assert!(reply.starts_with("HTTP/1.1 505 "), "{reply}");
}

fn http_core_preface() -> &'static [u8] {
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
}

#[test]
fn many_files_over_one_connection_with_nghttp_and_h2load() {
    let s = static_server(&["--h2c"]);
    let files = ["/page.html", "/app.js", "/style.css", "/logo.svg"];
    let urls: Vec<String> = files.iter().map(|f| s.url(f)).collect();
    let mut nghttp = Command::new("nghttp");
    nghttp.args(["-n", "-s"]).args(&urls);
    let out = run_within(&mut nghttp, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" 200 ").count(), 4, "{text}");

    let mut h2load = Command::new("h2load");
    h2load.args(["-n", "200", "-c", "2", "-m", "10"]).args(&urls);
    let out = run_within(&mut h2load, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
}

/// An HTTP/1.1 backend that records every request it receives (head and
/// body, as bytes) and answers 200 with `backend saw N bytes`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl Recorder {
    fn start(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = self.0.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || serve_recorded(conn, seen));
            }
        });
        addr
    }

    fn requests(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }
}

/// Reads requests (Content-Length or chunked bodies) off one connection.
fn serve_recorded(mut conn: std::net::TcpStream, seen: Arc<Mutex<Vec<Vec<u8>>>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Some(head_end) = test_support::find(&buf, b"\r\n\r\n").map(|i| i + 4) else {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let total = if let Some(n) = test_support::content_length(&head) {
            head_end + n
        } else if head.contains("transfer-encoding: chunked") {
            loop {
                if let Some(i) = test_support::find(&buf[head_end..], b"\r\n0\r\n\r\n") {
                    break head_end + i + 7;
                }
                if buf[head_end..].starts_with(b"0\r\n\r\n") {
                    break head_end + 5;
                }
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        } else {
            head_end
        };
        while buf.len() < total {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let request: Vec<u8> = buf.drain(..total).collect();
        let answer = format!("backend saw {} bytes\n", request.len());
        seen.lock().unwrap().push(request);
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if conn.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn proxy(backend: SocketAddr, extra: &[&str]) -> Server {
    let b = backend.to_string();
    let mut args = vec!["--listen", "127.0.0.1:0", "--backend", &b];
    args.extend_from_slice(extra);
    Server::start(RR_PROXY, "rr-proxy", &args)
}

#[test]
fn rr_proxy_over_h2c_sends_strict_http11_to_its_backend() {
    let rec = Recorder::default();
    let backend = rec.start();
    let p = proxy(backend, &["--h2c"]);
    let h2 = "--http2-prior-knowledge";
    let Some((head, body)) = curl_ok(&[h2, "-H", "Cookie: a=1", &p.url("/x?y=1")]) else {
        return;
    };
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(String::from_utf8_lossy(&body).starts_with("backend saw "));
    let got = rec.requests().pop().unwrap();
    assert!(got.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{got}");
    // :authority became the one Host line; Via names the protocol received.
    assert!(got.contains(&format!("\r\nhost: {}\r\n", p.addr)), "{got}");
    assert_eq!(got.to_lowercase().matches("\r\nhost:").count(), 1, "{got}");
    assert!(got.contains("\r\nVia: 2.0 rr-proxy\r\n"), "{got}");
    assert!(got.contains("\r\nX-Forwarded-Proto: http\r\n"), "{got}");
    assert!(got.contains("\r\ncookie: a=1\r\n"), "{got}");

    // A POST with content-length goes on with it.
    let (head, _) = curl_ok(&[h2, "--data-binary", "0123456789", &p.url("/post")]).unwrap();
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    let got = rec.requests().pop().unwrap();
    assert!(got.starts_with("POST /post HTTP/1.1\r\n"), "{got}");
    assert!(
        got.contains("\r\nContent-Length: 10\r\n") || got.contains("\r\ncontent-length: 10\r\n"),
        "{got}"
    );
    assert!(got.ends_with("\r\n\r\n0123456789"), "{got}");

    // A body of unknown length (DATA frames without content-length) goes on
    // chunked.
    let Some(v) = probe(p.addr, "post_without_length", "/nolength") else {
        return;
    };
    assert_eq!(verdict(&v), "status:200", "{v}");
    let got = rec.requests().pop().unwrap();
    assert!(got.starts_with("POST /nolength HTTP/1.1\r\n"), "{got}");
    assert!(got.contains("\r\nTransfer-Encoding: chunked\r\n"), "{got}");
    assert!(!got.to_lowercase().contains("content-length"), "{got}");
    assert!(got.contains("hello, ") && got.contains("world"), "{got}");
}

/// Runs the Python probe `scenario`: its JSON verdict, or `None` (reason
/// printed) without python3's h2 module.
fn probe(addr: SocketAddr, scenario: &str, path: &str) -> Option<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../http-core/tests/h2_probe.py");
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let args = [ip.as_str(), port.as_str(), scenario, path];
    let out = python_script(
        script,
        &["h2", "hpack", "hyperframe"],
        &args,
        Duration::from_secs(30),
    )?;
    Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{scenario}: {e}: {out:?}")))
}

fn verdict(v: &Value) -> String {
    match v["outcome"].as_str().unwrap_or("?") {
        "rst" | "goaway" => format!("{}:{}", v["outcome"].as_str().unwrap(), v["code"]),
        "status" => format!("status:{}", v["status"]),
        other => other.to_string(),
    }
}

/// The h2-to-h1 smuggling vectors through the proxy: each refused with its
/// exact outcome, and the backend never receives any of them.
#[test]
fn rr_proxy_never_forwards_an_h2_smuggling_vector() {
    let rec = Recorder::default();
    let backend = rec.start();
    let p = proxy(backend, &["--h2c"]);
    let rows = [
        ("cl_more", "rst:1"),
        ("cl_less", "rst:1"),
        ("cl_zero_with_data", "rst:1"),
        ("cr_in_value", "rst:1"),
        ("lf_in_value", "rst:1"),
        ("nul_in_value", "rst:1"),
        ("uppercase_name", "rst:1"),
        ("colon_in_name", "rst:1"),
        ("transfer_encoding", "rst:1"),
        ("connection", "rst:1"),
        ("te_gzip", "rst:1"),
        ("pseudo_after_regular", "rst:1"),
        ("duplicate_path", "rst:1"),
        ("missing_method", "rst:1"),
        ("host_mismatch", "rst:1"),
        ("space_around_value", "rst:1"),
        ("body_too_large", "status:413"),
    ];
    for (scenario, want) in rows {
        let Some(v) = probe(p.addr, scenario, &format!("/probe/{scenario}")) else {
            return;
        };
        assert_eq!(verdict(&v), want, "{scenario}: {v}");
    }
    // A well-formed request on the same proxy is forwarded: the backend was
    // there all along and saw none of the above.
    let v = probe(p.addr, "get", "/after").unwrap();
    assert_eq!(verdict(&v), "status:200", "{v}");
    let seen = rec.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("GET /after HTTP/1.1\r\n"), "{seen:?}");
}

#[test]
fn rr_cluster_front_speaks_h2c() {
    let root = static_root();
    let c = Cluster::start(&root, &["--h2c"]);
    let page = std::fs::read(root.join("page.html")).unwrap();
    let Some((head, body)) = curl_ok(&["--http2-prior-knowledge", &c.url("/page.html")]) else {
        return;
    };
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(body, page);
    assert!(header(&head, "x-served-by").is_some(), "{head}");
}

/// Over TLS, ALPN chooses h2: curl --http2, nghttp and a short h2load run.
#[test]
fn static_server_and_rr_proxy_speak_h2_over_tls() {
    let dir = TempDir::new("cli-h2-tls");
    let ca = TestCa::new(dir.path());
    let pair = ca.issue(dir.path(), "h2", &["localhost"], 31);
    let (cert, key) = (pair.cert.display().to_string(), pair.key.display().to_string());
    let ca_file = ca.ca_pem.display().to_string();
    let mut s = static_server(&["--tls-cert", &cert, "--tls-key", &key]);
    s.process.wait_for_line(&["http/2 h2 (ALPN)"]);
    let url = format!("https://localhost:{}/page.html", s.addr.port());
    let Some((head, body)) = curl_ok(&["--http2", "--cacert", &ca_file, &url]) else {
        return;
    };
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(body, std::fs::read(static_root().join("page.html")).unwrap());
    // HTTP/1.1 still, when that is all the client offers.
    let (head, _) = curl_ok(&["--http1.1", "--cacert", &ca_file, &url]).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // nghttp and h2load do not verify certificates: they check the protocol.
    let mut nghttp = Command::new("nghttp");
    nghttp.args([
        "-n",
        "-s",
        &url,
        &format!("https://localhost:{}/app.js", s.addr.port()),
    ]);
    let out = run_within(&mut nghttp, Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches(" 200 ").count(),
        2,
        "{out:?}"
    );
    let mut h2load = Command::new("h2load");
    h2load.args(["-n", "100", "-c", "2", "-m", "5", &url]);
    let out = run_within(&mut h2load, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Application protocol: h2"), "{text}");
    assert!(
        text.contains("requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed"),
        "{text}"
    );

    // The proxy: h2 from the client, HTTP/1.1 with X-Forwarded-Proto https
    // and Via 2.0 to the backend.
    let rec = Recorder::default();
    let backend = rec.start();
    let p = proxy(backend, &["--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("https://localhost:{}/via-tls", p.addr.port());
    let (head, _) = curl_ok(&["--http2", "--cacert", &ca_file, &url]).unwrap();
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    let got = rec.requests().pop().unwrap();
    assert!(got.starts_with("GET /via-tls HTTP/1.1\r\n"), "{got}");
    assert!(got.contains("\r\nX-Forwarded-Proto: https\r\n"), "{got}");
    assert!(got.contains("\r\nVia: 2.0 rr-proxy\r\n"), "{got}");
}

/// Regression (found when merging the configuration file with HTTP/2): with
/// `--config`, `--h2c` was ignored, the sites being served without it.
#[test]
fn static_server_with_a_configuration_file_honours_h2c() {
    let dir = TempDir::new("h2c-config");
    let file = dir.join("site.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\nroot = {:?}\n",
            static_root().display().to_string()
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let mut s = Server::start(STATIC_SERVER, "static-server", &["--config", &file, "--h2c"]);
    s.process.wait_for_line(&["http/2 h2c (prior knowledge)"]);
    let Some((head, body)) = curl_ok(&["--http2-prior-knowledge", &s.url("/page.html")]) else {
        return;
    };
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(body, std::fs::read(static_root().join("page.html")).unwrap());
}
