//! Hostile request targets: none may return a byte of a file outside the root.
//!
//! Every row is sent raw over TCP (no client normalises it), on a fresh
//! connection, followed by a pipelined `GET /page.html` that shows whether the
//! connection was kept (static-layer refusals keep it; head-parser refusals close).

mod common;

use common::{Site, Srv};
use static_server::SymlinkPolicy;
use test_support::{curl, find, Reply};

const PAGE: &str = "<h1>page</h1>\n";

/// Content that exists only outside the root.
fn secret() -> String {
    format!(
        "TOP-SECRET-{}-{:x}-must-never-be-served",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The site every test here uses. `base/` (outside the root) holds the secret
/// as a file, in a directory, and as that directory's index.html.
fn hostile_site(secret: &str) -> Site {
    let site = Site::new("hostile");
    let secret_file = site.outside("secret.txt", secret);
    site.outside("outside/secret.txt", secret);
    site.outside("outside/index.html", secret);
    site.outside("root-sibling.txt", secret);
    site.file("index.html", "ROOT INDEX\n");
    site.file("page.html", PAGE);
    site.file("sub/file.txt", "sub file\n");
    site.file("sub/.env", "SUB ENV\n");
    site.file(".env", "ENV\n");
    site.file(".git/config", "[core]\n");
    site.file(".well-known/x", "WELL KNOWN\n");
    site.file(".well-known/.hidden", "hidden\n");
    site.dir("evil.com");
    // Decoding happens once: `/%252e%252e` names this file, literally.
    site.file("%2e%2e", "LITERAL PERCENT NAME\n");
    site.file("...", "THREE DOTS\n");
    site.file("..;", "DOT DOT SEMICOLON\n");
    site.symlink("link_in", "page.html");
    site.symlink("linkdir_in", "sub");
    site.symlink("link_out", "../secret.txt");
    site.symlink("link_out_abs", &secret_file);
    site.symlink("linkdir_out", "../outside");
    site.symlink("sub/link_up", "../../root-sibling.txt");
    site
}

/// Exactly what a static-layer refusal looks like.
#[track_caller]
fn assert_refusal(r: &Reply, status: u16, ctx: &str) {
    assert_eq!(r.status, status, "{ctx}: {}", String::from_utf8_lossy(&r.raw));
    let body = match status {
        400 => "bad request path\n",
        404 => "not found\n",
        _ => unreachable!(),
    };
    assert_eq!(r.text(), body, "{ctx}");
    r.expect("Content-Type", "text/plain; charset=utf-8")
        .expect("Content-Length", &body.len().to_string());
}

/// What a row expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// A static-layer 400 or 404 with its exact body; connection kept.
    Refuse(u16),
    /// A head-parser refusal (http-core): this status, connection closed.
    ParserRefuse(u16),
    /// 301 to exactly this Location; connection kept.
    Redirect(&'static str),
    /// 200 with exactly this body; connection kept.
    Serve(&'static str),
}

use Want::*;

/// At least 40 hostile targets (plus a few benign look-alikes that must be
/// served from inside the root).
const CORPUS: &[(&str, Want)] = &[
    // Plain and encoded dot-dot.
    ("/../secret.txt", Refuse(400)),
    ("/..", Refuse(400)),
    ("/../../../../../../etc/passwd", Refuse(400)),
    ("/sub/../../secret.txt", Refuse(400)),
    ("/sub/..", Refuse(400)),
    ("/./../secret.txt", Refuse(400)),
    ("/%2e%2e/secret.txt", Refuse(400)),
    ("/%2E%2E/secret.txt", Refuse(400)),
    ("/.%2e/secret.txt", Refuse(400)),
    ("/%2e./secret.txt", Refuse(400)),
    ("/%2e%2e%2fsecret.txt", Refuse(400)),
    ("/..%2fsecret.txt", Refuse(400)),
    ("/sub/..%2f..%2fsecret.txt", Refuse(400)),
    ("/sub%2f..%2f..%2fsecret.txt", Refuse(400)),
    // Double encoding decodes once: a literal name, absent (or the literal file).
    ("/%252e%252e/secret.txt", Refuse(404)),
    ("/%252e%252e%252fsecret.txt", Refuse(404)),
    ("/%252e%252e", Serve("LITERAL PERCENT NAME\n")),
    // Overlong UTF-8 and invalid UTF-8.
    ("/%c0%ae%c0%ae/secret.txt", Refuse(400)),
    ("/%c0%ae%c0%ae%c0%afsecret.txt", Refuse(400)),
    ("/..%c0%afsecret.txt", Refuse(400)),
    ("/%e0%80%ae%e0%80%ae/secret.txt", Refuse(400)),
    ("/%f0%80%80%ae%f0%80%80%ae/secret.txt", Refuse(400)),
    ("/%ff", Refuse(400)),
    // Backslashes, encoded and raw.
    ("/%5c..%5csecret.txt", Refuse(400)),
    ("/..%5csecret.txt", Refuse(400)),
    ("/sub%5c..%5c..%5csecret.txt", Refuse(400)),
    ("/..\\secret.txt", Refuse(400)),
    ("/sub\\..\\..\\secret.txt", Refuse(400)),
    // Drive prefixes.
    ("/x/c:/windows/win.ini", Refuse(400)),
    ("/c:/windows/win.ini", Refuse(400)),
    ("/C:%5cwindows%5cwin.ini", Refuse(400)),
    ("/c%3a/windows/win.ini", Refuse(400)),
    // NUL and control bytes, encoded.
    ("/page.html%00", Refuse(400)),
    ("/page.html%00.txt", Refuse(400)),
    ("/%00/../secret.txt", Refuse(400)),
    ("/..%00/secret.txt", Refuse(400)),
    ("/page.html%0d%0aSet-Cookie:%20x=1", Refuse(400)),
    ("/%7f", Refuse(400)),
    // Bad escapes.
    ("/%", Refuse(400)),
    ("/%2", Refuse(400)),
    ("/%zz", Refuse(400)),
    ("/%%32%65%%32%65/secret.txt", Refuse(400)),
    ("/%u002e%u002e/secret.txt", Refuse(400)),
    // Symbolic links leading out of the root.
    ("/link_out", Refuse(404)),
    ("/link_out_abs", Refuse(404)),
    ("/linkdir_out", Refuse(404)),
    ("/linkdir_out/", Refuse(404)),
    ("/linkdir_out/secret.txt", Refuse(404)),
    ("/linkdir_out%2fsecret.txt", Refuse(404)),
    ("/linkdir_out/index.html", Refuse(404)),
    ("/sub/link_up", Refuse(404)),
    // Double slashes.
    ("//secret.txt", Refuse(404)),
    ("/sub//..//..//secret.txt", Refuse(400)),
    ("//page.html", Serve(PAGE)),
    // Open redirects: the Location always has exactly one leading slash.
    ("//evil.com", Redirect("/evil.com/")),
    ("///evil.com", Redirect("/evil.com/")),
    ("/%2fevil.com", Redirect("/evil.com/")),
    ("/%2f%2fevil.com", Redirect("/evil.com/")),
    ("//evil.com?x=1", Redirect("/evil.com/?x=1")),
    ("//evil.com/", Refuse(404)),
    ("/\\evil.com", Refuse(400)),
    ("/%5cevil.com", Refuse(400)),
    // Dotfiles hidden, /.well-known/ served.
    ("/.env", Refuse(404)),
    ("/%2eenv", Refuse(404)),
    ("/.git/config", Refuse(404)),
    ("/.git/", Refuse(404)),
    ("/.git", Refuse(404)),
    ("/sub/.env", Refuse(404)),
    ("/.well-known/x", Serve("WELL KNOWN\n")),
    ("/.well-known/.hidden", Refuse(404)),
    ("/.well-known/../.env", Refuse(400)),
    ("/sub/.well-known/x", Refuse(404)),
    // Look-alikes of `..` are plain names, hidden as dotfiles; the query is
    // ignored for lookup.
    ("/...", Refuse(404)),
    ("/..;", Refuse(404)),
    ("/..;/secret.txt", Refuse(404)),
    ("/?/../secret.txt", Serve("ROOT INDEX\n")),
    ("/%3f/../secret.txt", Refuse(400)),
    ("/secret.txt", Refuse(404)),
    ("/root-sibling.txt", Refuse(404)),
    ("/page.html/", Refuse(404)),
    ("/page.html/..", Refuse(400)),
    ("/link_in", Serve(PAGE)),
    ("/linkdir_in/file.txt", Serve("sub file\n")),
    // Absolute form: the path after the authority is checked the same way.
    ("http://test/../secret.txt", Refuse(400)),
    ("http://test/%2e%2e/secret.txt", Refuse(400)),
    ("HTTP://test/sub/../../secret.txt", Refuse(400)),
    ("http://test/linkdir_out/secret.txt", Refuse(404)),
    ("http://test//evil.com", Redirect("/evil.com/")),
    ("http://evil.com/page.html", Serve(PAGE)),
    // Not a request target at all: refused by the head parser.
    ("../secret.txt", ParserRefuse(400)),
    ("secret.txt", ParserRefuse(400)),
    ("*", ParserRefuse(400)),
];

fn run_corpus(srv: &Srv, secret: &str, check_exact: bool) -> usize {
    let mut checked = 0;
    for &(target, want) in CORPUS {
        let mut c = srv.raw();
        c.send(
            format!(
                "GET {target} HTTP/1.1\r\nHost: test\r\n\r\n\
                 GET /page.html HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = c.response(false);
        assert!(
            find(&r.raw, secret.as_bytes()).is_none(),
            "{target}: the secret leaked"
        );
        let keep = !matches!(want, ParserRefuse(_));
        if keep {
            let next = c.response(false);
            assert_eq!(
                (next.status, next.text().as_str()),
                (200, PAGE),
                "{target}: connection not kept"
            );
        } else {
            assert!(
                c.closed(),
                "{target}: connection should close after a parser refusal"
            );
        }
        checked += 1;
        if !check_exact {
            assert!(
                matches!(r.status, 200 | 301 | 400 | 404),
                "{target}: status {}",
                r.status
            );
            continue;
        }
        match want {
            Refuse(status) => assert_refusal(&r, status, target),
            ParserRefuse(status) => assert_eq!(r.status, status, "{target}"),
            Redirect(loc) => {
                assert_eq!(r.status, 301, "{target}");
                r.expect("Location", loc);
                assert!(!loc.starts_with("//") && !loc.contains('\\'));
                assert_eq!(r.text(), "moved permanently\n");
            }
            Serve(body) => {
                assert_eq!(r.status, 200, "{target}");
                assert_eq!(r.text(), body, "{target}");
            }
        }
    }
    checked
}

#[test]
fn corpus_of_hostile_targets_never_leaves_the_root() {
    let secret = secret();
    let srv = Srv::start(hostile_site(&secret), |b| b);
    let hostile = CORPUS.iter().filter(|(_, w)| !matches!(w, Serve(_))).count();
    assert!(hostile >= 40, "only {hostile} hostile rows");
    assert_eq!(run_corpus(&srv, &secret, true), CORPUS.len());
}

/// The same corpus against the most permissive configuration: listing and
/// dotfiles on. Statuses may differ (listings, served dotfiles); the secret
/// must still never appear.
#[test]
fn corpus_with_listing_and_dotfiles_still_never_leaves_the_root() {
    let secret = secret();
    let srv = Srv::start(hostile_site(&secret), |b| b.listing(true).dotfiles(true));
    run_corpus(&srv, &secret, false);
    // A listing shows a link's name but never follows it out of the root.
    let r = srv.raw_get("/linkdir_out/", "");
    assert_refusal(&r, 404, "/linkdir_out/ with listing");
    let r = srv.raw_get("/.env", "");
    assert_eq!((r.status, r.text().as_str()), (200, "ENV\n"));
}

/// Raw NUL and other bytes the head parser refuses: 400 and close.
#[test]
fn raw_control_bytes_in_the_target_are_refused_by_the_parser() {
    let secret = secret();
    let srv = Srv::start(hostile_site(&secret), |b| b);
    for target in [
        &b"/page.html\0"[..],
        b"/\0../secret.txt",
        b"/a\x7fb",
        b"/\xc0\xae\xc0\xae/secret.txt",
    ] {
        let mut c = srv.raw();
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\n\r\n");
        c.send(&req);
        let r = c.response(false);
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(target));
        assert!(find(&r.raw, secret.as_bytes()).is_none());
        assert!(c.closed());
    }
}

#[test]
fn symlink_policy_never_refuses_even_links_inside_the_root() {
    let secret = secret();
    let srv = Srv::start(hostile_site(&secret), |b| b.symlinks(SymlinkPolicy::Never));
    for target in [
        "/link_in",
        "/linkdir_in/file.txt",
        "/linkdir_in/",
        "/linkdir_in",
        "/link_out",
        "/linkdir_out/secret.txt",
    ] {
        let r = srv.raw_get(target, "");
        assert_refusal(&r, 404, target);
    }
    // Real files are unaffected.
    let r = srv.raw_get("/page.html", "");
    assert_eq!((r.status, r.text().as_str()), (200, PAGE));
    let r = srv.raw_get("/sub/file.txt", "");
    assert_eq!((r.status, r.text().as_str()), (200, "sub file\n"));
}

#[test]
fn symlink_policy_within_root_follows_links_that_stay_inside() {
    let secret = secret();
    let srv = Srv::start(hostile_site(&secret), |b| b.symlinks(SymlinkPolicy::WithinRoot));
    let r = srv.get("/link_in", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, PAGE));
    // The type comes from the file the link resolves to (page.html), not from
    // the extension-less link name.
    r.expect("Content-Type", "text/html; charset=utf-8");
    let r = srv.get("/linkdir_in/file.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "sub file\n"));
    let r = srv.get("/linkdir_in", &[]);
    assert_eq!(r.status, 301);
    r.expect("Location", "/linkdir_in/");
}

/// curl with `--path-as-is`: an independent client sending the targets unnormalised.
#[test]
fn curl_path_as_is_cannot_escape() {
    let secret = secret();
    let srv = Srv::start(hostile_site(&secret), |b| b);
    for (target, want) in [
        ("/../secret.txt", "400"),
        ("/sub/../../secret.txt", "400"),
        ("/%2e%2e/secret.txt", "400"),
        ("/link_out", "404"),
        ("/linkdir_out/secret.txt", "404"),
        ("//evil.com", "301"),
        ("/page.html", "200"),
    ] {
        let url = srv.url(target);
        let Some(out) = curl(&["--path-as-is", "-i", "-w", "\n%{http_code}", &url]) else {
            return;
        };
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(&secret), "{target}: the secret leaked");
        assert_eq!(text.rsplit('\n').next(), Some(want), "{target}: {text}");
        if want == "301" {
            assert!(text.contains("\r\nLocation: /evil.com/\r\n"), "{text}");
        }
    }
}

/// Regression: a symlink cycle under the root made `canonicalize` fail with
/// ELOOP, which was answered 500 (and logged as an error) on every request.
#[test]
fn symlink_loop_is_404_not_500() {
    let secret = secret();
    let site = hostile_site(&secret);
    site.symlink("loop1", "loop2");
    site.symlink("loop2", "loop1");
    site.symlink("self", "self");
    let srv = Srv::start(site, |b| b);
    for target in ["/loop1", "/loop2", "/loop1/x", "/self", "/self/", "/self/a/b"] {
        let r = srv.raw_get(target, "");
        assert_refusal(&r, 404, target);
    }
    // With links never followed, too.
    let site = hostile_site(&secret);
    site.symlink("loop1", "loop2");
    site.symlink("loop2", "loop1");
    let srv2 = Srv::start(site, |b| b.symlinks(SymlinkPolicy::Never));
    assert_refusal(&srv2.raw_get("/loop1", ""), 404, "/loop1 (Never)");
}

/// Names that exist but are not regular files or directories, dangling links,
/// and names too long for the file system: 404, never 500, never a hang.
#[test]
fn special_files_dangling_links_and_long_names_are_404() {
    let secret = secret();
    let site = hostile_site(&secret);
    site.symlink("dangling", "nowhere");
    site.symlink("devnull", "/dev/null");
    site.symlink("proc_environ", "/proc/self/environ");
    let fifo = site.root.join("fifo");
    let have_fifo = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    if !have_fifo {
        eprintln!("SKIPPED (FIFO part): mkfifo is not available");
    }
    let srv = Srv::start(site, |b| b.listing(true));
    let long_name = format!("/{}", "a".repeat(300));
    let deep = "/a".repeat(3000);
    let mut targets = vec![
        "/dangling",
        "/devnull",
        "/proc_environ",
        long_name.as_str(),
        deep.as_str(),
    ];
    if have_fifo {
        targets.push("/fifo");
    }
    for target in targets {
        let r = srv.raw_get(target, "");
        assert_refusal(&r, 404, &target[..target.len().min(40)]);
    }
    // A listing of a directory holding them still renders.
    let r = srv.raw_get("/", "");
    assert_eq!(r.status, 200);
    assert!(find(&r.raw, secret.as_bytes()).is_none());
}

/// Targets assembled at random from traversal pieces: whatever the mix, the
/// answer is 200/301/400/404 (never 5xx) and never holds the secret.
#[test]
fn random_traversal_mixes_never_leave_the_root() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let secret = secret();
    let srv = Srv::start(hostile_site(&secret), |b| b.listing(true));
    let pieces = vec![
        "/",
        "//",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2e%2e",
        ".%2e",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        "%00",
        "%c0%ae",
        "%c0%af",
        "%252e",
        "%25",
        "secret.txt",
        "root-sibling.txt",
        "outside",
        "linkdir_out",
        "link_out",
        "link_in",
        "sub",
        "evil.com",
        "c:",
        "?",
        "%3f",
        ";",
        ".env",
        ".well-known",
        "page.html",
        "index.html",
    ];
    let strategy = proptest::collection::vec(proptest::sample::select(pieces), 1..10)
        .prop_map(|v| format!("/{}", v.concat()));
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    // One kept-alive connection for every case: refusals must not close it.
    let conn = std::cell::RefCell::new(srv.raw());
    runner
        .run(&strategy, |target| {
            let mut c = conn.borrow_mut();
            c.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
            let r = c.response(false);
            prop_assert!(
                find(&r.raw, secret.as_bytes()).is_none(),
                "{target}: the secret leaked"
            );
            prop_assert!(
                matches!(r.status, 200 | 301 | 400 | 404),
                "{target}: {}",
                r.status
            );
            if r.status == 301 {
                let loc = r.header("Location").unwrap();
                prop_assert!(loc.starts_with('/') && !loc.starts_with("//"), "{target}: {loc}");
            }
            Ok(())
        })
        .unwrap();
}

// ------------------------------------------- links to hidden names, sidecars

/// Body of `Accept-Encoding: gzip, br` answers for the sidecar tests.
const E_HTML: &str = "<p>e</p>\n";

/// Asserts `target` is answered with the identity file `E_HTML` and none of the
/// hidden or outside content, whatever encodings the client accepts.
#[track_caller]
fn assert_identity(srv: &Srv, target: &str, secret: &str) {
    for extra in [
        "",
        "Accept-Encoding: gzip, br\r\n",
        "Accept-Encoding: gzip\r\nRange: bytes=0-2\r\n",
    ] {
        let r = srv.raw_get(target, extra);
        let ctx = format!("{target} {extra:?}: {}", String::from_utf8_lossy(&r.raw));
        for leak in ["ENV", "[core]", secret] {
            assert!(find(&r.raw, leak.as_bytes()).is_none(), "{ctx}");
        }
        assert_eq!(r.header("Content-Encoding"), None, "{ctx}");
        if extra.contains("Range") {
            assert_eq!((r.status, r.text().as_str()), (206, &E_HTML[..3]), "{ctx}");
        } else {
            assert_eq!((r.status, r.text().as_str()), (200, E_HTML), "{ctx}");
        }
    }
}

/// Regression: a sidecar was resolved with the containment check only, so
/// `e.html.gz -> .env` served the dotfile to any client accepting gzip.
#[test]
fn sidecar_symlink_to_a_dotfile_is_not_served() {
    let secret = secret();
    let site = hostile_site(&secret);
    site.file("e.html", E_HTML);
    site.symlink("e.html.gz", ".env");
    site.file("d/e.html", E_HTML);
    site.symlink("d/e.html.br", "../sub/.env");
    let srv = Srv::start(site, |b| b);
    assert_identity(&srv, "/e.html", &secret);
    assert_identity(&srv, "/d/e.html", &secret);
    // With dotfiles served, the sidecar follows the same rule as the file would.
    let site = hostile_site(&secret);
    site.file("e.html", E_HTML);
    site.symlink("e.html.gz", ".env");
    let srv = Srv::start(site, |b| b.dotfiles(true));
    let r = srv.raw_get("/e.html", "Accept-Encoding: gzip\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "ENV\n"));
    r.expect("Content-Encoding", "gzip");
}

/// Regression: the same hole through a hidden directory: `e.html.br -> .git/config`.
#[test]
fn sidecar_symlink_into_dot_git_is_not_served() {
    let secret = secret();
    let site = hostile_site(&secret);
    site.file("e.html", E_HTML);
    site.symlink("e.html.br", ".git/config");
    site.symlink("gitdir", ".git");
    site.file("f/e.html", E_HTML);
    site.symlink("f/e.html.gz", "../gitdir/config");
    let srv = Srv::start(site, |b| b);
    assert_identity(&srv, "/e.html", &secret);
    assert_identity(&srv, "/f/e.html", &secret);
}

/// Regression (the cached path): a sidecar that was fine when cached and then
/// became a link to a dotfile is dropped at the next revalidation.
#[test]
fn sidecar_replaced_by_a_dotfile_link_is_dropped_on_revalidation() {
    let secret = secret();
    let site = hostile_site(&secret);
    site.file("e.html", E_HTML);
    let gz = site.file("e.html.gz", "GZ-OF-E");
    let srv = Srv::start(site, |b| b.revalidate_after(std::time::Duration::ZERO));
    let r = srv.raw_get("/e.html", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.text(), "GZ-OF-E");
    std::fs::remove_file(&gz).unwrap();
    std::os::unix::fs::symlink(".env", &gz).unwrap();
    assert_identity(&srv, "/e.html", &secret);
}

/// A sidecar that leads outside the root is never used, relative or absolute.
#[test]
fn sidecar_symlink_outside_the_root_is_not_served() {
    let secret = secret();
    let site = hostile_site(&secret);
    let outside = site.base.join("secret.txt");
    site.file("e.html", E_HTML);
    site.symlink("e.html.gz", "../secret.txt");
    site.symlink("e.html.br", &outside);
    site.file("sub/e.html", E_HTML);
    site.symlink("sub/e.html.gz", "../../outside/secret.txt");
    let srv = Srv::start(site, |b| b);
    assert_identity(&srv, "/e.html", &secret);
    assert_identity(&srv, "/sub/e.html", &secret);
}

/// Legitimate sidecars still work: a real file, and (under `WithinRoot`) a link
/// to a visible file inside the root; under `Never` a sidecar link is not used.
#[test]
fn legitimate_sidecars_still_work_and_never_policy_ignores_sidecar_links() {
    let secret = secret();
    let make = || {
        let site = hostile_site(&secret);
        site.file("e.html", E_HTML);
        site.file("e.html.gz", "GZ-OF-E");
        site.file("l.html", E_HTML);
        site.symlink("l.html.gz", "e.html.gz");
        site
    };
    for policy in [SymlinkPolicy::WithinRoot, SymlinkPolicy::Never] {
        let srv = Srv::start(make(), |b| b.symlinks(policy));
        let r = srv.raw_get("/e.html", "Accept-Encoding: gzip\r\n");
        assert_eq!((r.status, r.text().as_str()), (200, "GZ-OF-E"), "{policy:?}");
        r.expect("Content-Encoding", "gzip")
            .expect("Vary", "Accept-Encoding")
            .expect("Content-Type", "text/html; charset=utf-8");
        let r = srv.raw_get("/l.html", "Accept-Encoding: gzip\r\n");
        if policy == SymlinkPolicy::WithinRoot {
            assert_eq!((r.status, r.text().as_str()), (200, "GZ-OF-E"));
            r.expect("Content-Encoding", "gzip");
        } else {
            assert_identity(&srv, "/l.html", &secret);
        }
    }
}

/// Regression: a link to a dotfile or into a dot-directory was followed for the
/// requested file itself, so `/link -> .env` served what `/.env` refuses.
#[test]
fn symlink_to_a_dotfile_is_not_served_as_the_file_itself() {
    let secret = secret();
    let make = || {
        let site = hostile_site(&secret);
        site.symlink("env_link", ".env");
        site.symlink("git_link", ".git/config");
        site.symlink("gitdir", ".git");
        site.symlink("sub_env", "sub/.env");
        site.symlink("wk_link", ".well-known/x");
        site.symlink("wk_hidden", ".well-known/.hidden");
        site
    };
    let srv = Srv::start(make(), |b| b.listing(true));
    for target in [
        "/env_link",
        "/git_link",
        "/gitdir/config",
        "/gitdir/",
        "/sub_env",
        "/wk_hidden",
    ] {
        assert_refusal(&srv.raw_get(target, ""), 404, target);
    }
    // `/.well-known/` is visible, through a link as directly.
    let r = srv.raw_get("/wk_link", "");
    assert_eq!((r.status, r.text().as_str()), (200, "WELL KNOWN\n"));
    // With dotfiles on, the links are followed like any other.
    let srv = Srv::start(make(), |b| b.dotfiles(true));
    for (target, body) in [
        ("/env_link", "ENV\n"),
        ("/git_link", "[core]\n"),
        ("/gitdir/config", "[core]\n"),
        ("/wk_hidden", "hidden\n"),
    ] {
        let r = srv.raw_get(target, "");
        assert_eq!((r.status, r.text().as_str()), (200, body), "{target}");
    }
}
