//! `rr-cluster`: the course scenario in one command. Four static backends (by
//! default on 127.0.0.1:9002-9005, each naming itself with `X-Served-By`) serving
//! `static/`, the round-robin balancer on 127.0.0.1:44444 in front of them, and
//! its admin listener with the live status page. Ctrl-C stops everything
//! gracefully: the balancer finishes its requests first, then the backends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use http_core::{Limits, ShutdownSignal};
use rr_proxy::{AdminSecurity, HealthCheck, Proxy, StrategyKind};
use static_server::StaticFiles;
use tracing::Instrument;

/// Run the course scenario: static backends behind a round-robin balancer.
#[derive(Debug, Parser)]
#[command(name = "rr-cluster", version, long_about = None, after_help = cli::DURATION_HELP)]
struct Args {
    /// Directory the backends serve.
    #[arg(long, value_name = "DIR", default_value = "static")]
    root: PathBuf,

    /// Address of the balancer.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:44444")]
    listen: SocketAddr,

    /// Backend ports: a range `9002-9005`, a list `9002,9003`, or both; `0` picks a
    /// free port (`0,0,0,0` starts four backends on free ports).
    #[arg(long, value_name = "PORTS", default_value = "9002-9005", value_parser = parse_ports)]
    backend_ports: PortList,

    /// How the next backend is chosen: round-robin, weighted or least-connections.
    #[arg(long, value_name = "NAME", default_value = "round-robin")]
    strategy: StrategyKind,

    /// Address of the admin listener (status page, /stats, /metrics, drain/enable).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:44445")]
    admin: SocketAddr,

    /// Bearer token the admin requires (Authorization: Bearer TOKEN), read from
    /// FILE; needed when --admin is not a loopback address.
    #[arg(long, value_name = "FILE")]
    admin_token: Option<PathBuf>,

    /// Another name the admin answers to in the Host header (a DNS name, a
    /// reverse proxy's or a port mapping's), besides its own address. Repeatable.
    #[arg(long = "admin-host", value_name = "NAME")]
    admin_hosts: Vec<String>,

    /// How long a client of the balancer may take to send a request head.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = cli::parse_duration)]
    header_timeout: Duration,

    /// How long the balancer keeps an idle client connection open.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = cli::parse_duration)]
    keep_alive_timeout: Duration,

    /// Worker threads shared by the balancer and the backends (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Log line format: text, or json (one JSON object per line, access lines included).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    log_format: cli::LogFormat,
}

#[derive(Debug, Clone)]
struct PortList(Vec<u16>);

fn parse_ports(s: &str) -> Result<PortList, String> {
    let bad = || format!("bad port list {s:?}: expected e.g. 9002-9005 or 9002,9003 (0 for a free port)");
    let mut ports = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a == 0 || b < a || b - a >= 1024 {
                    return Err(bad());
                }
                ports.extend(a..=b);
            }
            None => ports.push(part.parse().map_err(|_| bad())?),
        }
    }
    if ports.is_empty() {
        return Err(bad());
    }
    Ok(PortList(ports))
}

fn main() -> ExitCode {
    let args: Args = cli::parse_args();
    let admin_security = match cli::admin_security(args.admin, args.admin_token.as_deref(), &args.admin_hosts)
    {
        Ok(s) => s,
        Err(e) => return cli::fail(e),
    };
    cli::init_logging("info", args.log_format);
    let threads = args.threads;
    cli::run(threads, run(args, admin_security))
}

async fn run(args: Args, admin_security: AdminSecurity) -> Result<(), String> {
    // Bind everything first, so a taken port is reported before anything runs.
    let backend_ip = match args.listen.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let mut backend_listeners = Vec::new();
    for &port in &args.backend_ports.0 {
        backend_listeners.push(cli::bind(SocketAddr::new(backend_ip, port)).await?);
    }
    let listener = cli::bind(args.listen).await?;
    let admin_listener = cli::bind(args.admin).await?;

    let mut backends = Vec::new();
    let mut handles = Vec::new();
    for l in backend_listeners {
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let name = format!("backend-{}", addr.port());
        let files = StaticFiles::builder(&args.root)
            .server_id(&name)
            .build()
            .map_err(|e| e.to_string())?;
        let span = tracing::info_span!("backend", id = %name);
        let handle = {
            let _entered = span.enter();
            files.spawn(l).map_err(|e| e.to_string())?
        };
        cli::announce(&name, addr);
        backends.push((addr, 1));
        handles.push(handle);
    }

    let proxy = Proxy::builder()
        .backends(backends.iter().copied())
        .strategy_boxed(args.strategy.build())
        // The backends run in this process: a TCP connect says whether one is up,
        // and keeps health probes out of the access log the user is watching.
        .health_check(HealthCheck {
            interval: Duration::from_secs(1),
            tcp_only: true,
            ..HealthCheck::default()
        })
        .limits(Limits {
            header_timeout: args.header_timeout,
            keep_alive_timeout: args.keep_alive_timeout,
            ..Limits::default()
        })
        .build()
        .map_err(|e| e.to_string())?;
    let handle = proxy.handle();
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;
    // Installed before the address is announced: see `cli::shutdown_signal`.
    let stop = cli::shutdown_signal();
    cli::announce("admin", admin_addr);
    cli::announce("rr-cluster", local);
    cli::notice(&format!(
        "open http://localhost:{}/page.html?admin={} (status page: http://localhost:{}/)",
        local.port(),
        admin_addr.port(),
        admin_addr.port()
    ));

    let (trigger, signal) = ShutdownSignal::new();
    tokio::spawn(async move {
        stop.await;
        trigger.trigger();
    });
    let mut s = signal.clone();
    let admin_task = tokio::spawn(
        rr_proxy::serve_admin_with(handle, admin_listener, admin_security, async move {
            s.triggered().await
        })
        .instrument(tracing::info_span!("admin")),
    );
    let mut s = signal.clone();
    let served = proxy
        .serve(listener, async move { s.triggered().await })
        .instrument(tracing::info_span!("proxy"))
        .await;
    let _ = admin_task.await;
    // The balancer has drained; now the backends can go.
    for h in handles {
        h.shutdown().await;
    }
    served.map_err(|e| format!("serving failed: {e}"))
}
