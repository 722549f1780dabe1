//! The library's site sets: `StaticFiles::from_sites` serving over a real
//! socket, `reload` swapping sites in (and refusing a change that needs a restart or a
//! server that has no site set), the counts in the metrics.

use std::io::{Read, Write};
use std::time::Duration;

use static_server::config::StaticConfig;
use static_server::{ReloadError, StaticFiles};
use test_support::{agent, exchange, get, status_of, TempDir};

fn set(text: &str, dir: &TempDir) -> static_server::config::SiteSet {
    let file = dir.join("site.toml");
    StaticConfig::from_toml_str(text, file.to_str().unwrap())
        .unwrap()
        .build()
        .unwrap()
}

#[test]
fn reload_swaps_the_sites_and_refuses_what_needs_a_restart() {
    let dir = TempDir::new("lib-reload");
    dir.file("one/index.html", "one\n");
    dir.file("two/index.html", "two\n");
    let rt = test_support::runtime();
    let files = StaticFiles::from_sites(set("root = \"one\"\n", &dir)).unwrap();
    let handle = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        files.clone().spawn(listener).unwrap()
    });
    let url = format!("http://{}/", handle.local_addr());
    assert_eq!(get(&agent(), &url).text(), "one\n");

    files
        .reload(set(
            "root = \"two\"\n[[site]]\nhost = \"one.test\"\nroot = \"one\"\n",
            &dir,
        ))
        .unwrap();
    assert_eq!(get(&agent(), &url).text(), "two\n");
    let r = exchange(
        handle.local_addr(),
        b"GET / HTTP/1.1\r\nHost: one.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&r), 200);
    assert!(r.ends_with("\r\n\r\none\n"), "{r}");

    // Moving the listener is the program's (the binary binds the new
    // address first): a new `listen` alone is taken; beside a redirect
    // listener, which names the port, it needs a restart.
    let e = files
        .reload(set("threads = 3\nroot = \"one\"\n", &dir))
        .unwrap_err();
    assert!(matches!(e, ReloadError::RestartNeeded("threads")), "{e}");
    assert_eq!(get(&agent(), &url).text(), "two\n", "the running set is kept");
    let counts = files.reload_counts().unwrap();
    assert_eq!(
        (counts.succeeded, counts.failed, counts.last_succeeded),
        (1, 1, false)
    );
    assert!(counts.last_timestamp > 0);
    let snapshot = files.metrics().snapshot();
    assert_eq!(snapshot.config_reloads, Some(counts));
    assert!(snapshot
        .responses
        .statuses
        .iter()
        .any(|(code, n)| *code == 200 && *n >= 3));

    let plain = StaticFiles::builder(dir.join("one")).build().unwrap();
    let e = plain.reload(set("root = \"one\"\n", &dir)).unwrap_err();
    assert!(matches!(e, ReloadError::NotReloadable), "{e}");
    assert_eq!(plain.reload_counts(), None);

    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(3), handle.shutdown()).await });
}

#[test]
fn a_request_in_flight_finishes_on_the_sites_it_started_with() {
    let dir = TempDir::new("lib-reload-inflight");
    // Larger than the cache's largest file: streamed from the disk while the
    // client reads slowly.
    let old: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    dir.file("one/big.bin", &old);
    dir.file("two/big.bin", b"the new site's file\n");
    let rt = test_support::runtime();
    let files = StaticFiles::from_sites(set("root = \"one\"\n", &dir)).unwrap();
    let handle = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        files.clone().spawn(listener).unwrap()
    });
    let mut s = std::net::TcpStream::connect(handle.local_addr()).unwrap();
    s.set_read_timeout(Some(test_support::TIMEOUT)).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = vec![0u8; 64 * 1024];
    s.read_exact(&mut got).unwrap();
    files.reload(set("root = \"two\"\n", &dir)).unwrap();
    // A new request sees the new site at once...
    let url = format!("http://{}/big.bin", handle.local_addr());
    assert_eq!(get(&agent(), &url).text(), "the new site's file\n");
    // ...while the one in flight ends with the old file, whole.
    s.read_to_end(&mut got).unwrap();
    let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(status_of(&got[..body_at]), 200);
    assert_eq!(got.len() - body_at, old.len());
    assert!(got[body_at..] == old[..], "the body in flight changed");
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(3), handle.shutdown()).await });
}
