//! What the log says when backends go down and come back: the backend, the
//! reason, and how many are left; once, at error level, when none is left; and
//! once when requests are served again. The log is captured by a tracing
//! subscriber for the whole test binary (its lines are told apart by address).

mod common;

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use rr_proxy::{BackendState, HealthCheck, PassiveHealth, Proxy};

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing (once), then returns the lines logged so far that contain
/// every one of `needles`.
fn lines_with(needles: &[&str]) -> Vec<String> {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
    });
    let log = String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned();
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

fn wait_for_line(needles: &[&str]) -> String {
    wait_for(TIMEOUT, &format!("a log line with {needles:?}"), || {
        !lines_with(needles).is_empty()
    });
    lines_with(needles).remove(0)
}

fn check() -> HealthCheck {
    HealthCheck {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        path: "/health".into(),
        expect: 200..=299,
        rise: 2,
        fall: 2,
        tcp_only: false,
    }
}

#[test]
fn going_down_names_the_reason_and_what_is_left_and_none_left_is_said_once() {
    lines_with(&[]);
    let rt = runtime();
    let (a, b) = (TestBackend::start(&rt, "a"), TestBackend::start(&rt, "b"));
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend(a.addr, 1)
            .backend(b.addr, 1)
            .health_check(check()),
    );
    b.set(STALL); // its /health answers 503
    let line = wait_for_line(&[&format!("backend {} down", b.addr)]);
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(
            "health check GET /health failed 2 times in a row, the last: status 503 (expected 200-299); 1 of 2 backends left"
        ),
        "{line}"
    );

    a.set(STALL);
    let line = wait_for_line(&[&format!("backend {} down", a.addr)]);
    assert!(line.contains("0 of 2 backends left"), "{line}");
    let none = "no backend left: every request gets 503 until one comes back total=2";
    wait_for_line(&[none]);
    assert_eq!(get(&agent(), &proxy.url("/x")).status, 503);
    // More failing rounds: the error is not repeated.
    std::thread::sleep(Duration::from_millis(400));
    let errors = lines_with(&[" ERROR ", "no backend left"]);
    assert_eq!(errors.len(), 1, "{errors:#?}");

    a.set(NORMAL);
    let line = wait_for_line(&[&format!("backend {} up", a.addr)]);
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains("2 health checks passed in a row; 1 of 2 backends eligible"),
        "{line}"
    );
    let line = wait_for_line(&["1 of 2 backends eligible again: requests are served again"]);
    assert!(line.contains(" INFO "), "{line}");
    assert_eq!(get(&agent(), &proxy.url("/x")).status, 200);
    assert_eq!(
        proxy.handle.backend(b.addr).unwrap().state,
        BackendState::Unhealthy
    );
}

#[test]
fn passive_ejection_and_readmission_name_the_reason() {
    lines_with(&[]);
    let rt = runtime();
    let live = TestBackend::start(&rt, "live");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = TestProxy::start(
        &rt,
        Proxy::builder()
            .backend(dead, 1)
            .backend(live.addr, 1)
            .passive_health(PassiveHealth {
                max_failures: 3,
                ejection: Duration::from_millis(300),
            }),
    );
    let agent = agent();
    for _ in 0..6 {
        assert_eq!(get(&agent, &proxy.url("/x")).status, 200);
    }
    let line = wait_for_line(&[&format!("backend {dead} down")]);
    assert!(
        line.contains("3 failed requests in a row, the last: connection refused; 1 of 2 backends left"),
        "{line}"
    );
    let line = wait_for_line(&[&format!("backend {dead} back after its 300ms ejection")]);
    assert!(line.contains("2 of 2 backends eligible"), "{line}");
}
