//! `rr-cluster`: the course scenario in one command. Four static backends (by
//! default on 127.0.0.1:9002-9005, each naming itself with `X-Served-By`) serving
//! `static/`, the round-robin balancer on 127.0.0.1:44444 in front of them, and
//! its admin listener with the live status page (`--no-admin` leaves it out).
//! Ctrl-C stops everything gracefully: the balancer finishes its requests first,
//! then the backends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use http_core::{Limits, ShutdownSignal};
use rr_proxy::{AdminSecurity, HealthCheck, Proxy, StrategyOptions, Timeouts};
use static_server::StaticFiles;
use tracing::Instrument;

/// Run the course scenario: static backends behind a round-robin balancer.
#[derive(Debug, Parser)]
#[command(
    name = "rr-cluster",
    version,
    long_about = None,
    after_help = cli::after_help(&[cli::ADDR_HELP, cli::DURATION_HELP])
)]
struct Args {
    /// Directory the backends serve.
    #[arg(long, value_name = "DIR", default_value = "static")]
    root: PathBuf,

    /// Address of the balancer: IP:PORT, :PORT or PORT (all IPv4 addresses; the
    /// backends then listen on 127.0.0.1).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:44444", value_parser = cli::parse_listen)]
    listen: SocketAddr,

    /// Backend ports: a range `9002-9005`, a list `9002,9003`, or both; `0` picks a
    /// free port (`0,0,0,0` starts four backends on free ports).
    #[arg(long, value_name = "PORTS", default_value = "9002-9005", value_parser = parse_ports)]
    backend_ports: PortList,

    #[command(flatten)]
    strategy: cli::StrategyArgs,

    /// Address of the admin listener (status page, /stats, /metrics, drain/enable).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:44445", value_parser = cli::parse_listen)]
    admin: SocketAddr,

    /// Run without the admin listener (no status page, stats or drain/enable).
    #[arg(long, conflicts_with_all = ["admin", "admin_token", "admin_hosts"])]
    no_admin: bool,

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

    /// Worker threads shared by the balancer and the backends, 1 or more
    /// (default: one per core).
    #[arg(long, value_name = "N", value_parser = cli::parse_threads)]
    threads: Option<usize>,

    /// After SIGINT or SIGTERM, how long the balancer's requests in flight may
    /// take to finish, and then the backends'.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = cli::parse_duration)]
    shutdown_timeout: Duration,

    /// Log line format: text, or json (one JSON object per line, access lines included).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    log_format: cli::LogFormat,

    /// TLS for the balancer (and the admin listener, so that the demo page's
    /// link to the status page keeps its scheme); the backends stay plain on
    /// loopback.
    #[command(flatten)]
    tls: cli::TlsArgs,

    /// HTTP/2 with prior knowledge on the balancer's plain listener (the
    /// backends are reached over HTTP/1.1 either way).
    #[command(flatten)]
    h2: cli::H2Args,
}

/// Each backend's in-memory cache: files up to this size...
const CACHE_MAX_FILE: u64 = 1 << 20;
/// ...and this much in all (static-server's defaults).
const CACHE_SIZE: u64 = 64 << 20;

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
    if let Err(e) = args.tls.check() {
        return cli::fail_usage(e);
    }
    let admin_security = if args.no_admin {
        None
    } else {
        match cli::admin_security(args.admin, args.admin_token.as_deref(), &args.admin_hosts) {
            Ok(s) => Some(s),
            Err(e) => return cli::fail(e),
        }
    };
    let strategy = match args.strategy.options(false) {
        Ok(o) => o,
        Err(e) => return cli::fail_usage(e),
    };
    if let Err(e) = cli::init_logging("info", args.log_format) {
        return cli::fail_usage(e);
    }
    let threads = args.threads;
    cli::run(threads, |stop| run(args, strategy, admin_security, stop))
}

/// The start-up summary of the balancer.
fn balancer_summary(
    args: &Args,
    strategy: &StrategyOptions,
    local: SocketAddr,
    backends: &[(SocketAddr, u32)],
    health: &HealthCheck,
    admin: Option<SocketAddr>,
    tls: Option<&http_core::TlsConfig>,
) -> String {
    let list: Vec<String> = backends.iter().map(|(a, _)| a.to_string()).collect();
    let t = Timeouts::default();
    format!(
        "balancer on {local}: mode http; {} backends ({}); strategy {}; health check {}; \
         timeouts: connect {}, response {}, idle {}, header {}, keep-alive {}; limits: max connections {}; \
         admin {}; shutdown timeout {}; tls {}; http/2 {}",
        list.len(),
        list.join(", "),
        args.strategy.describe(strategy),
        cli::describe_health(Some(health)),
        cli::format_duration(t.connect),
        cli::format_duration(t.response),
        cli::format_duration(t.idle),
        cli::format_duration(args.header_timeout),
        cli::format_duration(args.keep_alive_timeout),
        http_core::connection_capacity(2),
        admin.map_or("off".to_owned(), |a| a.to_string()),
        cli::format_duration(args.shutdown_timeout),
        args.tls.describe(tls),
        args.h2.describe(tls.is_some()),
    )
}

/// The start-up summary of the backends: what each serves and how.
fn backends_summary(args: &Args, root: &std::path::Path, backends: &[(SocketAddr, u32)]) -> String {
    let list: Vec<String> = backends.iter().map(|(a, _)| a.to_string()).collect();
    format!(
        "{} backends on {}: root {}; each named backend-PORT; listing off; cache files up to {} ({} in all); \
         limits: max connections {} each; shutdown timeout {}",
        list.len(),
        list.join(", "),
        root.display(),
        cli::format_size(CACHE_MAX_FILE),
        cli::format_size(CACHE_SIZE),
        http_core::connection_capacity(1),
        cli::format_duration(args.shutdown_timeout),
    )
}

async fn run(
    args: Args,
    strategy: StrategyOptions,
    admin_security: Option<AdminSecurity>,
    stop: cli::Stop,
) -> Result<(), String> {
    // Bind everything first, so a taken port is reported before anything runs.
    let backend_ip = match args.listen.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let mut backend_listeners = Vec::new();
    for &port in &args.backend_ports.0 {
        backend_listeners.push(cli::bind(SocketAddr::new(backend_ip, port)).await?);
    }
    let tls = args.tls.load()?;
    let listener = cli::bind(args.listen).await?;
    let redirect = match args.tls.redirect_http {
        Some(a) => Some(cli::bind(a).await?),
        None => None,
    };
    let admin_listener = match admin_security {
        Some(security) => Some((cli::bind(args.admin).await?, security)),
        None => None,
    };

    let mut backends = Vec::new();
    let mut handles = Vec::new();
    let mut root = None;
    for l in backend_listeners {
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let name = format!("backend-{}", addr.port());
        let files = StaticFiles::builder(&args.root)
            .server_id(&name)
            .cache(CACHE_MAX_FILE, CACHE_SIZE)
            .shutdown_timeout(args.shutdown_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        root.get_or_insert_with(|| files.root().to_path_buf());
        let span = tracing::info_span!("backend", id = %name);
        let handle = {
            let _entered = span.enter();
            files.spawn(l).map_err(|e| e.to_string())?
        };
        cli::announce(&name, addr);
        backends.push((addr, 1));
        handles.push(handle);
    }

    // The backends run in this process: a TCP connect says whether one is up,
    // and keeps health probes out of the access log the user is watching.
    let health = HealthCheck {
        interval: Duration::from_secs(1),
        tcp_only: true,
        ..HealthCheck::default()
    };
    let mut proxy = Proxy::builder()
        .backends(backends.iter().copied())
        .strategy_boxed(args.strategy.build(&strategy))
        .health_check(health.clone())
        .limits(Limits {
            header_timeout: args.header_timeout,
            keep_alive_timeout: args.keep_alive_timeout,
            ..Limits::default()
        })
        .shutdown_timeout(args.shutdown_timeout);
    if let Some(tls) = &tls {
        proxy = proxy.tls(tls.clone());
    }
    proxy = proxy.h2c(args.h2.h2c);
    let proxy = proxy.build().map_err(|e| e.to_string())?;
    let handle = proxy.handle();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let redirect_addr = match &redirect {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = match &admin_listener {
        Some((l, _)) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    // Watched from before the listening lines (see rr-proxy).
    if let Some(tls) = &tls {
        cli::reload_tls_on_change(tls);
    }
    if let Some(a) = admin_addr {
        cli::announce_url("admin", scheme, a);
    }
    if let Some(a) = redirect_addr {
        cli::announce("redirect to https", a);
    }
    cli::announce_url("rr-cluster", scheme, local);
    match admin_addr {
        Some(a) => cli::notice(&format!(
            "open {scheme}://localhost:{}/page.html?admin={} (status page: {scheme}://localhost:{}/)",
            local.port(),
            a.port(),
            a.port()
        )),
        None => cli::notice(&format!(
            "open {scheme}://localhost:{}/page.html (no status page: --no-admin)",
            local.port()
        )),
    }
    if let Some(root) = &root {
        tracing::info!("{}", backends_summary(&args, root, &backends));
    }
    tracing::info!(
        "{}",
        balancer_summary(
            &args,
            &strategy,
            local,
            &backends,
            &health,
            admin_addr,
            tls.as_ref()
        )
    );
    let mut ready: Vec<(String, &str, SocketAddr)> = backends
        .iter()
        .map(|(a, _)| (format!("backend-{}", a.port()), "http", *a))
        .collect();
    ready.extend(admin_addr.map(|a| ("admin".to_owned(), scheme, a)));
    ready.extend(redirect_addr.map(|a| ("redirect to https".to_owned(), "http", a)));
    ready.push(("rr-cluster".to_owned(), scheme, local));
    cli::notify_ready(
        &ready
            .iter()
            .map(|(w, s, a)| (w.as_str(), *s, *a))
            .collect::<Vec<_>>(),
    );

    let (trigger, signal) = ShutdownSignal::new();
    tokio::spawn(async move {
        stop.await;
        trigger.trigger();
    });
    let admin_task = admin_listener.map(|(admin_listener, security)| {
        let mut s = signal.clone();
        tokio::spawn(
            rr_proxy::serve_admin_https(handle, admin_listener, security, tls.clone(), async move {
                s.triggered().await
            })
            .instrument(tracing::info_span!("admin")),
        )
    });
    let redirect_task = redirect.map(|listener| {
        let mut s = signal.clone();
        let server = http_core::Server::new(http_core::RedirectToHttps::new(local.port()))
            .limits(Limits {
                header_timeout: args.header_timeout,
                keep_alive_timeout: args.keep_alive_timeout,
                ..Limits::default()
            })
            .shutdown_timeout(args.shutdown_timeout);
        tokio::spawn(
            async move { server.serve(listener, async move { s.triggered().await }).await }
                .instrument(tracing::info_span!("redirect")),
        )
    });
    let mut s = signal.clone();
    let served = proxy
        .serve(listener, async move { s.triggered().await })
        .instrument(tracing::info_span!("proxy"))
        .await;
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    if let Some(t) = redirect_task {
        let _ = t.await;
    }
    // The balancer has drained; now the backends can go, all at once, so that
    // the wait is one shutdown timeout, not one per backend.
    let stopping: Vec<_> = handles.into_iter().map(|h| tokio::spawn(h.shutdown())).collect();
    for s in stopping {
        let _ = s.await;
    }
    served.map_err(|e| format!("serving failed: {e}"))
}
