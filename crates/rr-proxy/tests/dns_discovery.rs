//! DNS discovery against a real DNS server: `dnsmasq` on a loopback port,
//! answering from a hosts file and `srv-host=` lines the test writes. The
//! backends listen on 127.0.0.2–127.0.0.9 (Linux routes all of 127.0.0.0/8
//! to the loopback interface). Under a bounded client load, the proxy follows
//! an addition, a removal and a resolver outage with zero failed requests.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rr_proxy::{BackendSource, DiscoveryResult, DnsDiscovery, Proxy, ResolverConfig};
use test_support::Dnsmasq;
use tokio::runtime::Runtime;

/// Backends named `b{last octet}` on 127.0.0.{octet}, all on one port.
fn backends_on_one_port(rt: &Runtime, octets: &[u8]) -> (u16, Vec<TestBackend>) {
    for _ in 0..20 {
        let (first, port) = {
            let ip = IpAddr::from([127, 0, 0, octets[0]]);
            let Some(b) = TestBackend::start_on(rt, &format!("b{}", octets[0]), SocketAddr::new(ip, 0))
            else {
                continue;
            };
            let port = b.addr.port();
            (b, port)
        };
        let mut all = vec![first];
        for &o in &octets[1..] {
            let addr = SocketAddr::new(IpAddr::from([127, 0, 0, o]), port);
            match TestBackend::start_on(rt, &format!("b{o}"), addr) {
                Some(b) => all.push(b),
                None => break,
            }
        }
        if all.len() == octets.len() {
            return (port, all);
        }
    }
    panic!("no port free on every loopback address {octets:?}");
}

fn resolver(dns: &Dnsmasq) -> ResolverConfig {
    ResolverConfig {
        nameserver: Some(dns.addr),
        ttl_min: Duration::from_millis(200),
        ttl_max: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
    }
}

fn hosts(octets: &[u8], name: &str) -> String {
    octets.iter().map(|o| format!("127.0.0.{o} {name}\n")).collect()
}

/// Two clients, each a GET every few milliseconds, counting what fails.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..2)
            .map(|i| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                // One client asks for slow answers, so that some requests are
                // in flight on a backend when it leaves.
                let url = if i == 0 {
                    format!("{url}/slow?ms=150")
                } else {
                    format!("{url}/x")
                };
                std::thread::spawn(move || {
                    let agent = agent();
                    // Bounded: at most 20 000 requests per client.
                    for _ in 0..20_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match call(&agent, "GET", &url, None) {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failed.lock().unwrap().push(format!("status {}", r.status)),
                            Err(e) => failed.lock().unwrap().push(e),
                        }
                        std::thread::sleep(Duration::from_millis(3));
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failed = self.failed.lock().unwrap();
        assert!(
            failed.is_empty(),
            "{} failed requests: {:?}",
            failed.len(),
            &failed[..failed.len().min(10)]
        );
        self.ok.load(Ordering::Relaxed)
    }
}

fn addrs(proxy: &TestProxy) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = proxy.handle.backends().iter().map(|b| b.addr).collect();
    v.sort();
    v
}

#[test]
fn dns_names_are_followed_through_additions_removals_and_outages() {
    let rt = runtime();
    let (port, backends) = backends_on_one_port(&rt, &[2, 3, 4]);
    let [b2, b3, b4] = &backends[..] else {
        unreachable!()
    };
    let Some(mut dns) = Dnsmasq::start(&hosts(&[2, 3], "web.test"), "") else {
        return;
    };
    let spec: BackendSource = format!("dns:web.test:{port}").parse().unwrap();
    let source = DnsDiscovery::new(&spec, &resolver(&dns)).unwrap();
    // A fixed backend beside the discovered ones: never removed by the source.
    let fixed = TestBackend::start(&rt, "fixed");
    let proxy = TestProxy::start(&rt, Proxy::builder().backend(fixed.addr, 1).discovery(source));
    let name = format!("dns:web.test:{port}");
    let source_stats = || {
        proxy
            .handle
            .stats()
            .discovery
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
    };

    // (1) The initial set, served round-robin with the fixed backend.
    wait_for(Duration::from_secs(10), "the first resolution", || {
        source_stats().backends == 2
    });
    assert_eq!(addrs(&proxy), [fixed.addr, b2.addr, b3.addr]);
    let a = agent();
    for _ in 0..30 {
        assert_eq!(get(&a, &proxy.url("/")).status, 200);
    }
    assert_eq!((fixed.rec.count(), b2.rec.count(), b3.rec.count()), (10, 10, 10));
    let s = source_stats();
    assert_eq!(s.last_result, Some(DiscoveryResult::Ok));
    assert!(
        s.resolutions_ok >= 1 && s.last_resolution_unix_seconds.is_some(),
        "{s:?}"
    );

    let load = Load::start(&proxy.url(""));

    // (2) An address added to DNS gets requests within a few seconds.
    dns.set_hosts(&hosts(&[2, 3, 4], "web.test"));
    dns.reload();
    wait_for(Duration::from_secs(10), "127.0.0.4 to get requests", || {
        b4.rec.count() > 0
    });
    assert_eq!(source_stats().backends, 3);
    // Unchanged backends kept their state: the same counters, not new ones.
    let b3_before = proxy.handle.backend(b3.addr).unwrap().requests;
    assert!(b3_before >= 10, "{b3_before}");

    // (3) An address gone from DNS gets no new requests; those in flight finish.
    dns.set_hosts(&hosts(&[3, 4], "web.test"));
    dns.reload();
    wait_for(Duration::from_secs(10), "127.0.0.2 to leave the set", || {
        !addrs(&proxy).contains(&b2.addr)
    });
    // The slow requests in flight on it end (150 ms each; generous for a loaded machine).
    std::thread::sleep(Duration::from_secs(1));
    let b2_done = b2.rec.count();
    wait_for(Duration::from_secs(10), "more requests for the others", || {
        b3.rec.count() + b4.rec.count() > b3_before as usize + 40
    });
    assert_eq!(b2.rec.count(), b2_done, "a removed backend got new requests");
    assert!(proxy.handle.backend(b3.addr).unwrap().requests > b3_before);

    // (4) Resolver outage: the last good set keeps serving, stats say failed.
    dns.kill();
    wait_for(Duration::from_secs(15), "a failed resolution", || {
        source_stats().last_result == Some(DiscoveryResult::Failed)
    });
    // Counted once the outage is seen: a lookup answered just before the kill
    // would otherwise count as a success after it (a race seen in CI).
    let ok_before = source_stats().resolutions_ok;
    let served = load.ok.load(Ordering::Relaxed);
    wait_for(
        Duration::from_secs(10),
        "requests served during the outage",
        || load.ok.load(Ordering::Relaxed) > served + 40,
    );
    let s = source_stats();
    assert_eq!(s.backends, 2, "{s:?}");
    assert!(s.resolutions_failed >= 1 && s.last_error.is_some(), "{s:?}");
    assert_eq!(addrs(&proxy), [fixed.addr, b3.addr, b4.addr]);

    // An empty answer (the name gone) also keeps the last good set.
    dns.set_hosts("");
    dns.restart();
    wait_for(Duration::from_secs(15), "an empty answer", || {
        let s = source_stats();
        s.last_result == Some(DiscoveryResult::Empty) || s.resolutions_ok > ok_before
    });
    let s = source_stats();
    assert_eq!(s.last_result, Some(DiscoveryResult::Empty), "{s:?}");
    assert_eq!(addrs(&proxy), [fixed.addr, b3.addr, b4.addr]);

    // Recovery: the name resolves again, and the set follows it.
    dns.set_hosts(&hosts(&[2, 4], "web.test"));
    dns.reload();
    wait_for(Duration::from_secs(15), "recovery", || {
        let s = source_stats();
        s.last_result == Some(DiscoveryResult::Ok) && s.resolutions_ok > ok_before
    });
    wait_for(Duration::from_secs(10), "the new set", || {
        addrs(&proxy) == [fixed.addr, b2.addr, b4.addr]
    });
    wait_for(Duration::from_secs(10), "127.0.0.2 to serve again", || {
        b2.rec.count() > b2_done
    });

    let ok = load.finish();
    assert!(ok > 200, "only {ok} requests in the load");
    // The fixed backend was never touched by the source.
    assert!(proxy.handle.backend(fixed.addr).is_ok());
}

#[test]
fn srv_records_give_targets_ports_and_weights() {
    let rt = runtime();
    let (port_a, a_backends) = backends_on_one_port(&rt, &[5]);
    let (port_b, b_backends) = backends_on_one_port(&rt, &[6, 7]);
    let (a, b, c) = (&a_backends[0], &b_backends[0], &b_backends[1]);
    let hosts = "127.0.0.5 a.web.test\n127.0.0.6 b.web.test\n127.0.0.7 c.web.test\n";
    // a: weight 3, b: weight 1, c: a fallback (priority 1), not used.
    let conf = format!(
        "srv-host=_http._tcp.web.test,a.web.test,{port_a},0,3\n\
         srv-host=_http._tcp.web.test,b.web.test,{port_b},0,1\n\
         srv-host=_http._tcp.web.test,c.web.test,{port_b},1,1\n"
    );
    let Some(dns) = Dnsmasq::start(hosts, &conf) else {
        return;
    };
    let spec: BackendSource = "srv:_http._tcp.web.test".parse().unwrap();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder().discovery(DnsDiscovery::new(&spec, &resolver(&dns)).unwrap()),
    );
    wait_for(Duration::from_secs(10), "the SRV targets", || {
        proxy.handle.backends().len() == 2
    });
    let stats = proxy.handle.backends();
    let got: Vec<(SocketAddr, u32)> = stats.iter().map(|s| (s.addr, s.weight)).collect();
    assert!(
        got.contains(&(a.addr, 3)) && got.contains(&(b.addr, 1)),
        "{got:?}"
    );
    let agent = agent();
    for _ in 0..40 {
        assert_eq!(get(&agent, &proxy.url("/")).status, 200);
    }
    assert_eq!((a.rec.count(), b.rec.count(), c.rec.count()), (30, 10, 0));
    let s = &proxy.handle.stats().discovery[0];
    assert_eq!((s.name.as_str(), s.backends), ("srv:_http._tcp.web.test", 2));
}

#[test]
fn a_name_that_does_not_resolve_yet_gives_503_until_it_does() {
    let rt = runtime();
    let backend = TestBackend::start(&rt, "late");
    let Some(dns) = Dnsmasq::start("", "") else {
        return;
    };
    let spec: BackendSource = format!("dns:late.test:{}", backend.addr.port()).parse().unwrap();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder().discovery(DnsDiscovery::new(&spec, &resolver(&dns)).unwrap()),
    );
    // The proxy serves from the start; with no backend yet, 503 and Retry-After.
    wait_for(Duration::from_secs(10), "the first (empty) answer", || {
        proxy.handle.stats().discovery[0].last_result == Some(DiscoveryResult::Empty)
    });
    let a = agent();
    let r = get(&a, &proxy.url("/"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert_eq!(proxy.handle.stats().discovery[0].backends, 0);
    dns.set_hosts("127.0.0.1 late.test\n");
    dns.reload();
    wait_for(Duration::from_secs(10), "the name to resolve", || {
        proxy.handle.backends().len() == 1
    });
    assert_eq!(get(&a, &proxy.url("/")).status, 200);
    assert_eq!(backend.rec.count(), 1);
}
