//! TLS on the real binaries, seen by clients written elsewhere: curl
//! (`--http1.1 --cacert`), `openssl s_client` (protocol versions, SNI, ALPN),
//! testssl.sh (no protocol below TLS 1.2, no weak cipher, forward secrecy),
//! and rustls' client for a connection held across a reload. Certificates
//! come from a test CA made here. Also `--redirect-http`, `--hsts`,
//! `X-Forwarded-Proto: https` through rr-proxy, SIGHUP reloads under load,
//! and the flag errors.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_one_error_line, run, static_root, Server, RR_PROXY, STATIC_SERVER};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use test_support::{curl, replace_file, run_within, TempDir, TestCa, TIMEOUT};

struct Pki {
    dir: TempDir,
    ca: TestCa,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("cli-tls");
        let ca = TestCa::new(dir.path());
        Pki { dir, ca }
    }

    fn ca(&self) -> String {
        self.ca.ca_pem.display().to_string()
    }

    /// A certificate for `names` as `--tls-cert FILE --tls-key FILE`.
    fn pair(&self, stem: &str, names: &[&str], serial: u64) -> Vec<String> {
        let f = self.ca.issue(self.dir.path(), stem, names, serial);
        vec![
            "--tls-cert".into(),
            f.cert.display().to_string(),
            "--tls-key".into(),
            f.key.display().to_string(),
        ]
    }
}

fn static_tls(extra: &[String]) -> Server {
    let root = static_root();
    let mut args = vec![
        "--root".to_owned(),
        root.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(extra.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(STATIC_SERVER, "static-server", &args)
}

fn https(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

/// `openssl s_client` against `addr` with `args`, stdin closed: its output.
fn s_client(addr: SocketAddr, args: &[&str]) -> String {
    let out = run_within(
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(args),
        TIMEOUT,
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The server certificate's PEM as s_client printed it.
fn served_pem(s_client_out: &str) -> String {
    let start = s_client_out
        .find("-----BEGIN CERTIFICATE-----")
        .expect(s_client_out);
    let end = s_client_out[start..].find("-----END CERTIFICATE-----").unwrap() + start;
    s_client_out[start..end].to_owned()
}

fn pem_of(path: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap();
    text[..end].to_owned()
}

fn curl_ok(args: &[&str]) -> Output {
    let out = curl(args).expect("curl is installed (CI installs it)");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    out
}

#[test]
fn static_server_over_https_with_keep_alive_hsts_and_a_redirect_listener() {
    let pki = Pki::new();
    let mut extra = pki.pair("site", &["localhost", "127.0.0.1"], 1);
    extra.extend([
        "--hsts".into(),
        "3600".into(),
        "--redirect-http".into(),
        "127.0.0.1:0".into(),
    ]);
    let mut server = static_tls(&extra);
    let redirect: SocketAddr = {
        let line = server
            .process
            .wait_for_line(&["redirect to https listening on http://"]);
        line.rsplit("http://").next().unwrap().trim().parse().unwrap()
    };
    server
        .process
        .wait_for_line(&["tls 1 certificate (localhost;", "HSTS max-age=3600"]);
    // Two URLs in one curl: the second reuses the connection.
    let ca = pki.ca();
    let out = curl_ok(&[
        "--http1.1",
        "--cacert",
        &ca,
        "-D",
        "-",
        "-w",
        "connects=%{num_connects} scheme=%{scheme}\n",
        "-o",
        "/dev/null",
        &https(server.addr, "/page.html"),
        "-o",
        "/dev/null",
        &https(server.addr, "/style.css"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(
        text.matches("Strict-Transport-Security: max-age=3600").count(),
        2,
        "{text}"
    );
    assert!(text.contains("connects=1 scheme=HTTPS"), "{text}");
    assert!(text.contains("connects=0 scheme=HTTPS"), "keep-alive: {text}");

    // The redirect listener: 308 to the HTTPS port, the query kept; no HSTS.
    for (host, want) in [
        (
            "localhost",
            format!("https://localhost:{}/page.html?x=1&y", server.addr.port()),
        ),
        (
            "localhost:8080",
            format!("https://localhost:{}/page.html?x=1&y", server.addr.port()),
        ),
        (
            "127.0.0.1:1",
            format!("https://127.0.0.1:{}/page.html?x=1&y", server.addr.port()),
        ),
    ] {
        let out = curl_ok(&[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            &format!("Host: {host}"),
            &format!("http://{redirect}/page.html?x=1&y"),
        ]);
        let head = String::from_utf8_lossy(&out.stdout);
        assert!(head.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nLocation: {want}\r\n")),
            "{host}: {head}"
        );
        assert!(!head.contains("Strict-Transport-Security"), "{head}");
    }
    // curl follows it to the page over HTTPS.
    let out = curl_ok(&[
        "-L",
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{url_effective}",
        &format!("http://localhost:{}/page.html", redirect.port()),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("200 https://localhost:{}/page.html", server.addr.port())
    );
    // A Host that is not a host name: 400, with a body and the length.
    let reply = test_support::exchange(
        redirect,
        b"GET / HTTP/1.1\r\nHost: bad_host!\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert!(reply.contains("Content-Length: "), "{reply}");
    // HTTP/1.0 without Host: nothing to redirect to.
    let reply = test_support::exchange(redirect, b"GET / HTTP/1.0\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    // Plain HTTP on the HTTPS port: closed, no HTTP answer; the server is fine.
    let reply = test_support::exchange(server.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(!reply.contains("HTTP/1.1"), "{reply:?}");
    curl_ok(&["--cacert", &ca, "-o", "/dev/null", &https(server.addr, "/")]);
}

#[test]
fn openssl_sees_tls12_and_13_only_sni_choice_and_alpn() {
    let pki = Pki::new();
    let mut extra = pki.pair("a", &["a.test", "localhost"], 11);
    extra.extend(pki.pair("b", &["b.test"], 12));
    let server = static_tls(&extra);
    let addr = server.addr;
    // TLS 1.1 offered for real (OpenSSL's own floor lowered): refused.
    let out = s_client(
        addr,
        &[
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
            "-servername",
            "a.test",
        ],
    );
    assert!(out.contains("Cipher is (NONE)") && out.contains("alert"), "{out}");
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let out = s_client(addr, &[flag, "-servername", "a.test", "-CAfile", &pki.ca()]);
        assert!(
            out.contains(&format!("New, {version}, Cipher is ")),
            "{flag}: {out}"
        );
        assert!(out.contains("Verify return code: 0 (ok)"), "{flag}: {out}");
    }
    let a = pem_of(&pki.dir.join("a.crt").display().to_string());
    let b = pem_of(&pki.dir.join("b.crt").display().to_string());
    assert_eq!(served_pem(&s_client(addr, &["-servername", "a.test"])), a);
    assert_eq!(served_pem(&s_client(addr, &["-servername", "b.test"])), b);
    assert_eq!(
        served_pem(&s_client(addr, &["-servername", "unknown.test"])),
        a,
        "the first pair is the default"
    );
    assert_eq!(served_pem(&s_client(addr, &["-noservername"])), a);
    let out = s_client(addr, &["-alpn", "http/1.1", "-servername", "a.test"]);
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    // h2 first, as browsers offer it: h2 is chosen.
    let out = s_client(addr, &["-alpn", "h2,http/1.1", "-servername", "a.test"]);
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    // Nothing in common: the handshake fails with rustls'
    // no_application_protocol alert.
    let out = s_client(addr, &["-alpn", "spdy/3.1", "-servername", "a.test"]);
    assert!(out.contains("no application protocol"), "{out}");
    assert!(out.contains("No ALPN negotiated"), "{out}");
}

/// A backend that answers each request with the head it received.
fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    head.len()
                );
                let _ = conn.write_all(reply.as_bytes());
                let _ = conn.write_all(&head);
            });
        }
    });
    addr
}

#[test]
fn rr_proxy_terminates_tls_and_says_https_to_the_backend() {
    let pki = Pki::new();
    let backend = echo_backend();
    let mut args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".into(),
        "--backend".into(),
        backend.to_string(),
        "--admin".into(),
        "127.0.0.1:0".into(),
        "--admin-tls".into(),
    ];
    args.extend(pki.pair("proxy", &["localhost"], 21));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut proxy = Server::start(RR_PROXY, "rr-proxy", &args);
    let line = proxy.process.wait_for_line(&["admin listening on https://"]);
    let admin: SocketAddr = line.rsplit("https://").next().unwrap().trim().parse().unwrap();
    let ca = pki.ca();
    let out = curl_ok(&[
        "--http1.1",
        "--cacert",
        &ca,
        "-H",
        "X-Forwarded-Proto: ftp",
        &https(proxy.addr, "/x"),
    ]);
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(got.contains("\r\nX-Forwarded-Proto: https\r\n"), "{got}");
    assert_eq!(got.matches("X-Forwarded-Proto").count(), 1, "{got}");
    // The admin over HTTPS, with the handshake counts in its metrics.
    let out = curl_ok(&[
        "--cacert",
        &ca,
        &format!("https://localhost:{}/metrics", admin.port()),
    ]);
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(metrics.contains("rr_proxy_tls_handshakes_total "), "{metrics}");
    let handshakes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rr_proxy_tls_handshakes_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(handshakes >= 1, "{metrics}");
    assert!(
        metrics.contains("rr_proxy_tls_handshake_failures_total{reason=\"timeout\"} 0"),
        "{metrics}"
    );
}

fn client_config(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca.ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A kept-alive HTTPS connection (rustls' blocking stream).
struct Kept(rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>);

impl Kept {
    fn open(addr: SocketAddr, ca: &TestCa) -> Kept {
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        let conn =
            rustls::ClientConnection::new(client_config(ca), ServerName::try_from("localhost").unwrap())
                .unwrap();
        Kept(rustls::StreamOwned::new(conn, tcp))
    }

    fn get(&mut self, path: &str) -> String {
        write!(self.0, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.0.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let len = test_support::content_length(&head).unwrap_or(0);
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body).unwrap();
        head
    }
}

#[test]
fn certificates_reload_on_sighup_under_load_without_a_failed_request() {
    let pki = Pki::new();
    let extra = pki.pair("site", &["localhost"], 31);
    let cert = pki.dir.join("site.crt");
    let key = pki.dir.join("site.key");
    let mut server = static_tls(&extra);
    let addr = server.addr;
    let ca = pki.ca();
    let old = pem_of(&cert.display().to_string());
    let mut kept = Kept::open(addr, &pki.ca);
    assert!(kept.get("/page.html").starts_with("HTTP/1.1 200 "));

    // Load: three clients, each running curl 12 times with four URLs per run
    // (a fresh connection, then three kept-alive requests on it).
    let urls: Vec<String> = ["/page.html", "/style.css", "/app.js", "/logo.svg"]
        .iter()
        .map(|p| https(addr, p))
        .collect();
    let load: Vec<_> = (0..3)
        .map(|_| {
            let (ca, urls) = (ca.clone(), urls.clone());
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                for _ in 0..12 {
                    let mut args = vec!["--http1.1", "--cacert", &ca, "-w", "%{http_code}\n"];
                    for url in &urls {
                        args.extend(["-o", "/dev/null", url.as_str()]);
                    }
                    let out = curl(&args).expect("curl");
                    assert!(out.status.success(), "curl during the reload: {out:?}");
                    codes.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned));
                }
                codes
            })
        })
        .collect();
    // Meanwhile: new files written and renamed into place, then SIGHUP.
    std::thread::sleep(Duration::from_millis(200));
    let (cert2, key2) = pki.ca.issue_pem(&["localhost"], 32);
    replace_file(&key, &key2);
    replace_file(&cert, &cert2);
    server.process.signal("HUP");
    server.process.wait_for_line(&["TLS certificates reloaded"]);
    let mut total = 0;
    for t in load {
        let codes = t.join().unwrap();
        assert!(codes.iter().all(|c| c == "200"), "{codes:?}");
        total += codes.len();
    }
    assert_eq!(total, 3 * 12 * 4, "every request answered");
    // New connections see the new certificate, the old connection works on.
    let new = pem_of(&cert.display().to_string());
    assert_ne!(new, old);
    assert_eq!(served_pem(&s_client(addr, &["-servername", "localhost"])), new);
    assert!(kept.get("/style.css").starts_with("HTTP/1.1 200 "));

    // A bad new key (another certificate's): the certificate in use stays, and
    // a warning says why.
    let (_, stray) = pki.ca.issue_pem(&["localhost"], 33);
    let (cert3, _) = pki.ca.issue_pem(&["localhost"], 34);
    replace_file(&cert, &cert3);
    replace_file(&key, &stray);
    server.process.signal("HUP");
    let warning = server
        .process
        .wait_for_line(&["WARN", "TLS certificates not reloaded"]);
    assert!(warning.contains("does not match the certificate"), "{warning}");
    assert_eq!(served_pem(&s_client(addr, &["-servername", "localhost"])), new);
    curl_ok(&["--cacert", &ca, "-o", "/dev/null", &https(addr, "/")]);
}

#[test]
fn changed_files_are_picked_up_without_a_signal() {
    let pki = Pki::new();
    let extra = pki.pair("site", &["localhost"], 41);
    let mut server = static_tls(&extra);
    let cert = pki.dir.join("site.crt");
    let (cert2, key2) = pki.ca.issue_pem(&["localhost"], 42);
    replace_file(&pki.dir.join("site.key"), &key2);
    replace_file(&cert, &cert2);
    // Looked at every 2 s, loaded once unchanged for one more look.
    server.process.wait_for_line(&["TLS certificates reloaded"]);
    assert_eq!(
        served_pem(&s_client(server.addr, &["-servername", "localhost"])),
        pem_of(&cert.display().to_string())
    );
}

#[test]
fn testssl_finds_no_old_protocol_no_weak_cipher_and_forward_secrecy() {
    let Some(testssl) = ["testssl", "testssl.sh"]
        .iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: .ci/run installs testssl.sh"
        );
        eprintln!("SKIPPED: testssl.sh is not installed (apt-get install testssl.sh)");
        return;
    };
    let pki = Pki::new();
    let extra = pki.pair("site", &["localhost"], 51);
    let server = static_tls(&extra);
    let dir = TempDir::new("testssl");
    let json = dir.join("out.json");
    let started = Instant::now();
    let out = run_within(
        Command::new(testssl)
            .args([
                "--protocols",
                "--std",
                "--fs",
                "--warnings",
                "off",
                "--quiet",
                "--color",
                "0",
                "--fast",
            ])
            .arg("--jsonfile")
            .arg(&json)
            .arg(format!("127.0.0.1:{}", server.addr.port())),
        Duration::from_secs(180),
    );
    eprintln!("testssl.sh took {:?}", started.elapsed());
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let findings: serde_json::Value = serde_json::from_str(&text).unwrap();
    let find = |id: &str| -> String {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["finding"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no {id} in {text}"))
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(find(old).starts_with("not offered"), "{old}: {}", find(old));
    }
    for new in ["TLS1_2", "TLS1_3"] {
        assert!(find(new).starts_with("offered"), "{new}: {}", find(new));
    }
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
    ] {
        assert!(find(weak).starts_with("not offered"), "{weak}: {}", find(weak));
    }
    let average = find("cipherlist_AVERAGE");
    assert!(average.starts_with("not offered"), "CBC suites: {average}");
    // Forward secrecy (testssl.sh 3.0 calls it PFS): every suite is ECDHE.
    let fs = find("PFS");
    assert!(fs.starts_with("offered"), "forward secrecy: {fs}");
    let suites = find("PFS_ciphers");
    assert!(
        suites.contains("ECDHE") && suites.contains("TLS_AES_128_GCM_SHA256"),
        "{suites}"
    );
}

#[test]
fn flag_mistakes_are_one_line_and_bad_files_name_themselves() {
    let pki = Pki::new();
    let good = pki.pair("site", &["localhost"], 61);
    let other = pki.pair("other", &["localhost"], 62);
    let root = static_root().display().to_string();
    let base = ["--root", &root, "--listen", "127.0.0.1:0"];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        run(STATIC_SERVER, &a)
    };
    // A certificate without its key: a command-line error (exit 2).
    let out = with(&["--tls-cert", &good[1]]);
    assert_one_error_line(
        &out,
        &[
            "--tls-cert and --tls-key come in pairs",
            "1 certificate and 0 keys",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = with(&["--hsts", "60"]);
    assert_one_error_line(&out, &["--hsts needs --tls-cert"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        RR_PROXY,
        &["--backend", "127.0.0.1:9", "--redirect-http", "127.0.0.1:0"],
    );
    assert_one_error_line(&out, &["--redirect-http needs --tls-cert"]);
    assert_eq!(out.status.code(), Some(2));
    // Files that cannot be used: a start-up failure (exit 1) naming the file.
    let missing = pki.dir.join("missing.pem").display().to_string();
    let out = with(&["--tls-cert", &missing, "--tls-key", &good[3]]);
    assert_one_error_line(&out, &["cannot read", "missing.pem"]);
    assert_eq!(out.status.code(), Some(1));
    let out = with(&["--tls-cert", &good[1], "--tls-key", &other[3]]);
    assert_one_error_line(&out, &["other.key", "does not match the certificate", "site.crt"]);
    assert_eq!(out.status.code(), Some(1));
    let out = with(&["--tls-cert", &good[1], "--tls-key", &good[1]]);
    assert_one_error_line(&out, &["no PEM private key", "site.crt"]);
    assert_eq!(out.status.code(), Some(1));
}
