//! The health checker: active probes, re-admission after passive ejection, and
//! sweeping expired pooled connections.

use std::sync::Arc;
use std::time::Duration;

use http_core::{
    write_header, write_request_line, BodyKind, ClientConn, Limits, Method, ReadHeadError, ShutdownSignal,
};
use rustls_pki_types::ServerName;
use tokio::task::JoinSet;

use crate::backend::Backend;
use crate::balancer::Balancer;
use crate::config::HealthCheck;
use crate::reason::FailureReason;
use crate::transport::{open, Caller};

/// How often pools are swept and ejections expire when there are no active checks.
const MAINTENANCE_TICK: Duration = Duration::from_millis(500);

/// Runs until `shutdown` fires.
pub(crate) async fn run(shared: Arc<Balancer>, mut shutdown: ShutdownSignal) {
    let tick = match &shared.config.health {
        Some(h) => h.interval.min(MAINTENANCE_TICK.max(h.interval / 4)),
        None => MAINTENANCE_TICK,
    };
    let probe_every = shared.config.health.as_ref().map(|h| h.interval);
    let mut last_probe: Option<tokio::time::Instant> = None;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.triggered() => return,
        }
        let all = shared.all();
        for b in all.iter() {
            b.sweep_pool(shared.config.pool.idle_timeout);
        }
        match (&shared.config.health, probe_every) {
            (Some(check), Some(every)) => {
                let due = last_probe.is_none_or(|t| t.elapsed() >= every);
                if due {
                    last_probe = Some(tokio::time::Instant::now());
                    let mut probes = JoinSet::new();
                    for b in all.iter() {
                        let (b, check) = (b.clone(), check.clone());
                        let limits = shared.config.limits.clone();
                        probes.spawn(async move {
                            let result = probe(&b, &check, &limits).await;
                            (b, result)
                        });
                    }
                    // Results are counted (and changes logged) one at a time, here.
                    let wait = async {
                        while let Some(r) = probes.join_next().await {
                            if let Ok((b, result)) = r {
                                shared.probed(&b, result, check);
                            }
                        }
                    };
                    tokio::select! {
                        () = wait => {}
                        () = shutdown.triggered() => return,
                    }
                }
            }
            _ => shared.readmit_expired(),
        }
    }
}

/// One probe: `Ok` when the backend answered in time with an expected status,
/// else why not.
async fn probe(b: &Backend, check: &HealthCheck, limits: &Limits) -> Result<(), FailureReason> {
    let r = tokio::time::timeout(check.timeout, probe_inner(b, check, limits))
        .await
        .unwrap_or(Err(FailureReason::TimedOut));
    if let Err(why) = r {
        tracing::debug!(backend = %b.addr(), "health check failed: {why}");
    }
    r
}

async fn probe_inner(b: &Backend, check: &HealthCheck, limits: &Limits) -> Result<(), FailureReason> {
    // The same connection setup as forwarding: for an `https://` backend the
    // TLS handshake is part of the probe (and of a TCP-only one), with the
    // same configuration, session cache and certificate checks. A failed
    // handshake is a warning with rustls' words when it is new (the last
    // failure was not one).
    let warn_tls = !matches!(b.last_failure(), Some(FailureReason::Tls(_)));
    let stream = open(b, check.timeout, Caller::Probe { warn_tls })
        .await
        .map_err(|e| e.reason())?;
    if check.tcp_only {
        return Ok(());
    }
    // The probe's own deadline bounds every step; these only satisfy the API.
    let t = check.timeout;
    let mut conn = ClientConn::new(stream);
    // The name the backend was given as, for an https backend known by name
    // (the name its certificate is valid for); else its address.
    let tls = b.tls();
    let host = match tls.as_ref().map(|t| t.name()) {
        Some(ServerName::DnsName(name)) => format!("{}:{}", name.as_ref(), b.addr().port()),
        _ => b.label().to_string(),
    };
    conn.start_request(BodyKind::Empty, |out| {
        write_request_line(out, "GET", &check.path);
        write_header(out, "Host", host.as_bytes());
        write_header(out, "User-Agent", b"rr-proxy-health-check");
        write_header(out, "Connection", b"close");
    });
    conn.finish_request(t).await.map_err(|_| FailureReason::Write)?;
    match conn.read_head(Method::Get, limits, t).await {
        Ok(head) if check.expect.contains(&head.status()) => Ok(()),
        Ok(head) => Err(FailureReason::Status(head.status())),
        Err(ReadHeadError::Closed { .. }) => Err(FailureReason::Closed),
        Err(ReadHeadError::TimedOut) => Err(FailureReason::TimedOut),
        Err(_) => Err(FailureReason::Malformed),
    }
}
