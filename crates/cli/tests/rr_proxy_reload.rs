//! `rr-proxy --config FILE` with several pools and routes, and reloading the
//! file (SIGHUP, the admin's `POST /reload`) while clients keep sending: no
//! request fails or is sent twice, kept backends keep their counters, a bad
//! file or a change that needs a restart leaves the running configuration in
//! place and says why (log, admin answer, metrics).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, RR_PROXY};
use test_support::{agent, call, exchange, get, status_of, wait_for, TempDir, TIMEOUT};

use common::start_static_backend as start_backend;

/// `GET path` with `Host: host` on a fresh connection: (status, `X-Served-By`).
fn get_host(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let r = exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let served_by = r
        .lines()
        .find_map(|l| l.strip_prefix("X-Served-By: "))
        .unwrap_or("")
        .trim()
        .to_owned();
    (status_of(&r), served_by)
}

/// The proxy and its admin listener, started on `file`.
fn start_proxy(file: &str) -> (Server, SocketAddr) {
    let mut proxy = Server::start(RR_PROXY, "rr-proxy", &["--config", file]);
    let (who, admin) = proxy.process.next_listener(Instant::now() + TIMEOUT);
    assert_eq!(who, "admin");
    (proxy, admin)
}

#[test]
fn requests_go_to_the_pool_of_the_first_route_that_matches() {
    let (a, b, c) = (start_backend("a"), start_backend("b"), start_backend("c"));
    let dir = TempDir::new("rr-routes");
    let file = dir.file(
        "routes.toml",
        format!(
            "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [[pool]]\nname = \"web\"\nbackends = [\"{}\", \"{}\"]\n\
             [[pool]]\nname = \"api\"\nbackends = [\"{}\"]\n\
             [[route]]\nhost = \"api.test\"\npool = \"api\"\n\
             [[route]]\nhost = \"*.apps.test\"\npath = \"/page.html\"\npool = \"api\"\n\
             [[route]]\nhost = \"www.test\"\npool = \"web\"\n",
            a.addr, b.addr, c.addr
        ),
    );
    let (proxy, admin) = start_proxy(file.to_str().unwrap());
    // Host routes, exact and by suffix (any case, with a port, a trailing dot).
    for host in ["api.test", "API.Test:8080", "api.test."] {
        assert_eq!(
            get_host(proxy.addr, host, "/page.html"),
            (200, "c".into()),
            "{host}"
        );
    }
    assert_eq!(
        get_host(proxy.addr, "x.apps.test", "/page.html"),
        (200, "c".into())
    );
    // The path is matched once normalized, as the request goes on unchanged.
    assert_eq!(get_host(proxy.addr, "x.apps.test", "/%70age.html").1, "c");
    let web: Vec<String> = (0..4)
        .map(|_| get_host(proxy.addr, "www.test", "/page.html").1)
        .collect();
    assert_eq!(web, ["a", "b", "a", "b"], "round-robin within the pool");
    // A host with no route, the suffix itself, another path under the suffix: 404.
    for (host, path) in [
        ("other.test", "/page.html"),
        ("apps.test", "/page.html"),
        ("x.apps.test", "/"),
    ] {
        let r = exchange(
            proxy.addr,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&r), 404, "{host}{path}: {r}");
        assert!(r.ends_with("no route for this request\n"), "{r}");
    }
    // The stats name each backend's pool and count each pool's requests.
    let stats = get(&agent(), &format!("http://{admin}/stats"));
    let v: serde_json::Value = serde_json::from_str(&stats.text()).unwrap();
    let pools: BTreeMap<String, u64> = v["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pools, BTreeMap::from([("api".into(), 5), ("web".into(), 4)]));
    let c_pool = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["addr"] == c.addr.to_string())
        .map(|b| b["pool"].clone());
    assert_eq!(c_pool, Some(serde_json::json!("api")));
    let metrics = get(&agent(), &format!("http://{admin}/metrics")).text();
    assert!(
        metrics.contains("rr_proxy_pool_requests_total{pool=\"web\"} 4\n"),
        "{metrics}"
    );
}

/// One client's loop: GET /page.html through the proxy until `stop`,
/// counting answers by who served them, and anything but a 200 as a failure.
fn client(
    proxy: SocketAddr,
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    seen: Arc<Mutex<BTreeMap<String, u64>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let agent = agent();
        let until = Instant::now() + Duration::from_secs(40);
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            match call(&agent, "GET", &format!("http://{proxy}/page.html"), None) {
                Ok(r) if r.status == 200 => {
                    let who = r.header("X-Served-By").unwrap_or("").to_owned();
                    *seen.lock().unwrap().entry(who).or_insert(0) += 1;
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

/// One backend's `requests` counter in `/stats`.
fn backend_requests(admin: SocketAddr, addr: SocketAddr) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&get(&agent(), &format!("http://{admin}/stats")).text()).unwrap();
    v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["addr"] == addr.to_string())
        .and_then(|b| b["requests"].as_u64())
        .unwrap_or_else(|| panic!("{addr} not in {v}"))
}

#[test]
fn reloads_change_pools_routes_and_backends_under_load_without_a_failed_request() {
    let (a, b, c) = (start_backend("a"), start_backend("b"), start_backend("c"));
    let dir = TempDir::new("rr-reload");
    let head = "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n";
    let web = |backends: &[SocketAddr]| {
        let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
        format!("[[pool]]\nname = \"web\"\nbackends = [{}]\n", list.join(", "))
    };
    let api = format!(
        "[[pool]]\nname = \"api\"\nbackends = [\"{}\"]\n[[route]]\nhost = \"api.test\"\npool = \"api\"\n\
         [[route]]\npool = \"web\"\n",
        c.addr
    );
    let path = dir.file("proxy.toml", format!("{head}{}", web(&[a.addr])));
    let file = path.to_str().unwrap().to_owned();
    let (mut proxy, admin) = start_proxy(&file);
    let admin_post = |p: &str| call(&agent(), "POST", &format!("http://{admin}{p}"), None).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let clients: Vec<_> = (0..2)
        .map(|_| client(proxy.addr, stop.clone(), failed.clone(), seen.clone()))
        .collect();
    let served = |who: &str| seen.lock().unwrap().get(who).copied().unwrap_or(0);
    wait_for(TIMEOUT, "requests served by a", || served("a") > 20);

    // 1. A second backend, by SIGHUP: it gets requests.
    std::fs::write(&path, format!("{head}{}", web(&[a.addr, b.addr]))).unwrap();
    proxy.process.signal("HUP");
    proxy
        .process
        .wait_for_line(&["INFO", "configuration reloaded from", "1 backends added"]);
    wait_for(TIMEOUT, "requests served by b", || served("b") > 20);

    // 2. A new pool and routes, by the admin's POST /reload.
    std::fs::write(&path, format!("{head}{}{api}", web(&[a.addr, b.addr]))).unwrap();
    let r = admin_post("/reload");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["reloaded"], true, "{v}");
    assert!(
        v["message"].as_str().unwrap().starts_with("2 pools, 2 routes"),
        "{v}"
    );
    assert_eq!(get_host(proxy.addr, "api.test", "/page.html"), (200, "c".into()));
    assert_ne!(get_host(proxy.addr, "www.test", "/page.html").1, "c");

    // 3. a leaves; b stays with a new weight, its counter going on from where it was.
    let b_before = backend_requests(admin, b.addr);
    let web_b = web(&[b.addr]).replace(&format!("\"{}\"", b.addr), &format!("\"{}=3\"", b.addr));
    std::fs::write(&path, format!("{head}{web_b}{api}")).unwrap();
    proxy.process.signal("HUP");
    proxy.process.wait_for_line(&[
        "INFO",
        "configuration reloaded from",
        "0 backends added, 1 removed",
    ]);
    assert!(
        backend_requests(admin, b.addr) >= b_before,
        "b's counter restarted"
    );
    let a_after = served("a");
    wait_for(TIMEOUT, "more requests served by b", || {
        served("b") > b_before + 20
    });
    assert!(served("a") <= a_after + 2, "a still gets requests after it left");

    // 4. A broken file: kept serving, said in the log and the admin answer.
    std::fs::write(&path, format!("{head}{web_b}{api}listen_backlog = 5\n")).unwrap();
    proxy.process.signal("HUP");
    let warn = proxy
        .process
        .wait_for_line(&["WARN", "configuration not reloaded", "listen_backlog"]);
    assert!(warn.contains(&format!("{file}:")), "{warn}");
    let r = admin_post("/reload");
    assert_eq!(r.status, 400, "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["reloaded"], false, "{v}");
    assert!(v["error"].as_str().unwrap().contains("listen_backlog"), "{v}");

    // 5. A new listen address whose port is taken: refused as a whole.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let listen_at = |addr: SocketAddr| {
        format!("{head}{web_b}{api}").replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""))
    };
    std::fs::write(&path, listen_at(taken_addr)).unwrap();
    proxy.process.signal("HUP");
    proxy
        .process
        .wait_for_line(&["WARN", &format!("listen: cannot listen on {taken_addr}")]);
    // The admin listener cannot move: a restart is needed.
    std::fs::write(
        &path,
        format!("{head}{web_b}{api}").replace("admin = \"127.0.0.1:0\"", "admin = \"127.0.0.2:0\""),
    )
    .unwrap();
    proxy.process.signal("HUP");
    proxy
        .process
        .wait_for_line(&["WARN", "admin: changing it needs a restart"]);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests during the reloads"
    );
    assert_eq!(get_host(proxy.addr, "api.test", "/page.html"), (200, "c".into()));

    // 6. A free new address: served first, then the old one stops accepting;
    // a request in progress on the old listener still finishes.
    drop(taken);
    let mut slow = std::net::TcpStream::connect(proxy.addr).unwrap();
    slow.write_all(b"GET /page.html HTTP/1.1\r\nHost: www.test\r\n")
        .unwrap();
    std::fs::write(&path, listen_at(taken_addr)).unwrap();
    proxy.process.signal("HUP");
    proxy
        .process
        .wait_for_line(&["rr-proxy listening on", &taken_addr.to_string()]);
    proxy.process.wait_for_line(&[
        "INFO",
        "configuration reloaded from",
        &format!("now listening on {taken_addr}"),
    ]);
    assert_eq!(get_host(taken_addr, "api.test", "/page.html"), (200, "c".into()));
    wait_for(TIMEOUT, "the old address to stop accepting", || {
        std::net::TcpStream::connect(proxy.addr).is_err()
    });
    slow.write_all(b"Connection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    let v: serde_json::Value =
        serde_json::from_str(&get(&agent(), &format!("http://{admin}/stats")).text()).unwrap();
    // No request was sent twice: every one went to one backend, once.
    assert_eq!(v["retries"], 0, "{v}");
    assert_eq!(v["reloads"]["succeeded"], 4, "{v}");
    assert_eq!(v["reloads"]["failed"], 4, "{v}");
    let metrics = get(&agent(), &format!("http://{admin}/metrics")).text();
    for line in [
        "rr_proxy_config_reloads_total{result=\"success\"} 4\n",
        "rr_proxy_config_reloads_total{result=\"failure\"} 4\n",
        "rr_proxy_config_last_reload_success 1\n",
    ] {
        assert!(metrics.contains(line), "{line:?} not in {metrics}");
    }
}

#[test]
fn post_reload_without_a_file_is_404_and_takes_commands_only_from_its_origin() {
    let a = start_backend("a");
    let mut proxy = Server::start(
        RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--backend",
            &a.addr.to_string(),
        ],
    );
    let (_, admin) = proxy.process.next_listener(Instant::now() + TIMEOUT);
    let r = call(&agent(), "POST", &format!("http://{admin}/reload"), None).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let r = call(&agent(), "GET", &format!("http://{admin}/reload"), None).unwrap();
    assert_eq!(r.status, 405);
    // A page in the operator's browser cannot make the proxy reload.
    let r = test_support::send(
        agent()
            .post(&format!("http://{admin}/reload"))
            .set("Origin", "http://evil.example"),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 403);
}
