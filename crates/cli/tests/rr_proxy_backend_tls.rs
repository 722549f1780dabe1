//! `rr-proxy --backend https://HOST:PORT` (and `dns:https://NAME:PORT`, its
//! name answered by `dnsmasq`) in front of `static-server --tls-cert
//! --tls-key`, from the flags and from a configuration file's pool, with
//! certificates from a test CA made here; the flag and file errors. Requests
//! go through ureq.

mod common;

use common::{assert_one_error_line, run, static_root, Server, RR_PROXY};
use test_support::{agent, TempDir, TestCa};

/// A `static-server` over TLS with a certificate for `names`, naming itself `id`.
fn tls_backend(dir: &TempDir, ca: &TestCa, id: &str, names: &[&str]) -> Server {
    let files = ca.issue(dir.path(), id, names, 1);
    let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());
    common::start_static_backend_with(id, &["--tls-cert", cert, "--tls-key", key])
}

/// GET `path` through `proxy`: status, `X-Served-By`, body.
fn get(proxy: &Server, path: &str) -> (u16, String, String) {
    let r = test_support::get(&agent(), &proxy.url(path));
    (
        r.status,
        r.header("X-Served-By").unwrap_or_default().to_owned(),
        r.text(),
    )
}

#[test]
fn https_backend_with_a_ca_file_from_the_flags() {
    let dir = TempDir::new("cli-backend-tls");
    let ca = TestCa::new(dir.path());
    let good = tls_backend(&dir, &ca, "tls-good", &["localhost"]);
    let backend = format!("https://localhost:{}", good.addr.port());
    let ca_file = ca.ca_pem.to_str().unwrap();
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend,
            "--backend-ca",
            ca_file,
        ],
    );
    // The summary names the https backend, its address and the trust source.
    proxy.process.wait_for_line(&[
        &format!("1 backend ({backend} ({}))", good.addr),
        &format!("https backends verified against CA file {ca_file}"),
    ]);
    let page = std::fs::read_to_string(static_root().join("page.html")).unwrap();
    for _ in 0..2 {
        let (status, by, body) = get(&proxy, "/page.html");
        assert_eq!((status, by.as_str()), (200, "tls-good"));
        assert!(body == page, "the file, whole");
    }
    drop(proxy);

    // Without --backend-ca the system's roots do not know the test CA: 502,
    // and the warning names the backend and rustls' reason.
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &["--listen", "127.0.0.1:0", "--backend", &backend],
    );
    proxy
        .process
        .wait_for_line(&["https backends verified against system roots ("]);
    let (status, _, body) = get(&proxy, "/page.html");
    assert_eq!(
        (status, body.as_str()),
        (502, "TLS handshake with the backend failed\n")
    );
    let line = proxy
        .process
        .wait_for_line(&["TLS handshake with backend failed", &good.addr.to_string()]);
    assert!(
        line.contains("UnknownIssuer") || line.contains("unknown issuer"),
        "{line}"
    );
    proxy
        .process
        .wait_for_line(&["\"GET /page.html HTTP/1.1\" 502 ", "tls_error=unknown-issuer"]);
}

#[test]
fn https_backends_from_a_configuration_file_pool() {
    let dir = TempDir::new("cli-backend-tls-file");
    let ca = TestCa::new(dir.path());
    let a = tls_backend(&dir, &ca, "tls-a", &["localhost"]);
    let b = tls_backend(&dir, &ca, "tls-b", &["127.0.0.1"]);
    // backend_ca is taken from the file's directory.
    let path = dir.path().join("rr-proxy.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n[[pool]]\nname = \"web\"\n\
             backends = [\"https://localhost:{}\", \"https://{}\"]\nbackend_ca = \"ca.pem\"\n\
             [pool.health]\npath = \"/page.html\"\ninterval = \"200ms\"\nrise = 1\n",
            a.addr.port(),
            b.addr
        ),
    )
    .unwrap();
    let check = run(RR_PROXY, &["check", "--config", path.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(said.contains("https backends verified against CA file"), "{said}");
    let proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &["--config", path.to_str().unwrap(), "--listen", "127.0.0.1:0"],
    );
    let mut by: Vec<String> = (0..4)
        .map(|_| get(&proxy, "/page.html"))
        .map(|(s, b, _)| {
            assert_eq!(s, 200);
            b
        })
        .collect();
    by.sort();
    assert_eq!(by, ["tls-a", "tls-a", "tls-b", "tls-b"]);
}

#[test]
fn bad_https_backends_and_ca_files_are_one_line() {
    let dir = TempDir::new("cli-backend-tls-bad");
    let ca = TestCa::new(dir.path());
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let (empty, missing, ca_file) = (
        empty.to_str().unwrap(),
        missing.to_str().unwrap(),
        ca.ca_pem.to_str().unwrap(),
    );
    for (args, says) in [
        (
            &["--backend", "https://localhost"][..],
            "bad https backend \"https://localhost\"",
        ),
        (&["--backend", "https://localhost:0"], "bad https backend"),
        (&["--backend", "https://local host:443"], "bad https backend"),
        (&["--backend", "https://localhost:443/path"], "bad https backend"),
        (&["--backend", "https://[::1:443"], "bad https backend"),
        (&["--backend", "https://localhost:443=0"], "bad backend weight"),
        (
            &["--backend", "https://localhost:443", "--backend-ca", missing],
            "--backend-ca: cannot read CA file",
        ),
        (
            &["--backend", "https://localhost:443", "--backend-ca", empty],
            "no PEM certificate in the file",
        ),
        (
            &["--backend", "127.0.0.1:9", "--backend-ca", ca_file],
            "--backend-ca needs a backend over TLS (https://HOST:PORT, dns:https://NAME:PORT or srv:https://NAME) or --admin (for https backends added there)",
        ),
    ] {
        let out = run(RR_PROXY, &[&["--listen", "127.0.0.1:0"][..], args].concat());
        assert_one_error_line(&out, &[says]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // TCP mode originates no TLS: refused (a setting that does not hold, exit 1).
    let out = run(
        RR_PROXY,
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "https://127.0.0.1:9",
            "--mode",
            "tcp",
        ],
    );
    assert_one_error_line(&out, &["https backends need HTTP mode"]);
    // The file: each mistake at its line and key.
    for (pool, says) in [
        (
            "backends = [\"https://localhost\"]\n",
            "rr-proxy.toml:4:13: pool[0].backends: bad https backend",
        ),
        (
            "backends = [\"127.0.0.1:9\"]\nbackend_ca = \"ca.pem\"\n",
            "rr-proxy.toml:5:14: pool[0].backend_ca: backend_ca needs a backend over TLS in the pool (https://, dns:https:// or srv:https://) or an admin endpoint (for https backends added there)",
        ),
    ] {
        let path = dir.path().join("rr-proxy.toml");
        std::fs::write(
            &path,
            format!("listen = \"127.0.0.1:0\"\n[[pool]]\nname = \"web\"\n{pool}"),
        )
        .unwrap();
        let out = run(RR_PROXY, &["check", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{says:?} not in {stderr}");
    }
    let path = dir.path().join("rr-proxy.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[[pool]]\nname = \"web\"\nbackends = [\"https://127.0.0.1:9\"]\nbackend_ca = \"empty.pem\"\n",
    )
    .unwrap();
    let out = run(RR_PROXY, &["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pool web: backend_ca: ") && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}

/// Health checks over TLS: a backend whose certificate is for another name
/// goes down, and the log says why (rustls' words, then the change); the
/// other one serves every request.
#[test]
fn a_health_check_refusing_a_certificate_says_why_in_the_log() {
    let dir = TempDir::new("cli-backend-tls-health");
    let ca = TestCa::new(dir.path());
    let good = tls_backend(&dir, &ca, "tls-good", &["localhost"]);
    let wrong = tls_backend(&dir, &ca, "tls-wrong", &["other.example"]);
    let (good_backend, wrong_backend) = (
        format!("https://localhost:{}", good.addr.port()),
        format!("https://localhost:{}", wrong.addr.port()),
    );
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &good_backend,
            "--backend",
            &wrong_backend,
            "--backend-ca",
            ca.ca_pem.to_str().unwrap(),
            "--health-path",
            "/page.html",
            "--health-interval",
            "200ms",
            "--health-fall",
            "1",
        ],
    );
    let warning = proxy.process.wait_for_line(&[
        "TLS handshake with backend failed: certificate not valid for the backend's name",
        &wrong.addr.to_string(),
    ]);
    assert!(warning.contains("server_name=localhost"), "{warning}");
    assert!(
        warning.contains("other.example"),
        "rustls names what the certificate is for: {warning}"
    );
    proxy.process.wait_for_line(&[
        &format!(
            "backend {} down: health check GET /page.html failed 1 times in a row",
            wrong.addr
        ),
        "the last: TLS: certificate not valid for the backend's name",
    ]);
    for _ in 0..4 {
        let (status, by, _) = get(&proxy, "/page.html");
        assert_eq!((status, by.as_str()), (200, "tls-good"));
    }
}

/// `dns:https://NAME:PORT` from the flags and from a configuration file (its
/// name answered by `dnsmasq` on a loopback port), `/stats` naming the source
/// with its scheme and each backend's TLS name, an https backend added
/// through the admin API, and TCP mode refusing the form.
#[test]
fn dns_https_backends_from_the_flags_and_the_file_and_one_added_through_the_admin_api() {
    let dir = TempDir::new("cli-dns-tls");
    let ca = TestCa::new(dir.path());
    let backend = tls_backend(&dir, &ca, "tls-dns", &["web.test"]);
    let Some(dns) = test_support::Dnsmasq::start("127.0.0.1 web.test\n", "") else {
        return;
    };
    let source = format!("dns:https://web.test:{}", backend.addr.port());
    let (ca_file, resolver) = (ca.ca_pem.to_str().unwrap(), dns.addr.to_string());
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &source,
            "--resolver",
            &resolver,
            "--backend-ca",
            ca_file,
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let admin = loop {
        let (who, addr) = proxy.process.next_listener(deadline);
        if who == "admin" {
            break addr;
        }
    };
    proxy.process.wait_for_line(&[
        &format!("1 backend ({source})"),
        &format!("https backends verified against CA file {ca_file}"),
    ]);
    let stats = || -> serde_json::Value {
        serde_json::from_str(&test_support::get(&agent(), &format!("http://{admin}/stats")).text()).unwrap()
    };
    test_support::wait_for(std::time::Duration::from_secs(10), "the name to resolve", || {
        stats()["discovery"][0]["backends"] == 1
    });
    let (status, by, _) = get(&proxy, "/page.html");
    assert_eq!((status, by.as_str()), (200, "tls-dns"));
    let s = stats();
    assert_eq!(s["discovery"][0]["name"], source.as_str(), "{s}");
    assert_eq!(s["backends"][0]["tls_name"], "web.test", "{s}");
    assert_eq!(s["backend_tls"]["failed"], 0, "{s}");

    // An https backend added through the admin API: verified with the same CA.
    let added = tls_backend(&dir, &ca, "tls-added", &["localhost"]);
    let r = test_support::call(
        &agent(),
        "POST",
        &format!(
            "http://{admin}/backends/https%3A%2F%2Flocalhost%3A{}",
            added.addr.port()
        ),
        Some(b""),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let mut by: Vec<String> = (0..4).map(|_| get(&proxy, "/page.html").1).collect();
    by.sort();
    assert_eq!(by, ["tls-added", "tls-added", "tls-dns", "tls-dns"]);
    let r = test_support::call(
        &agent(),
        "POST",
        &format!("http://{admin}/backends/https%3A%2F%2Fweb.invalid%3A443"),
        Some(b""),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("cannot resolve backend address"),
        "{}",
        r.text()
    );
    drop(proxy);

    // The same from a configuration file.
    let path = dir.path().join("rr-proxy.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nresolver = \"{resolver}\"\n[[pool]]\nname = \"web\"\n\
             backends = [\"{source}\"]\nbackend_ca = \"ca.pem\"\n"
        ),
    )
    .unwrap();
    let check = run(RR_PROXY, &["check", "--config", path.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(
        said.contains(&format!(
            "backends {source}; https backends verified against CA file"
        )),
        "{said}"
    );
    let proxy = Server::start(RR_PROXY, "rr-proxy", &["--config", path.to_str().unwrap()]);
    test_support::wait_for(std::time::Duration::from_secs(10), "a 200 over TLS", || {
        get(&proxy, "/page.html").0 == 200
    });
    assert_eq!(get(&proxy, "/page.html").1, "tls-dns");
    drop(proxy);

    // TCP mode originates no TLS: refused, from the flags and from the file.
    let out = run(
        RR_PROXY,
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "srv:https://_https._tcp.web.test",
            "--mode",
            "tcp",
        ],
    );
    assert_one_error_line(&out, &["https backends need HTTP mode"]);
    std::fs::write(
        &path,
        format!("mode = \"tcp\"\n[[pool]]\nname = \"web\"\nbackends = [\"{source}\"]\n"),
    )
    .unwrap();
    let out = run(RR_PROXY, &["check", "--config", path.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("rr-proxy.toml:4:13: pool[0].backends: https backends need mode http"),
        "{said}"
    );
}

/// `--backend-ca` with `--admin` and no backend over TLS yet: the CA verifies
/// the https backends the admin API adds.
#[test]
fn backend_ca_with_an_admin_and_no_tls_backend_yet_verifies_added_ones() {
    let dir = TempDir::new("cli-admin-tls");
    let ca = TestCa::new(dir.path());
    let plain = common::start_static_backend("plain");
    let plain_addr = plain.addr.to_string();
    let ca_file = ca.ca_pem.to_str().unwrap();
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &plain_addr,
            "--backend-ca",
            ca_file,
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let admin = loop {
        let (who, addr) = proxy.process.next_listener(deadline);
        if who == "admin" {
            break addr;
        }
    };
    proxy.process.wait_for_line(&[&format!(
        "https backends added through the admin verified against CA file {ca_file}"
    )]);
    let tls = tls_backend(&dir, &ca, "tls-added", &["localhost"]);
    let post = |path: String| {
        test_support::call(&agent(), "POST", &format!("http://{admin}{path}"), Some(b"")).unwrap()
    };
    let r = post(format!(
        "/backends/https://localhost:{}?weight=1",
        tls.addr.port()
    ));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(post(format!("/backends/{plain_addr}/drain")).status, 200);
    let (status, by, _) = get(&proxy, "/page.html");
    assert_eq!((status, by.as_str()), (200, "tls-added"));
}
