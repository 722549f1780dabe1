//! The request-aware strategies over real sockets: sticky-cookie (the cookie
//! set, kept, moved when its backend is drained, removed or dead, agreed on by
//! a second proxy, handled by curl's cookie engine) and consistent-hash (keys
//! stay put, share fairly, move only off a removed backend, a hot key spills
//! over once its backend is full, TCP mode by client address).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;

use common::*;
use rr_proxy::{
    Candidates, ConsistentHash, HashBalance, HashKey, Mode, Peer, ProxyHooks, RequestInfo, StickyCookie,
};
use test_support::{curl, TempDir};

struct Admin {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Admin {
    fn start(rt: &tokio::runtime::Runtime, proxy: &TestProxy) -> Admin {
        let (listener, addr) = bind(rt);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(rr_proxy::serve_admin(proxy.handle.clone(), listener, async {
            let _ = rx.await;
        }));
        Admin { addr, _stop: tx }
    }

    /// `method /backends/{backend}{suffix}`, which must succeed.
    fn command(&self, method: &str, backend: SocketAddr, suffix: &str) {
        let url = format!("http://{}/backends/{backend}{suffix}", self.addr);
        let r = call(&agent(), method, &url, (method == "POST").then_some(&b""[..])).unwrap();
        assert_eq!(r.status, 200, "{method} {url}: {}", r.text());
    }
}

/// GET `path` with `cookie` (if any): the backend's name and the `Set-Cookie`
/// lines of the response.
fn visit(agent: &ureq::Agent, proxy: &TestProxy, path: &str, cookie: Option<&str>) -> (String, Vec<String>) {
    let mut req = agent.get(&proxy.url(path));
    if let Some(c) = cookie {
        req = req.set("Cookie", c);
    }
    let r = test_support::send(req, None).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let name = r.header("X-Backend").expect("X-Backend").to_owned();
    (name, r.all("set-cookie").into_iter().map(str::to_owned).collect())
}

/// The value of the proxy's `rr_backend` cookie in a single `Set-Cookie`
/// line, checked for its attributes.
fn cookie_value(set_cookie: &[String]) -> String {
    assert_eq!(set_cookie.len(), 1, "{set_cookie:?}");
    let line = &set_cookie[0];
    let rest = line
        .strip_prefix("rr_backend=")
        .unwrap_or_else(|| panic!("{line}"));
    let (value, attrs) = rest.split_once("; ").unwrap();
    assert_eq!(attrs, "Path=/; HttpOnly; SameSite=Lax", "{line}");
    assert_eq!(value.len(), 16, "{line}");
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{line}"
    );
    value.to_owned()
}

fn by_name<'a>(bs: &'a [TestBackend], name: &str) -> &'a TestBackend {
    bs.iter().find(|b| b.rec.name == name).unwrap()
}

#[test]
fn sticky_cookie_keeps_a_client_and_moves_it_when_its_backend_leaves() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 3);
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>()).strategy(StickyCookie::default()),
    );
    let admin = Admin::start(&rt, &proxy);
    let agent = agent();

    // Clients without the cookie rotate, and each is given the cookie of the
    // backend that answered: one value per backend, none showing its address.
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..6 {
        let (name, set) = visit(&agent, &proxy, &format!("/new{i}"), None);
        assert_eq!(name, format!("b{}", i % 3), "no cookie: round-robin");
        let v = cookie_value(&set);
        assert_eq!(values.entry(name).or_insert_with(|| v.clone()), &v);
    }
    assert_eq!(values.len(), 3);
    assert_eq!(values.values().collect::<HashSet<_>>().len(), 3);
    // 16 hex digits: no address in any textual form (a substring test for the
    // port's digits or "127" would fail by chance for a hash now and then).
    for v in values.values() {
        assert!(v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()), "{v:?}");
        for b in &bs {
            assert!(!v.contains(&b.addr.to_string()) && !v.contains(&b.addr.ip().to_string()));
        }
    }

    // 1000 requests carrying the cookie (among others) all go to its backend;
    // none is given a cookie again, and the backend sees the header unchanged.
    let home = "b1";
    let cookie = format!("theme=dark; rr_backend={}; lang=en", values[home]);
    for i in 0..1000 {
        let (name, set) = visit(&agent, &proxy, &format!("/s{i}"), Some(&cookie));
        assert_eq!(name, home, "request {i}");
        assert!(set.is_empty(), "request {i}: {set:?}");
    }
    let seen = by_name(&bs, home).rec.seen();
    assert_eq!(seen.last().unwrap().header("cookie"), Some(cookie.as_str()));
    assert_eq!(by_name(&bs, home).rec.count(), 2 + 1000);

    // A garbage value counts as none: a cookie is set.
    let (_, set) = visit(&agent, &proxy, "/garbage", Some("rr_backend=../../etc"));
    cookie_value(&set);

    // Its backend is drained over the admin API: the client moves, is given the
    // new backend's cookie, and sticks there.
    admin.command("POST", by_name(&bs, home).addr, "/drain");
    let (moved_to, set) = visit(&agent, &proxy, "/moved", Some(&cookie));
    assert_ne!(moved_to, home);
    let v2 = cookie_value(&set);
    assert_eq!(v2, values[&moved_to]);
    let cookie2 = format!("theme=dark; rr_backend={v2}");
    for i in 0..100 {
        let (name, set) = visit(&agent, &proxy, &format!("/after{i}"), Some(&cookie2));
        assert_eq!(name, moved_to, "request {i} after the move");
        assert!(set.is_empty());
    }

    // That one is removed: the client moves again, to the last one left.
    admin.command("DELETE", by_name(&bs, &moved_to).addr, "");
    let last = bs
        .iter()
        .map(|b| b.rec.name.as_str())
        .find(|&n| n != home && n != moved_to)
        .unwrap();
    let (name, set) = visit(&agent, &proxy, "/removed", Some(&cookie2));
    assert_eq!(name, last);
    assert_eq!(cookie_value(&set), values[last]);

    // The drained one is enabled again: a client still holding its cookie
    // goes back to it.
    admin.command("POST", by_name(&bs, home).addr, "/enable");
    let (name, set) = visit(&agent, &proxy, "/back", Some(&cookie));
    assert_eq!((name.as_str(), set.len()), (home, 0));
}

#[test]
fn sticky_cookie_follows_the_backend_that_answered_a_retry() {
    let rt = runtime();
    let mut bs = TestBackend::start_many(&rt, 3);
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>()).strategy(StickyCookie::default()),
    );
    let agent = agent();
    let mut values = HashMap::new();
    for i in 0..3 {
        let (name, set) = visit(&agent, &proxy, &format!("/v{i}"), None);
        values.insert(name, cookie_value(&set));
    }
    // b0 dies without the proxy knowing yet: its client's request fails over
    // to another backend, and the cookie follows that one.
    bs[0].kill(&rt);
    let cookie = format!("rr_backend={}", values["b0"]);
    let (name, set) = visit(&agent, &proxy, "/retry", Some(&cookie));
    assert_ne!(name, "b0");
    assert_eq!(cookie_value(&set), values[&name]);
    assert!(proxy.handle.stats().retries >= 1);
}

#[test]
fn a_second_proxy_and_a_restart_agree_on_the_cookie() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 4);
    let list: Vec<&TestBackend> = bs.iter().collect();
    let first = TestProxy::start(&rt, builder(&list).strategy(StickyCookie::default()));
    // The second lists the backends in another order: the cookie names
    // backends by address, not by position.
    let reversed: Vec<&TestBackend> = bs.iter().rev().collect();
    let second = TestProxy::start(&rt, builder(&reversed).strategy(StickyCookie::default()));
    let agent = agent();
    for i in 0..4 {
        let (name, set) = visit(&agent, &first, &format!("/p{i}"), None);
        let cookie = format!("rr_backend={}", cookie_value(&set));
        for _ in 0..5 {
            let (other, set) = visit(&agent, &second, "/second", Some(&cookie));
            assert_eq!((other.as_str(), set.len()), (name.as_str(), 0));
        }
    }
}

#[test]
fn curl_keeps_the_cookie_in_its_jar_and_sticks() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 3);
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>()).strategy(StickyCookie::default()),
    );
    let dir = TempDir::new("sticky-jar");
    let jar = dir.join("jar.txt");
    let jar = jar.to_str().unwrap();
    let url = proxy.url("/jar");
    let mut names = Vec::new();
    for _ in 0..12 {
        let Some(out) = curl(&["-D", "-", "-o", "/dev/null", "-c", jar, "-b", jar, &url]) else {
            return;
        };
        assert!(out.status.success(), "{out:?}");
        let head = String::from_utf8(out.stdout).unwrap();
        let name = head
            .lines()
            .find_map(|l| l.strip_prefix("X-Backend: "))
            .unwrap_or_else(|| panic!("{head}"))
            .trim()
            .to_owned();
        names.push((name, head.contains("Set-Cookie: rr_backend=")));
    }
    // The first response set the cookie; curl sent it back every time after.
    assert!(names[0].1, "{names:?}");
    assert!(names.iter().all(|(n, _)| *n == names[0].0), "{names:?}");
    assert!(names[1..].iter().all(|(_, set)| !set), "{names:?}");
    let jar_text = std::fs::read_to_string(dir.join("jar.txt")).unwrap();
    assert!(jar_text.contains("#HttpOnly_127.0.0.1"), "{jar_text}");
}

/// A hook that lets the proxy's strategy pick among a subset: the sticky
/// cookie is honoured and set through `Candidates::pick_where` too.
struct Subset;

impl ProxyHooks for Subset {
    type Ctx = ();

    fn upstream_peer(&self, _req: RequestInfo<'_>, candidates: &Candidates<'_>, _ctx: &mut ()) -> Peer {
        candidates
            .pick_where(|_| true)
            .map_or(Peer::Unavailable, Peer::Backend)
    }
}

#[test]
fn a_hook_picking_with_the_proxys_strategy_keeps_stickiness() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 3);
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>())
            .strategy(StickyCookie::default())
            .hooks(Subset),
    );
    let agent = agent();
    let (name, set) = visit(&agent, &proxy, "/hook", None);
    let cookie = format!("rr_backend={}", cookie_value(&set));
    for _ in 0..20 {
        let (n, set) = visit(&agent, &proxy, "/hook", Some(&cookie));
        assert_eq!((n.as_str(), set.len()), (name.as_str(), 0));
    }
}

/// Sends `rounds` requests for each of `keys` keys (`X-User: user-K`),
/// round after round; each key's backend (which must not change), and the
/// requests each backend got.
fn map_keys(agent: &ureq::Agent, proxy: &TestProxy, keys: usize, rounds: usize) -> BTreeMap<usize, String> {
    let mut owner: BTreeMap<usize, String> = BTreeMap::new();
    for round in 0..rounds {
        for k in 0..keys {
            let r = test_support::send(
                agent
                    .get(&proxy.url(&format!("/k{k}")))
                    .set("X-User", &format!("user-{k}")),
                None,
            )
            .unwrap();
            assert_eq!(r.status, 200);
            let name = r.header("X-Backend").unwrap().to_owned();
            let first = owner.entry(k).or_insert_with(|| name.clone());
            assert_eq!(
                *first, name,
                "key {k} moved in round {round} while the backends stayed the same"
            );
        }
    }
    owner
}

#[test]
fn consistent_hash_by_header_keeps_keys_and_moves_only_a_removed_backends() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 4);
    let key: HashKey = "header:x-user".parse().unwrap();
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>()).strategy(ConsistentHash::new(key)),
    );
    let agent = agent();

    // 2000 requests over 200 keys: each key always to one backend, and each
    // backend a fair share of the keys (50 expected; the ring depends on the
    // ports of the day, so the bounds are wide: about five deviations).
    let before = map_keys(&agent, &proxy, 200, 10);
    for b in &bs {
        let keys = before.values().filter(|n| **n == b.rec.name).count();
        assert!((20..=80).contains(&keys), "{} has {keys} of 200 keys", b.rec.name);
        assert_eq!(b.rec.count(), 10 * keys, "{}", b.rec.name);
    }
    assert_eq!(proxy.handle.stats().strategy, "consistent-hash");

    // One backend removed: only its keys move, spread over the others.
    let gone = "b2";
    proxy.handle.remove_backend(by_name(&bs, gone).addr).unwrap();
    let after = map_keys(&agent, &proxy, 200, 2);
    let mut moved_to = HashSet::new();
    for k in 0..200 {
        if before[&k] == gone {
            assert_ne!(after[&k], gone);
            moved_to.insert(after[&k].clone());
        } else {
            assert_eq!(after[&k], before[&k], "key {k} moved off a backend that stayed");
        }
    }
    assert!(
        moved_to.len() >= 2,
        "the removed backend's keys all went to {moved_to:?}"
    );

    // Added back: every key is where it was (the ring places backends by address).
    proxy.handle.add_backend(by_name(&bs, gone).addr, 1).unwrap();
    assert_eq!(map_keys(&agent, &proxy, 200, 1), before);

    // Drained: the same as removed, for the keys of that backend only.
    proxy.handle.drain(by_name(&bs, "b0").addr).unwrap();
    let drained = map_keys(&agent, &proxy, 200, 1);
    for k in 0..200 {
        if before[&k] != "b0" {
            assert_eq!(drained[&k], before[&k], "key {k}");
        }
    }
}

#[test]
fn a_hot_key_spills_over_once_its_backend_is_full() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 4);
    let key: HashKey = "header:x-user".parse().unwrap();
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>())
            .strategy(ConsistentHash::new(key).balance(HashBalance::default())),
    );
    let url = proxy.url("/slow?ms=1500");
    let total = || bs.iter().map(|b| b.rec.count()).sum::<usize>();
    // Eight slow requests for one key, each started once the one before
    // reached a backend (so each pick sees the others in progress).
    let names: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let url = url.clone();
                let h = s.spawn(move || {
                    let r = test_support::send(agent().get(&url).set("X-User", "hot"), None).unwrap();
                    assert_eq!(r.status, 200);
                    r.header("X-Backend").unwrap().to_owned()
                });
                wait_for(TIMEOUT, "the request to reach a backend", || total() == i + 1);
                h
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &names {
        *per.entry(n).or_default() += 1;
    }
    // The bound for the k-th request (from 0) is ceil(1.25 · (k + 1) / 4): one
    // each for the first three, so they go to three backends; at most three
    // on any backend by the eighth.
    assert!(per.len() >= 3, "{per:?}");
    assert!(per.values().all(|&c| c <= 3), "{per:?}");
    // The key's own backend got the first, and gets it again once idle.
    let agent = agent();
    let r = test_support::send(agent.get(&proxy.url("/quick")).set("X-User", "hot"), None).unwrap();
    assert_eq!(r.header("X-Backend"), Some(names[0].as_str()));
}

#[test]
fn consistent_hash_by_client_address_in_tcp_mode() {
    let rt = runtime();
    let bs = TestBackend::start_many(&rt, 4);
    let proxy = TestProxy::start(
        &rt,
        builder(&bs.iter().collect::<Vec<_>>())
            // No bound: a tunnel still closing when the next connection comes
            // would count as a request in progress on its backend, and with
            // four backends one is already the bound.
            .strategy(ConsistentHash::default().balance(HashBalance::OFF))
            .mode(Mode::Tcp),
    );
    // Every connection comes from 127.0.0.1 (whatever its port): one backend.
    for i in 0..20 {
        let req = format!("GET /t{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let out = exchange(proxy.addr, req.as_bytes());
        assert_eq!(status_of(&out), 200, "{out}");
    }
    let counts: Vec<usize> = bs.iter().map(|b| b.rec.count()).collect();
    assert_eq!(counts.iter().filter(|&&c| c == 20).count(), 1, "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 20);
}
