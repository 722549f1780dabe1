//! The demo as a user sees it (issue 5): headless Chromium loads `page.html`
//! through the `rr-cluster` balancer and the admin status page, and the test
//! reads the DOM after the page's scripts ran (`--dump-dom`) and saves screenshots.
//!
//! Needs Debian's `chromium` package (`.ci/run` installs it); without it the tests
//! say they skipped and pass.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_rr-cluster");
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one Chromium run may take.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh Chromium runs allowed to see all four backends name the page.
/// Loads in a row that must name all four backends (five requests a load).
const MAX_LOADS: usize = 4;
const ASSETS: [&str; 3] = ["style.css", "app.js", "logo.svg"];

fn static_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../static")
        .canonicalize()
        .expect("static/ in the workspace root")
}

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

/// A unique temporary directory; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("rr-browser-{}-{tag}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs Chromium headless on `url` with a fresh profile and `extra` flags; its
/// stdout. Killed (with its helper processes) after [`CHROMIUM_TIMEOUT`].
fn chromium(bin: &Path, url: &str, extra: &[&str]) -> String {
    let profile = TempDir::new("profile");
    let mut child = Command::new(bin)
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
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout can end the renderer and the other
        // helpers too.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {url} {extra:?} did not finish within {CHROMIUM_TIMEOUT:?}; stderr: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap();
    let err = err.join().unwrap();
    assert!(
        status.success(),
        "chromium {url} {extra:?}: {status:?}; stderr: {err}"
    );
    out
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

/// A running `rr-cluster` on free ports serving `static/`; killed on drop.
struct Cluster {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    backends: Vec<SocketAddr>,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Cluster {
    fn start() -> Cluster {
        let mut child = Command::new(BIN)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--backend-ports",
                "0,0,0,0",
                "--admin",
                "127.0.0.1:0",
            ])
            .arg("--root")
            .arg(static_root())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rr-cluster");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keeps reading after the announcements so the pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut backends, mut admin, mut proxy) = (Vec::new(), None, None);
        let deadline = Instant::now() + TIMEOUT;
        while backends.len() < 4 || admin.is_none() || proxy.is_none() {
            let line = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("rr-cluster did not announce its listeners within {TIMEOUT:?}: {e}");
                }
            };
            if let Some((who, addr)) = line.split_once(" listening on http://") {
                let addr: SocketAddr = addr.trim().parse().unwrap_or_else(|e| panic!("{line:?}: {e}"));
                match who {
                    "admin" => admin = Some(addr),
                    "rr-cluster" => proxy = Some(addr),
                    _ => backends.push(addr),
                }
            }
        }
        Cluster {
            child,
            proxy: proxy.unwrap(),
            admin: admin.unwrap(),
            backends,
            lines: rx,
            log: Vec::new(),
        }
    }

    fn names(&self) -> BTreeSet<String> {
        self.backends
            .iter()
            .map(|a| format!("backend-{}", a.port()))
            .collect()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// A GET through the balancer (or to the admin listener); its body.
    fn get(&self, url: &str) -> String {
        let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
        let resp = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        resp.into_string().unwrap()
    }

    /// Requests the balancer has taken so far (the `requests` total of `/stats`).
    fn proxied(&self) -> u64 {
        let stats = self.get(&format!("http://{}/stats", self.admin));
        let at = stats.find("\"requests\":").expect("requests in /stats") + "\"requests\":".len();
        let n = &stats[at..];
        n[..n.find(|c: char| !c.is_ascii_digit()).unwrap()]
            .parse()
            .unwrap()
    }

    /// Waits for a log line containing every one of `parts`.
    fn log_line(&mut self, parts: &[&str]) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.log.extend(self.lines.try_iter());
            if let Some(l) = self.log.iter().find(|l| parts.iter().all(|p| l.contains(p))) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?} in {:#?}",
                self.log
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn the_page_names_its_backend_and_every_asset_and_repeated_loads_name_all_four() {
    let chromium = chromium_or_skip!();
    let mut cluster = Cluster::start();
    let names = cluster.names();
    let admin_port = cluster.admin.port();

    let mut named = BTreeSet::new();
    for load in 0..MAX_LOADS {
        // A distinct query per load, so the access log shows which backend the
        // balancer really sent this page request to.
        let target = format!("/page.html?admin={admin_port}&load={load}");
        let url = format!("http://{}{target}", cluster.proxy);
        let before = cluster.proxied();
        let dom = dump_dom(&chromium, &url);
        // `/stats` is on the admin listener: it does not count itself.
        let requests = cluster.proxied() - before;

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
        cluster.log_line(&[
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
    let cluster = Cluster::start();
    // Some traffic, so the share bars have something to show.
    for _ in 0..40 {
        cluster.get(&cluster.url("/page.html"));
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
