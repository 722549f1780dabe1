//! Active health checks by default pass on 2xx and 3xx only: a backend
//! answering 404 (or 500) to the health path is down. Every failure keeps its
//! reason in the backend's stats, for checks and for passive ejection alike.

mod common;

use std::time::Duration;

use common::*;
use rr_proxy::{BackendState, FailureReason, HealthCheck, PassiveHealth, Proxy};

/// The defaults (`/`, 200-399, fall 3, rise 2), probing every 50 ms.
fn quick_default_check() -> HealthCheck {
    HealthCheck {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        ..HealthCheck::default()
    }
}

/// An address nothing listens on.
fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn default_expected_statuses_are_2xx_and_3xx() {
    let check = HealthCheck::default();
    assert_eq!(check.expect, 200..=399);
    assert_eq!(check.path, "/");
}

#[test]
fn a_backend_answering_404_to_the_health_path_is_down() {
    let rt = runtime();
    let ok = TestBackend::start(&rt, "ok"); // answers `/` with 200
    let not_found = RawBackend::start(&rt, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", true);
    let redirect = RawBackend::start(
        &rt,
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: /page.html\r\nContent-Length: 0\r\n\r\n",
        true,
    );
    let error = RawBackend::start(&rt, b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", true);
    let dead = dead_addr();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend(ok.addr, 1)
            .backend(not_found.addr, 1)
            .backend(redirect.addr, 1)
            .backend(error.addr, 1)
            .backend(dead, 1)
            .health_check(quick_default_check()),
    );
    wait_for(TIMEOUT, "404, 500 and the dead one to be marked down", || {
        let s = proxy.handle.stats();
        [1, 3, 4]
            .iter()
            .all(|&i| s.backends[i].state == BackendState::Unhealthy)
    });
    // A few more rounds: the others stay up.
    std::thread::sleep(Duration::from_millis(300));
    let stats = proxy.handle.stats();
    let states: Vec<BackendState> = stats.backends.iter().map(|b| b.state).collect();
    use BackendState::{Healthy, Unhealthy};
    assert_eq!(
        states,
        [Healthy, Unhealthy, Healthy, Unhealthy, Unhealthy],
        "{stats:?}"
    );
    let reasons: Vec<Option<FailureReason>> = stats.backends.iter().map(|b| b.last_failure).collect();
    assert_eq!(
        reasons,
        [
            None,
            Some(FailureReason::Status(404)),
            None,
            Some(FailureReason::Status(500)),
            Some(FailureReason::Connect(std::io::ErrorKind::ConnectionRefused)),
        ]
    );
    for (i, b) in stats.backends.iter().enumerate() {
        if states[i] == Healthy {
            assert!(
                b.health_checks_passed >= 3 && b.health_checks_failed == 0,
                "{b:?}"
            );
        } else {
            assert!(
                b.health_checks_failed >= 3 && b.health_checks_passed == 0,
                "{b:?}"
            );
        }
    }
    // The JSON says it in words.
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["backends"][1]["last_failure"], "status 404");
    assert_eq!(json["backends"][4]["last_failure"], "connection refused");
    assert_eq!(json["backends"][0]["last_failure"], serde_json::Value::Null);
    assert!(json["backends"][1]["health_checks_failed"].as_u64().unwrap() >= 3);

    // Requests go to the two that pass only.
    let agent = agent();
    for _ in 0..4 {
        let r = get(&agent, &proxy.url("/page.html"));
        assert!(r.status == 200 || r.status == 301, "{}", r.status);
    }
    for down in [&not_found, &error] {
        let got = down.received();
        assert!(got.contains("GET / HTTP/1.1"), "probed: {got}");
        assert!(
            !got.contains("/page.html"),
            "no request reached a backend that is down: {got}"
        );
    }
}

#[test]
fn a_malformed_silent_or_closing_backend_is_down_for_that_reason() {
    let rt = runtime();
    let garbage = RawBackend::start(&rt, b"HTTP/1.1 abc\r\n\r\n", true);
    let closes = ScriptBackend::start(&rt, |s, _| async move { drop(s) });
    let silent = ScriptBackend::start(&rt, |s, _| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend(garbage.addr, 1)
            .backend(closes.addr, 1)
            .backend(silent.addr, 1)
            .health_check(HealthCheck {
                timeout: Duration::from_millis(200),
                ..quick_default_check()
            }),
    );
    wait_for(TIMEOUT, "all three to be marked down", || {
        proxy
            .handle
            .stats()
            .backends
            .iter()
            .all(|b| b.state == BackendState::Unhealthy)
    });
    let reasons: Vec<String> = proxy
        .handle
        .backends()
        .iter()
        .map(|b| b.last_failure.map(|r| r.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        ["malformed response", "closed before a response", "timed out"]
    );
}

#[test]
fn passive_ejection_keeps_the_failure_kind() {
    let rt = runtime();
    let live = TestBackend::start(&rt, "live");
    let dead = dead_addr();
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend(dead, 1)
            .backend(live.addr, 1)
            .passive_health(PassiveHealth {
                max_failures: 3,
                ejection: Duration::from_secs(60),
            }),
    );
    let agent = agent();
    for _ in 0..10 {
        assert_eq!(get(&agent, &proxy.url("/x")).status, 200);
    }
    let d = proxy.handle.backend(dead).unwrap();
    assert_eq!(d.state, BackendState::Unhealthy);
    assert_eq!(
        d.last_failure,
        Some(FailureReason::Connect(std::io::ErrorKind::ConnectionRefused))
    );
    assert_eq!((d.health_checks_passed, d.health_checks_failed), (0, 0));
    assert_eq!(proxy.handle.backend(live.addr).unwrap().last_failure, None);
}
