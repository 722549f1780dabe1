//! `rr-proxy`: the round-robin load balancer (HTTP or TCP mode) with an optional
//! admin endpoint. All balancing logic lives in the `rr-proxy` library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use http_core::{Limits, ShutdownSignal};
use rr_proxy::{
    AdminSecurity, BackendSource, DnsDiscovery, HealthCheck, Mode, PassiveHealth, PoolConfig, Proxy,
    ResolverConfig, StrategyOptions, Timeouts,
};

/// Round-robin load balancer: hands each request (or, with --mode tcp, each
/// connection) to the next healthy backend.
#[derive(Debug, Parser)]
#[command(
    name = "rr-proxy",
    version,
    long_about = None,
    after_help = cli::after_help(&[cli::ADDR_HELP, cli::DURATION_HELP])
)]
struct Cli {
    /// Address to listen on: IP:PORT, :PORT or PORT (all IPv4 addresses).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:44444", value_parser = cli::parse_listen)]
    listen: SocketAddr,

    /// A backend, optionally weighted (a backend of weight 3 gets three times the
    /// requests of one of weight 1, with every strategy): IP:PORT or HOST:PORT
    /// (a name is looked up once, at start); dns:NAME:PORT[=WEIGHT] for every
    /// A/AAAA address of NAME, followed as DNS changes; srv:NAME for the targets
    /// of NAME's SRV records (their ports and weights), followed too. Repeat
    /// for each backend; the forms mix freely.
    #[arg(long = "backend", value_name = "ADDR[=WEIGHT]", value_parser = BackendSource::parse_resolving)]
    backends: Vec<BackendSource>,

    /// The nameserver that dns: and srv: backends are resolved with, as IP:PORT
    /// or IP (port 53), such as Consul's 127.0.0.1:8600 (default: the system's,
    /// from /etc/resolv.conf).
    #[arg(long, value_name = "ADDR", value_parser = parse_resolver)]
    resolver: Option<SocketAddr>,

    /// Shortest time between two resolutions of a dns: or srv: backend, whatever
    /// the record's TTL; also the first retry after a failed one.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = cli::parse_duration)]
    dns_ttl_min: Duration,

    /// Longest time between two resolutions of a dns: or srv: backend, whatever
    /// the record's TTL; also the longest wait between retries.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = cli::parse_duration)]
    dns_ttl_max: Duration,

    #[command(flatten)]
    strategy: cli::StrategyArgs,

    /// Balance HTTP requests (http) or TCP connections (tcp).
    #[arg(long, value_name = "MODE", default_value = "http")]
    mode: Mode,

    /// Worker threads, 1 or more (default: one per core).
    #[arg(long, value_name = "N", value_parser = cli::parse_threads)]
    threads: Option<usize>,

    /// Log line format: text, or json (one JSON object per line, access lines included).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    log_format: cli::LogFormat,

    /// Serve stats (GET /stats, GET /metrics) and drain/enable routes on this
    /// address (default: no admin listener).
    #[arg(long, value_name = "ADDR", value_parser = cli::parse_listen)]
    admin: Option<SocketAddr>,

    /// Bearer token the admin requires (Authorization: Bearer TOKEN), read from
    /// FILE; needed when --admin is not a loopback address.
    #[arg(long, value_name = "FILE")]
    admin_token: Option<PathBuf>,

    /// Another name the admin answers to in the Host header (a DNS name, a
    /// reverse proxy's or a port mapping's), besides its own address. Repeatable.
    #[arg(long = "admin-host", value_name = "NAME")]
    admin_hosts: Vec<String>,

    /// Turn active health checks on and probe PATH: a page that exists (a
    /// backend answering it 404 counts as down). Without it (and without
    /// --health-check) only passive ejection runs, as in nginx, and in HAProxy
    /// without `check`.
    #[arg(long, value_name = "PATH")]
    health_path: Option<String>,

    /// Turn active health checks on: GET / in HTTP mode (or --health-path), a
    /// connect in TCP mode.
    #[arg(long)]
    health_check: bool,

    /// Time between active health checks.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = cli::parse_duration)]
    health_interval: Duration,

    /// Longest a health check may take.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = cli::parse_duration)]
    health_timeout: Duration,

    /// Statuses that pass a health check, as LOW-HIGH (by default 2xx and 3xx,
    /// as HAProxy; 200-499 passes any answer below 500).
    #[arg(long, value_name = "LOW-HIGH", default_value = "200-399", value_parser = parse_range)]
    health_expect: (u16, u16),

    /// Passing checks in a row that bring a backend back.
    #[arg(long, value_name = "N", default_value_t = 2)]
    health_rise: u32,

    /// Failing checks in a row that take a backend out.
    #[arg(long, value_name = "N", default_value_t = 3)]
    health_fall: u32,

    /// No active health checks, even with --health-path or --health-check
    /// (without either there are none anyway). Passive ejection stays on.
    #[arg(long)]
    no_health_check: bool,

    /// Consecutive failed exchanges that eject a backend (0: never).
    #[arg(long, value_name = "N", default_value_t = 3)]
    eject_after: u32,

    /// How long an ejected backend stays out when active checks are off.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = cli::parse_duration)]
    eject_for: Duration,

    /// Backend connect timeout.
    #[arg(long, value_name = "DUR", default_value = "3s", value_parser = cli::parse_duration)]
    connect_timeout: Duration,

    /// Wait for a backend's response head before answering 504.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = cli::parse_duration)]
    response_timeout: Duration,

    /// Longest pause while a body streams to or from a backend.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = cli::parse_duration)]
    idle_timeout: Duration,

    /// Idle keep-alive connections kept per backend.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pool_max_idle: usize,

    /// How long an idle backend connection is kept.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = cli::parse_duration)]
    pool_idle_timeout: Duration,

    /// Most backends tried for one request when connecting fails.
    #[arg(long, value_name = "N", default_value_t = 3)]
    max_attempts: usize,

    /// How long an idle client connection is kept open.
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = cli::parse_duration)]
    keep_alive_timeout: Duration,

    /// Time a client has to send a complete request head.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = cli::parse_duration)]
    header_timeout: Duration,

    /// Most client connections served at once (default: what the open-file
    /// limit allows at two descriptors a client, at most 25000). At the limit,
    /// idle keep-alive connections are closed to make room for new clients.
    #[arg(long, value_name = "N", value_parser = cli::parse_count)]
    max_connections: Option<usize>,

    /// After SIGINT or SIGTERM, how long requests (and, in TCP mode,
    /// connections) in flight may take to finish before they are cut off.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = cli::parse_duration)]
    shutdown_timeout: Duration,

    /// Serve the admin listener over HTTPS too, with the --tls-cert
    /// certificates (default: plain HTTP, for a loopback or internal address).
    #[arg(long, requires = "admin")]
    admin_tls: bool,

    #[command(flatten)]
    tls: cli::TlsArgs,
    #[command(flatten)]
    h2: cli::H2Args,
}

/// `IP:PORT`, or an IP alone for port 53.
fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    let addr = s
        .parse::<SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("bad resolver {s:?}: expected IP:PORT or IP"))?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(format!("bad resolver {s:?}: expected IP:PORT or IP"));
    }
    Ok(addr)
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("bad status range {s:?}: expected e.g. 200-399");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if !(100..=999).contains(&a) || !(100..=999).contains(&b) || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli: Cli = cli::parse_args();
    if let Err(e) = cli.tls.check() {
        return cli::fail_usage(e);
    }
    if cli.admin_tls && !cli.tls.enabled() {
        return cli::fail_usage("--admin-tls needs --tls-cert and --tls-key");
    }
    if cli.backends.is_empty() {
        return cli::fail("no backends: give at least one --backend ADDR[=WEIGHT]");
    }
    let discovered = cli.backends.iter().any(BackendSource::is_discovered);
    if !discovered && cli.resolver.is_some() {
        return cli::fail_usage("--resolver needs a dns:NAME:PORT or srv:NAME --backend");
    }
    if cli.dns_ttl_min > cli.dns_ttl_max {
        return cli::fail_usage("--dns-ttl-min must not be longer than --dns-ttl-max");
    }
    let admin_security = match cli.admin {
        Some(addr) => match cli::admin_security(addr, cli.admin_token.as_deref(), &cli.admin_hosts) {
            Ok(s) => Some(s),
            Err(e) => return cli::fail(e),
        },
        None if cli.admin_token.is_some() || !cli.admin_hosts.is_empty() => {
            return cli::fail("--admin-token and --admin-host need --admin ADDR");
        }
        None => None,
    };
    let strategy = match cli.strategy.options(cli.mode == Mode::Tcp) {
        Ok(o) => o,
        Err(e) => return cli::fail_usage(e),
    };
    if let Err(e) = cli::init_logging("info", cli.log_format) {
        return cli::fail_usage(e);
    }
    let threads = cli.threads;
    cli::run(threads, |stop| run(cli, strategy, admin_security, stop))
}

/// The start-up summary: where it listens, what it balances over and how.
fn summary(
    cli: &Cli,
    strategy: &StrategyOptions,
    local: SocketAddr,
    health: Option<&HealthCheck>,
    admin: Option<SocketAddr>,
    tls: Option<&http_core::TlsConfig>,
) -> String {
    let backends: Vec<String> = cli
        .backends
        .iter()
        .map(|b| match b {
            BackendSource::Static(b) if b.weight == 1 => b.addr.to_string(),
            BackendSource::Dns { weight, .. } if *weight != 1 => format!("{b}={weight}"),
            other => other.to_string(),
        })
        .collect();
    let discovery = if cli.backends.iter().any(BackendSource::is_discovered) {
        format!(
            "; DNS discovery via {}, re-resolved every {}-{} (record TTL clamped)",
            cli.resolver
                .map_or("the system resolver".to_owned(), |r| format!("resolver {r}")),
            cli::format_duration(cli.dns_ttl_min),
            cli::format_duration(cli.dns_ttl_max),
        )
    } else {
        String::new()
    };
    let max_connections = cli
        .max_connections
        .unwrap_or_else(|| http_core::connection_capacity(2))
        .max(1);
    format!(
        "rr-proxy on {local}: mode {}; {} backend{} ({}){discovery}; strategy {}; health check {}; \
         passive ejection {}; timeouts: connect {}, response {}, idle {}, header {}, keep-alive {}; \
         limits: max connections {max_connections}, max attempts {}; admin {}{}; shutdown timeout {}; tls {}; http/2 {}",
        cli.mode.as_str(),
        backends.len(),
        if backends.len() == 1 { "" } else { "s" },
        backends.join(", "),
        cli.strategy.describe(strategy),
        cli::describe_health(health),
        match cli.eject_after {
            0 => "off".to_owned(),
            n => format!(
                "after {n} failures in a row, for {}",
                cli::format_duration(cli.eject_for)
            ),
        },
        cli::format_duration(cli.connect_timeout),
        cli::format_duration(cli.response_timeout),
        cli::format_duration(cli.idle_timeout),
        cli::format_duration(cli.header_timeout),
        cli::format_duration(cli.keep_alive_timeout),
        cli.max_attempts,
        admin.map_or("off".to_owned(), |a| a.to_string()),
        if cli.admin_tls { " (https)" } else { "" },
        cli::format_duration(cli.shutdown_timeout),
        cli.tls.describe(tls),
        cli.h2.describe(tls.is_some()),
    )
}

async fn run(
    cli: Cli,
    strategy: StrategyOptions,
    admin_security: Option<AdminSecurity>,
    stop: cli::Stop,
) -> Result<(), String> {
    let resolver = ResolverConfig {
        nameserver: cli.resolver,
        ttl_min: cli.dns_ttl_min,
        ttl_max: cli.dns_ttl_max,
        ..ResolverConfig::default()
    };
    let mut builder = Proxy::builder();
    for b in &cli.backends {
        builder = match b {
            BackendSource::Static(spec) => builder.backend(spec.addr, spec.weight),
            source => {
                builder.discovery(DnsDiscovery::new(source, &resolver).map_err(|e| format!("{source}: {e}"))?)
            }
        };
    }
    let mut builder = builder
        .strategy_boxed(cli.strategy.build(&strategy))
        .mode(cli.mode)
        .timeouts(Timeouts {
            connect: cli.connect_timeout,
            response: cli.response_timeout,
            idle: cli.idle_timeout,
        })
        .limits(Limits {
            keep_alive_timeout: cli.keep_alive_timeout,
            header_timeout: cli.header_timeout,
            ..Limits::default()
        })
        .pool(PoolConfig {
            max_idle: cli.pool_max_idle,
            idle_timeout: cli.pool_idle_timeout,
        })
        .passive_health(PassiveHealth {
            max_failures: cli.eject_after,
            ejection: cli.eject_for,
        })
        .max_attempts(cli.max_attempts)
        .shutdown_timeout(cli.shutdown_timeout);
    if let Some(n) = cli.max_connections {
        builder = builder.max_connections(n);
    }
    let checked = !cli.no_health_check && (cli.health_check || cli.health_path.is_some());
    let health = checked.then(|| HealthCheck {
        interval: cli.health_interval,
        timeout: cli.health_timeout,
        path: cli.health_path.clone().unwrap_or_else(|| "/".to_owned()),
        expect: cli.health_expect.0..=cli.health_expect.1,
        rise: cli.health_rise,
        fall: cli.health_fall,
        tcp_only: cli.mode == Mode::Tcp,
    });
    if let Some(h) = &health {
        builder = builder.health_check(h.clone());
    }
    let tls = cli.tls.load()?;
    if let Some(tls) = &tls {
        builder = builder.tls(tls.clone());
    }
    builder = builder.h2c(cli.h2.h2c);
    let proxy = builder.build().map_err(|e| e.to_string())?;
    let handle = proxy.handle();

    let listener = cli::bind(cli.listen).await?;
    let admin = match cli.admin {
        Some(addr) => Some(cli::bind(addr).await?),
        None => None,
    };
    let redirect = match cli.tls.redirect_http {
        Some(a) => Some(cli::bind(a).await?),
        None => None,
    };
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = match &admin {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let redirect_addr = match &redirect {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let admin_scheme = if cli.admin_tls { "https" } else { "http" };
    cli::announce_url("rr-proxy", scheme, local);
    if let Some(a) = redirect_addr {
        cli::announce("redirect to https", a);
    }
    if let Some(a) = admin_addr {
        cli::announce_url("admin", admin_scheme, a);
    }
    tracing::info!(
        "{}",
        summary(&cli, &strategy, local, health.as_ref(), admin_addr, tls.as_ref())
    );
    let mut ready = vec![("rr-proxy", scheme, local)];
    ready.extend(redirect_addr.map(|a| ("redirect to https", "http", a)));
    ready.extend(admin_addr.map(|a| ("admin", admin_scheme, a)));
    cli::notify_ready(&ready);
    if let Some(tls) = &tls {
        cli::reload_tls_on_change(tls);
    }

    let (trigger, signal) = ShutdownSignal::new();
    tokio::spawn(async move {
        stop.await;
        trigger.trigger();
    });
    let admin_tls = if cli.admin_tls { tls.clone() } else { None };
    let admin_task = admin.zip(admin_security).map(|(listener, security)| {
        let mut s = signal.clone();
        tokio::spawn(rr_proxy::serve_admin_https(
            handle,
            listener,
            security,
            admin_tls,
            async move { s.triggered().await },
        ))
    });
    let redirect_task = redirect.map(|listener| {
        let mut s = signal.clone();
        let server = http_core::Server::new(http_core::RedirectToHttps::new(local.port()))
            .limits(Limits {
                keep_alive_timeout: cli.keep_alive_timeout,
                header_timeout: cli.header_timeout,
                ..Limits::default()
            })
            .shutdown_timeout(cli.shutdown_timeout);
        tokio::spawn(async move { server.serve(listener, async move { s.triggered().await }).await })
    });
    let mut s = signal.clone();
    let served = proxy.serve(listener, async move { s.triggered().await }).await;
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    if let Some(t) = redirect_task {
        let _ = t.await;
    }
    served.map_err(|e| format!("serving failed: {e}"))
}
