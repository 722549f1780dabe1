//! The demo as a user sees it (issue 5): headless Chromium loads `page.html`
//! through the `rr-cluster` balancer and the admin status page, and the test
//! reads the DOM after the page's scripts ran (`--dump-dom`) and saves screenshots.
//! It also plays the page of another site that tries to drain the backends, and
//! the operator giving the status page its token.
//!
//! Needs Debian's `chromium` package (`.ci/run` installs it); without it the tests
//! say they skipped and pass.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{backend_name, static_root, Cluster, Server, STATIC_SERVER};
use test_support::{agent, run_within, wait_for, TempDir, TIMEOUT};

/// What a page on another site can send the admin without a CORS preflight:
/// `no-cors` POSTs with a `text/plain` body or none. The page records how many
/// requests the browser sent (an opaque answer still counts as sent).
const CROSS_SITE_PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>another site</title></head><body>
<script>
const q = new URLSearchParams(location.search);
const admin = `http://${q.get("admin")}`;
const tries = [
  fetch(`${admin}/backends/${q.get("a")}/drain`, { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: "drain" }),
  fetch(`${admin}/backends/${q.get("b")}/drain`, { method: "POST", mode: "no-cors" }),
  fetch(`${admin}/backends/127.0.0.1:1?weight=100`, { method: "POST", mode: "no-cors", body: "add" }),
];
Promise.allSettled(tries).then((r) => {
  document.body.dataset.sent = String(r.filter((x) => x.status === "fulfilled").length);
});
</script>
</body></html>
"#;

/// Longest one Chromium run may take.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh Chromium runs allowed to see all four backends name the page.
/// Loads in a row that must name all four backends (five requests a load).
const MAX_LOADS: usize = 4;
const ASSETS: [&str; 3] = ["style.css", "app.js", "logo.svg"];

/// `chromium` or `chromium-browser` on PATH or in /usr/bin.
fn find_chromium() -> Option<PathBuf> {
    let names = ["chromium", "chromium-browser"];
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|dir| names.map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

macro_rules! chromium_or_skip {
    () => {
        match find_chromium() {
            Some(c) => c,
            None => {
                // CI installs Chromium (.ci/run): there, a missing browser is a failure,
                // not a reason to skip.
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but chromium is not installed: .ci/run should have installed it"
                );
                eprintln!("browser test skipped: chromium not installed (apt-get install chromium)");
                return;
            }
        }
    };
}

/// Runs Chromium headless on `url` with a fresh profile and `extra` flags; its
/// stdout. Killed (with its helper processes) after [`CHROMIUM_TIMEOUT`].
fn chromium(bin: &Path, url: &str, extra: &[&str]) -> String {
    let profile = TempDir::new("profile");
    let out = run_within(
        Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url),
        CHROMIUM_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "chromium {url} {extra:?}: {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM after the page's scripts ran.
fn dump_dom(bin: &Path, url: &str) -> String {
    let dom = chromium(bin, url, &["--virtual-time-budget=5000", "--dump-dom"]);
    assert!(dom.contains("<body"), "no DOM for {url}: {dom:?}");
    dom
}

/// Saves a screenshot of `url` to `<target tmp>/name` and checks it is a real PNG.
fn screenshot(bin: &Path, url: &str, name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&path);
    chromium(
        bin,
        url,
        &[
            "--virtual-time-budget=5000",
            &format!("--screenshot={}", path.display()),
            "--window-size=1200,1000",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert!(
        png.len() > 10 * 1024,
        "{} is only {} bytes",
        path.display(),
        png.len()
    );
    eprintln!("screenshot of {url} saved to {}", path.display());
    path
}

/// The value of attribute `name` in the first tag that starts with `tag_start`.
fn attr<'a>(dom: &'a str, tag_start: &str, name: &str) -> Option<&'a str> {
    let tag = &dom[dom.find(tag_start)?..];
    let tag = &tag[..tag.find('>')?];
    let key = format!(" {name}=\"");
    let value = &tag[tag.find(&key)? + key.len()..];
    Some(&value[..value.find('"')?])
}

/// The rows of the page's asset table: resource → (status, served by).
fn asset_rows(dom: &str) -> BTreeMap<String, (String, String)> {
    let table = &dom[dom.find("<table id=\"assets\"").expect("asset table")..];
    let body = &table[table.find("<tbody>").expect("tbody") + "<tbody>".len()..];
    let body = &body[..body.find("</tbody>").expect("</tbody>")];
    body.split("<tr>")
        .filter(|r| !r.trim().is_empty())
        .map(|row| {
            let cells: Vec<&str> = row
                .split("<td>")
                .skip(1)
                .map(|c| &c[..c.find("</td>").unwrap()])
                .collect();
            assert_eq!(cells.len(), 3, "row {row:?}");
            (cells[0].to_string(), (cells[1].to_string(), cells[2].to_string()))
        })
        .collect()
}

/// A GET that must succeed (a 4xx or 5xx fails); its body.
fn get_body(url: &str) -> String {
    let resp = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    resp.into_string().unwrap()
}

/// Requests the balancer has taken so far (the `requests` total of `/stats`).
fn proxied(cluster: &Cluster) -> u64 {
    let stats = get_body(&format!("http://{}/stats", cluster.admin));
    let at = stats.find("\"requests\":").expect("requests in /stats") + "\"requests\":".len();
    let n = &stats[at..];
    n[..n.find(|c: char| !c.is_ascii_digit()).unwrap()]
        .parse()
        .unwrap()
}

#[test]
fn the_page_names_its_backend_and_every_asset_and_repeated_loads_name_all_four() {
    let chromium = chromium_or_skip!();
    let mut cluster = Cluster::start(&static_root(), &[]);
    let names: BTreeSet<String> = cluster.backends.iter().map(|&a| backend_name(a)).collect();
    let admin_port = cluster.admin.port();

    let mut named = BTreeSet::new();
    for load in 0..MAX_LOADS {
        // A distinct query per load, so the access log shows which backend the
        // balancer really sent this page request to.
        let target = format!("/page.html?admin={admin_port}&load={load}");
        let url = format!("http://{}{target}", cluster.proxy);
        let before = proxied(&cluster);
        let dom = dump_dom(&chromium, &url);
        // `/stats` is on the admin listener: it does not count itself.
        let requests = proxied(&cluster) - before;

        // Every asset loaded and named a backend; the page names its own.
        assert_eq!(
            attr(&dom, "<body", "data-assets-named"),
            Some("3"),
            "load {load}: {dom}"
        );
        let served_by = attr(&dom, "<body", "data-served-by")
            .unwrap_or_default()
            .to_string();
        assert!(
            names.contains(&served_by),
            "load {load}: page names {served_by:?}, not one of {names:?}"
        );
        assert_eq!(
            attr(&dom, "<a id=\"status-link\"", "href"),
            Some(&*format!("http://127.0.0.1:{admin_port}/")),
            "load {load}: the link to the status page"
        );
        let rows = asset_rows(&dom);
        assert_eq!(rows.len(), 4, "load {load}: {rows:?}");
        assert_eq!(
            rows["page.html"],
            ("200".to_string(), served_by.clone()),
            "load {load}"
        );
        for asset in ASSETS {
            let (status, by) = &rows[asset];
            assert_eq!(status, "200", "load {load}: {asset}");
            assert!(names.contains(by), "load {load}: {asset} names {by:?}");
        }
        // The balancer took the page, its three assets and the page's follow-up
        // HEAD, one after the other in the rotation: the first four are four
        // distinct backends, and the follow-up is named on the page.
        assert_eq!(requests, 5, "load {load}: requests through the balancer");
        let distinct: BTreeSet<&String> = rows.values().map(|(_, by)| by).collect();
        assert_eq!(distinct.len(), 4, "load {load}: {rows:?}");
        let next_by = attr(&dom, "<body", "data-next-by").unwrap_or_default();
        assert_eq!(
            next_by, served_by,
            "load {load}: the fifth request wraps round to the page's backend"
        );
        // The name the page shows is the backend the balancer chose for it.
        let port = served_by.trim_start_matches("backend-");
        cluster.process.wait_for_line(&[
            &format!("\"GET {target} HTTP/1.1\" 200"),
            &format!("backend=127.0.0.1:{port} "),
        ]);

        eprintln!(
            "load {load}: page served by {served_by}; {requests} requests through the balancer; {rows:?}"
        );
        named.insert(served_by);
        if named == names {
            break;
        }
    }
    // Five requests a load over four backends: each fresh load starts one further
    // on, so four loads in a row name all four, with nobody else's help.
    assert_eq!(named, names, "{MAX_LOADS} loads did not name all four backends");

    let shot = screenshot(
        &chromium,
        &cluster.url(&format!("/page.html?admin={admin_port}")),
        "rr-cluster-page.png",
    );
    println!("page screenshot: {}", shot.display());
}

#[test]
fn the_status_page_shows_four_healthy_backends() {
    let chromium = chromium_or_skip!();
    let cluster = Cluster::start(&static_root(), &[]);
    // Some traffic, so the share bars have something to show.
    for _ in 0..40 {
        get_body(&cluster.url("/page.html"));
    }
    let url = format!("http://{}/", cluster.admin);
    let dom = dump_dom(&chromium, &url);
    assert_eq!(attr(&dom, "<body", "data-backends"), Some("4"), "{dom}");
    let rows: BTreeMap<String, String> = dom
        .match_indices("<tr data-addr=")
        .map(|(i, _)| {
            let row = &dom[i..];
            let addr = attr(row, "<tr", "data-addr").unwrap().to_string();
            let state = attr(row, "<tr", "data-state").unwrap_or_default().to_string();
            (addr, state)
        })
        .collect();
    let expected: BTreeMap<String, String> = cluster
        .backends
        .iter()
        .map(|a| (a.to_string(), "healthy".to_string()))
        .collect();
    assert_eq!(rows, expected, "{dom}");
    // The counters made it to the page: 40 requests in all.
    assert!(dom.contains(": 40 requests,"), "{dom}");

    let shot = screenshot(&chromium, &url, "rr-cluster-status.png");
    println!("status page screenshot: {}", shot.display());
}

/// The issue's attack in a real browser: a page served from another origin (the
/// balancer's port) sends the admin `no-cors` POSTs to drain two backends and to
/// add one. The browser sends them; the admin refuses each with 403, and all four
/// backends stay in rotation.
#[test]
fn cross_site_post_cannot_drain_backends_from_a_browser() {
    let chromium = chromium_or_skip!();
    let site = TempDir::new("other-site");
    site.file("evil.html", CROSS_SITE_PAGE);
    let mut cluster = Cluster::start(site.path(), &[]);
    let (a, b) = (cluster.backends[0], cluster.backends[1]);
    let url = format!(
        "http://{}/evil.html?admin={}&a={a}&b={b}",
        cluster.proxy, cluster.admin
    );
    let dom = dump_dom(&chromium, &url);
    assert_eq!(attr(&dom, "<body", "data-sent"), Some("3"), "{dom}");
    // The admin saw each request, and refused it.
    for target in [
        format!("POST /backends/{a}/drain HTTP/1.1\" 403"),
        format!("POST /backends/{b}/drain HTTP/1.1\" 403"),
        "POST /backends/127.0.0.1:1?weight=100 HTTP/1.1\" 403".to_string(),
    ] {
        cluster.process.wait_for_line(&[&target]);
    }
    let stats = get_body(&format!("http://{}/stats", cluster.admin));
    assert_eq!(stats.matches("\"state\":\"healthy\"").count(), 4, "{stats}");
    assert!(!stats.contains("127.0.0.1:1\""), "{stats}");
}

/// With `--admin-token`, the status page asks for the token, and with it (here
/// given in the address's fragment, which never reaches the server) shows the
/// backends; a wrong token is refused.
#[test]
fn the_status_page_asks_for_the_admin_token_and_uses_it() {
    const TOKEN: &str = "5d0f8a2c93e17b46a0d2c9e8";
    let chromium = chromium_or_skip!();
    let dir = TempDir::new("token");
    let file = dir.file("admin-token", format!("{TOKEN}\n"));
    let cluster = Cluster::start(&static_root(), &["--admin-token", file.to_str().unwrap()]);
    let url = format!("http://{}/", cluster.admin);

    let dom = dump_dom(&chromium, &url);
    assert_eq!(attr(&dom, "<body", "data-auth"), Some("needed"), "{dom}");
    assert!(!dom.contains("<tr data-addr="), "{dom}");

    let dom = dump_dom(&chromium, &format!("{url}#token=not-the-admin-token"));
    assert_eq!(attr(&dom, "<body", "data-auth"), Some("refused"), "{dom}");
    assert!(!dom.contains("<tr data-addr="), "{dom}");

    let dom = dump_dom(&chromium, &format!("{url}#token={TOKEN}"));
    assert_eq!(attr(&dom, "<body", "data-auth"), Some("ok"), "{dom}");
    assert_eq!(attr(&dom, "<body", "data-backends"), Some("4"), "{dom}");
    assert!(!dom.contains(TOKEN), "the token is not left in the page");
}

/// Headless Chromium driven over the DevTools protocol, for a test that clicks:
/// with `--remote-debugging-pipe` Chromium reads commands on fd 3 and writes
/// replies on fd 4, each a JSON message ended by a NUL byte; a shell maps them to
/// the child's stdin and stdout. One page, opened at `url`.
struct Devtools {
    child: Child,
    commands: ChildStdin,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: TempDir,
}

impl Devtools {
    fn open(bin: &Path, url: &str) -> Devtools {
        let profile = TempDir::new("devtools");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(
                "exec \"$0\" --headless --no-sandbox --disable-gpu --no-first-run --disable-sync \
                 --disable-background-networking --disable-component-update --disable-quic \
                 --remote-debugging-pipe --user-data-dir=\"$1\" about:blank 3<&0 4>&1 0</dev/null 1>/dev/null",
            )
            .arg(bin)
            .arg(profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromium");
        let commands = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop();
                let Ok(value) = serde_json::from_slice::<Value>(&message) else {
                    break;
                };
                if tx.send(value).is_err() {
                    break;
                }
                message.clear();
            }
        });
        let mut devtools = Devtools {
            child,
            commands,
            replies,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = devtools.call("Target.createTarget", json!({ "url": url }));
        let target = target["targetId"].as_str().expect("a target id").to_string();
        let attached = devtools.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        devtools.session = attached["sessionId"].as_str().expect("a session id").to_string();
        devtools
    }

    /// Sends one command (to the page once attached) and waits for its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            command["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&command).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + CHROMIUM_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no reply to {method} within {CHROMIUM_TIMEOUT:?}: {e}"));
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of the JavaScript expression `js` in the page.
    fn eval(&mut self, js: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(result.get("exceptionDetails").is_none(), "{js}: {result}");
        result["result"]["value"].clone()
    }

    /// Waits up to [`TIMEOUT`] for `js` to be `true` in the page (an exception,
    /// as while the page is still loading, counts as not yet).
    fn wait_for(&mut self, js: &str) {
        let guarded =
            format!("(() => {{ try {{ return ({js}) === true; }} catch (e) {{ return false; }} }})()");
        wait_for(TIMEOUT, js, || self.eval(&guarded) == json!(true));
    }
}

impl Drop for Devtools {
    fn drop(&mut self) {
        // Chromium and its helpers are one process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status page's buttons, clicked in Chromium, with `--admin-token`: the
/// page's own POSTs (same origin, no body, the token as a header) pass the
/// admin's checks and drain and re-enable the backend.
#[test]
fn the_status_pages_drain_and_enable_buttons_work() {
    const TOKEN: &str = "7c1e9b24f0a85d36c2e1b0f9";
    let chromium = chromium_or_skip!();
    let dir = TempDir::new("token");
    let file = dir.file("admin-token", format!("{TOKEN}\n"));
    let mut cluster = Cluster::start(&static_root(), &["--admin-token", file.to_str().unwrap()]);
    let first = cluster.backends[0];
    let state = |cluster: &Cluster| {
        let stats = agent()
            .get(&format!("http://{}/stats", cluster.admin))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .expect("GET /stats with the token")
            .into_string()
            .unwrap();
        let at = stats
            .find(&format!("\"addr\":\"{first}\""))
            .expect("the first backend");
        let rest = &stats[at..];
        let at = rest.find("\"state\":\"").unwrap() + "\"state\":\"".len();
        rest[at..at + rest[at..].find('"').unwrap()].to_string()
    };

    let mut page = Devtools::open(&chromium, &format!("http://{}/#token={TOKEN}", cluster.admin));
    page.wait_for("document.body.dataset.auth === 'ok' && document.body.dataset.backends === '4'");
    let row = format!("document.querySelector('tr[data-addr=\"{first}\"]')");
    page.eval(&format!("{row}.querySelector('button').click()"));
    page.wait_for(&format!("{row}.dataset.state === 'draining'"));
    assert_eq!(state(&cluster), "draining");
    cluster.process.wait_for_line(&[&format!(
        "\"POST /backends/{}/drain HTTP/1.1\" 200",
        first.to_string().replace(':', "%3A")
    )]);

    page.eval(&format!("{row}.querySelector('button').click()"));
    page.wait_for(&format!("{row}.dataset.state === 'healthy'"));
    assert_eq!(state(&cluster), "healthy");
    assert_eq!(
        page.eval("document.getElementById('error').textContent"),
        json!("")
    );
}

/// The demo page from the `static-server` binary with compression on (the
/// default): Chromium asks for it and its assets compressed, decodes them,
/// runs the page's script (which names the server for each asset) and renders
/// it. Resource Timing tells, per file, the bytes that crossed the wire and the
/// bytes decoded: each of the four was compressed, and decoded whole.
#[test]
fn the_demo_page_loads_compressed_and_renders() {
    let chromium = chromium_or_skip!();
    let root = static_root();
    let srv = Server::start(
        STATIC_SERVER,
        "static-server",
        &[
            "--root",
            root.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--server-id",
            "compressed",
        ],
    );
    let url = srv.url("/page.html");
    let mut page = Devtools::open(&chromium, &url);
    page.wait_for(
        "document.body.dataset.assetsNamed === '3' && document.body.dataset.servedBy === 'compressed'",
    );
    let sizes = page.eval(
        "(() => { const out = {}; \
           for (const e of performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))) { \
             const name = new URL(e.name).pathname.slice(1); \
             if (!(name in out)) out[name] = [e.encodedBodySize, e.decodedBodySize]; \
           } return out; })()",
    );
    for name in ["page.html", "style.css", "app.js", "logo.svg"] {
        let file = std::fs::metadata(root.join(name)).unwrap().len();
        let encoded = sizes[name][0]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {sizes}"));
        let decoded = sizes[name][1]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {sizes}"));
        assert_eq!(decoded, file, "{name} decoded whole: {sizes}");
        assert!(
            encoded > 0 && encoded < decoded,
            "{name} was not sent compressed: {sizes}"
        );
        eprintln!("{name}: {encoded} bytes on the wire, {decoded} decoded");
    }
    // What a browser's Accept-Encoding gets, told by curl with Chromium's header.
    let (status, head) = test_support::curl_status(&[
        "-s",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-H",
        "Accept-Encoding: gzip, deflate, br, zstd",
        &url,
    ]);
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-encoding: zstd\r\n") && head.contains("vary: accept-encoding\r\n"),
        "{head}"
    );
    drop(page);
    let shot = screenshot(&chromium, &url, "static-server-compressed-page.png");
    println!("compressed page screenshot: {}", shot.display());
}

/// base64 of the SHA-256 of a certificate's public key (SubjectPublicKeyInfo),
/// as Chromium's `--ignore-certificate-errors-spki-list` takes it: how a test
/// makes Chromium trust its own certificate without a system store.
fn spki_hash(cert: &Path) -> String {
    let out = run_within(
        Command::new("sh").arg("-c").arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            cert.display()
        )),
        TIMEOUT,
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_page_is_served_over_https_by_rr_cluster_with_tls() {
    let bin = chromium_or_skip!();
    let dir = TempDir::new("browser-tls");
    let ca = test_support::TestCa::new(dir.path());
    let pair = ca.issue(dir.path(), "site", &["localhost", "127.0.0.1"], 1);
    let (cert, key) = (pair.cert.display().to_string(), pair.key.display().to_string());
    let cluster = Cluster::start(&static_root(), &["--tls-cert", &cert, "--tls-key", &key]);
    let names: BTreeSet<String> = cluster.backends.iter().map(|&a| backend_name(a)).collect();
    let trust = format!("--ignore-certificate-errors-spki-list={}", spki_hash(&pair.cert));
    let url = format!(
        "https://localhost:{}/page.html?admin={}",
        cluster.proxy.port(),
        cluster.admin.port()
    );
    let dom = chromium(&bin, &url, &["--virtual-time-budget=5000", "--dump-dom", &trust]);
    assert_eq!(attr(&dom, "<body", "data-assets-named"), Some("3"), "{dom}");
    let served_by = attr(&dom, "<body", "data-served-by").unwrap_or_default();
    assert!(names.contains(served_by), "page names {served_by:?}: {dom}");
    // The page, its three assets: four backends in turn, over HTTPS.
    let rows = asset_rows(&dom);
    let distinct: BTreeSet<&String> = rows.values().map(|(_, by)| by).collect();
    assert_eq!(distinct.len(), 4, "{rows:?}");
    // The link to the status page keeps the scheme, and the admin answers it.
    assert_eq!(
        attr(&dom, "<a id=\"status-link\"", "href"),
        Some(&*format!("https://localhost:{}/", cluster.admin.port()))
    );
    // Without the trust flag Chromium refuses the test CA's certificate.
    let refused = chromium(&bin, &url, &["--virtual-time-budget=3000", "--dump-dom"]);
    assert!(!refused.contains("data-assets-named"), "{refused}");
}

/// A `dns:https://NAME:PORT` source on the status page: the source listed
/// with its scheme, and its backend with the name its certificate is
/// verified for (issue 12).
#[test]
fn the_status_page_shows_a_tls_discovery_source_with_its_scheme() {
    let chromium = chromium_or_skip!();
    let dir = TempDir::new("status-dns-tls");
    let ca = test_support::TestCa::new(dir.path());
    let files = ca.issue(dir.path(), "tls-dns", &["web.test"], 1);
    let backend = common::start_static_backend_with(
        "tls-dns",
        &[
            "--tls-cert",
            files.cert.to_str().unwrap(),
            "--tls-key",
            files.key.to_str().unwrap(),
        ],
    );
    let Some(dns) = test_support::Dnsmasq::start("127.0.0.1 web.test\n", "") else {
        return;
    };
    let source = format!("dns:https://web.test:{}", backend.addr.port());
    let mut proxy = Server::start(
        common::RR_PROXY,
        "rr-proxy",
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &source,
            "--resolver",
            &dns.addr.to_string(),
            "--backend-ca",
            ca.ca_pem.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let admin = loop {
        let (who, addr) = proxy.process.next_listener(Instant::now() + TIMEOUT);
        if who == "admin" {
            break addr;
        }
    };
    wait_for(TIMEOUT, "a 200 over TLS", || {
        test_support::get(&agent(), &proxy.url("/page.html")).status == 200
    });
    let dom = dump_dom(&chromium, &format!("http://{admin}/"));
    assert_eq!(
        attr(&dom, "<tr data-source=", "data-source"),
        Some(source.as_str()),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("<td>https://web.test ({})</td>", backend.addr)),
        "{dom}"
    );
    assert_eq!(
        attr(&dom, "<section class=\"card\" id=\"discovery-card\"", "hidden"),
        None,
        "{dom}"
    );
}
