//! `rr-proxy`: the round-robin load balancer (HTTP or TCP mode) with an optional
//! admin endpoint. All balancing logic lives in the `rr-proxy` library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Parser};
use http_core::{Limits, ShutdownSignal};
use rr_proxy::config_file::{PoolSettings, TlsFiles};
use rr_proxy::{
    AdminSecurity, AdminService, BackendSource, BackendTls, Mode, PassiveHealth, PoolConfig, Proxy,
    ProxyConfig, ResolverConfig, StrategyOptions, Timeouts,
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
    #[command(subcommand)]
    command: Option<Command>,

    /// Read the configuration from this TOML file (see the README's example).
    /// Flags given on the command line override the file's values: a pool
    /// setting (strategy, health, timeouts, retries) then applies to every
    /// pool. --backend is refused with --config (backends live in the file's
    /// pools).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to listen on: IP:PORT, :PORT or PORT (all IPv4 addresses).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:44444", value_parser = cli::parse_listen)]
    listen: SocketAddr,

    /// A backend, optionally weighted (a backend of weight 3 gets three times the
    /// requests of one of weight 1, with every strategy): IP:PORT or HOST:PORT
    /// (a name is looked up once, at start); dns:NAME:PORT[=WEIGHT] for every
    /// A/AAAA address of NAME, followed as DNS changes; srv:NAME for the targets
    /// of NAME's SRV records (their ports and weights), followed too;
    /// https://HOST:PORT[=WEIGHT] for a backend spoken to over TLS (its
    /// certificate verified for HOST against the system's roots or
    /// --backend-ca; a name is sent as SNI); dns:https://NAME:PORT[=WEIGHT]
    /// and srv:https://NAME for discovered backends over TLS (verified for
    /// NAME, or for each SRV target's name). Repeat for each backend; the
    /// forms mix freely.
    #[arg(long = "backend", value_name = "ADDR[=WEIGHT]", value_parser = BackendSource::parse_resolving)]
    backends: Vec<BackendSource>,

    /// Verify the certificates of backends over TLS (https://, dns:https://,
    /// srv:https://, and those added through the admin API) against the CA
    /// certificates in this PEM file alone (default: the system's roots).
    /// With --config, it applies to every pool.
    #[arg(long, value_name = "FILE")]
    backend_ca: Option<PathBuf>,

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

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Validate a configuration file (and read the admin token and TLS
    /// certificates it names, and the backend CA files) and print what it
    /// sets up, without binding a port or looking a name up (but those of
    /// https:// backends, which the certificates are checked for): exit 0, or one line
    /// `FILE:LINE:COLUMN: KEY: MESSAGE` on stderr and exit 1.
    Check {
        /// The TOML file to check.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

use rr_proxy::parse_resolver;
use rr_proxy::parse_status_range as parse_range;

fn main() -> ExitCode {
    let (cli, matches): (Cli, ArgMatches) = cli::parse_args_with_matches();
    if let Some(Command::Check { config }) = &cli.command {
        return check(config);
    }
    let config = match configure(&cli, &matches) {
        Ok(c) => c,
        Err(Failure::Usage(e)) => return cli::fail_usage(e),
        Err(Failure::Config(e)) => return cli::fail(e),
    };
    let admin_security = match config.admin {
        Some(addr) => match cli::admin_security(addr, config.admin_token.as_deref(), &config.admin_hosts) {
            Ok(s) => Some(s),
            Err(e) => return cli::fail(e),
        },
        None => None,
    };
    let log_format = match config.log_format {
        http_core::AccessLogFormat::Json => cli::LogFormat::Json,
        _ => cli::LogFormat::Text,
    };
    if let Err(e) = cli::init_logging("info", log_format) {
        return cli::fail_usage(e);
    }
    let threads = config.threads;
    cli::run(threads, |stop| run(cli, matches, config, admin_security, stop))
}

/// `rr-proxy check --config FILE`.
fn check(path: &std::path::Path) -> ExitCode {
    match ProxyConfig::load(path) {
        Ok(config) => {
            // What starting would read besides the file: the admin token and
            // the certificates (read, never bound or served).
            if let Some(admin) = config.admin {
                if let Err(e) = cli::admin_security(admin, config.admin_token.as_deref(), &config.admin_hosts)
                {
                    eprintln!("{}: admin: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if let Err(e) = tls_args(config.tls.as_ref()).load() {
                eprintln!("{}: tls: {e}", path.display());
                return ExitCode::FAILURE;
            }
            for pool in &config.pools {
                if let Some(Err(e)) = pool.backend_ca.as_ref().map(BackendTls::from_ca_file) {
                    eprintln!("{}: pool {}: backend_ca: {e}", path.display(), pool.name);
                    return ExitCode::FAILURE;
                }
            }
            println!("{}: ok", path.display());
            print!("{}", describe(&config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the configuration cannot be used: a command-line mistake (exit 2) or
/// a file or setting that does not hold together (exit 1).
enum Failure {
    Usage(String),
    Config(String),
}

/// The configuration: the file's (`--config`) with the flags given on the
/// command line over it, or the flags' alone (one pool, `default`).
fn configure(cli: &Cli, matches: &ArgMatches) -> Result<ProxyConfig, Failure> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let mut config = match &cli.config {
        Some(path) => {
            if !cli.backends.is_empty() {
                return Err(Failure::Usage(
                    "--backend cannot be combined with --config: list the backends in the file's [[pool]] tables"
                        .into(),
                ));
            }
            ProxyConfig::load(path).map_err(|e| Failure::Config(e.to_string()))?
        }
        None => {
            if cli.backends.is_empty() {
                return Err(Failure::Config(
                    "no backends: give at least one --backend ADDR[=WEIGHT] (or --config FILE)".into(),
                ));
            }
            flags_only(cli)
        }
    };
    let all = cli.config.is_none();
    let given = |id: &str| all || given(id);
    let usage = |m: &str| Err(Failure::Usage(m.to_owned()));

    if given("listen") {
        config.listen = cli.listen;
    }
    if given("admin") {
        config.admin = cli.admin;
    }
    if given("admin_token") {
        config.admin_token = cli.admin_token.clone();
    }
    if given("admin_hosts") {
        config.admin_hosts = cli.admin_hosts.clone();
    }
    if given("admin_tls") {
        config.admin_tls = cli.admin_tls;
    }
    if given("h2c") {
        config.h2c = cli.h2.h2c;
    }
    if config.admin.is_none() && (config.admin_token.is_some() || !config.admin_hosts.is_empty()) {
        return Err(Failure::Config(
            "--admin-token and --admin-host need --admin ADDR".into(),
        ));
    }
    if given("mode") {
        config.mode = cli.mode;
    }
    if given("threads") {
        config.threads = cli.threads;
    }
    if given("max_connections") {
        config.max_connections = cli.max_connections;
    }
    if given("keep_alive_timeout") {
        config.keep_alive_timeout = cli.keep_alive_timeout;
    }
    if given("header_timeout") {
        config.header_timeout = cli.header_timeout;
    }
    if given("shutdown_timeout") {
        config.shutdown_timeout = cli.shutdown_timeout;
    }
    if given("log_format") {
        config.log_format = match cli.log_format {
            cli::LogFormat::Json => http_core::AccessLogFormat::Json,
            cli::LogFormat::Text => http_core::AccessLogFormat::Text,
        };
    }
    if given("resolver") {
        config.resolver.nameserver = cli.resolver;
    }
    if given("dns_ttl_min") {
        config.resolver.ttl_min = cli.dns_ttl_min;
    }
    if given("dns_ttl_max") {
        config.resolver.ttl_max = cli.dns_ttl_max;
    }
    if config.resolver.ttl_min > config.resolver.ttl_max {
        return usage("--dns-ttl-min must not be longer than --dns-ttl-max");
    }
    // TLS: the flags' certificates replace the file's.
    let mut tls = tls_args(config.tls.as_ref());
    if given("tls_cert") || given("tls_key") {
        tls.tls_cert = cli.tls.tls_cert.clone();
        tls.tls_key = cli.tls.tls_key.clone();
    }
    if given("redirect_http") {
        tls.redirect_http = cli.tls.redirect_http;
    }
    if given("hsts") {
        tls.hsts = cli.tls.hsts;
    }
    tls.check().map_err(Failure::Usage)?;
    config.tls = tls.enabled().then(|| TlsFiles {
        pairs: tls
            .tls_cert
            .iter()
            .cloned()
            .zip(tls.tls_key.iter().cloned())
            .collect(),
        hsts: tls.hsts,
        redirect_http: tls.redirect_http,
    });
    if config.admin_tls && config.tls.is_none() {
        return usage("--admin-tls needs --tls-cert and --tls-key");
    }

    // Pool settings: a flag given applies to every pool.
    let strategy_given = ["strategy", "sticky_cookie", "hash_key", "hash_balance"]
        .iter()
        .any(|id| given(id));
    let strategy = if strategy_given {
        Some(
            cli.strategy
                .options(config.mode == Mode::Tcp)
                .map_err(Failure::Usage)?,
        )
    } else {
        None
    };
    if let Some(ca) = &cli.backend_ca {
        let https = |p: &PoolSettings| p.backends.iter().any(BackendSource::is_tls);
        // With an admin endpoint, https backends may be added to any pool there.
        let admin_on = config.admin.is_some();
        if !admin_on && !config.pools.iter().any(https) {
            return usage(
                "--backend-ca needs a backend over TLS (https://HOST:PORT, dns:https://NAME:PORT or srv:https://NAME) \
                 or --admin (for https backends added there)",
            );
        }
        // Read now, so that a missing or bad file is a usage error.
        BackendTls::from_ca_file(ca).map_err(|e| Failure::Usage(format!("--backend-ca: {e}")))?;
        for pool in config.pools.iter_mut().filter(|p| admin_on || https(p)) {
            pool.backend_ca = Some(ca.clone());
        }
    } else {
        for pool in &config.pools {
            if let Some(Err(e)) = pool.backend_ca.as_ref().map(BackendTls::from_ca_file) {
                return Err(Failure::Config(format!("pool {}: backend_ca: {e}", pool.name)));
            }
        }
    }
    let health_on =
        (given("health_check") && cli.health_check) || (given("health_path") && cli.health_path.is_some());
    let tcp = config.mode == Mode::Tcp;
    for pool in &mut config.pools {
        if let Some(options) = &strategy {
            pool.strategy = cli.strategy.strategy;
            pool.options = options.clone();
        } else if tcp && pool.strategy.needs_http() {
            return Err(Failure::Usage(format!(
                "pool {}: strategy {} needs --mode http (TCP mode has no cookies)",
                pool.name, pool.strategy
            )));
        } else if tcp && matches!(pool.options.hash_key, rr_proxy::HashKey::Header(_)) {
            return Err(Failure::Usage(format!(
                "pool {}: hash_key header:NAME needs --mode http (TCP mode has no headers)",
                pool.name
            )));
        }
        if health_on {
            let mut h = pool.health.take().unwrap_or_default();
            if let Some(path) = &cli.health_path {
                h.path = path.clone();
            }
            pool.health = Some(h);
        }
        if let Some(h) = &mut pool.health {
            if given("health_interval") {
                h.interval = cli.health_interval;
            }
            if given("health_timeout") {
                h.timeout = cli.health_timeout;
            }
            if given("health_expect") {
                h.expect = cli.health_expect.0..=cli.health_expect.1;
            }
            if given("health_rise") {
                h.rise = cli.health_rise;
            }
            if given("health_fall") {
                h.fall = cli.health_fall;
            }
            h.tcp_only = tcp;
        }
        if cli.no_health_check {
            pool.health = None;
        }
        if given("eject_after") {
            pool.passive.max_failures = cli.eject_after;
        }
        if given("eject_for") {
            pool.passive.ejection = cli.eject_for;
        }
        if given("connect_timeout") {
            pool.timeouts.connect = cli.connect_timeout;
        }
        if given("response_timeout") {
            pool.timeouts.response = cli.response_timeout;
        }
        if given("idle_timeout") {
            pool.timeouts.idle = cli.idle_timeout;
        }
        if given("pool_max_idle") {
            pool.pool.max_idle = cli.pool_max_idle;
        }
        if given("pool_idle_timeout") {
            pool.pool.idle_timeout = cli.pool_idle_timeout;
        }
        if given("max_attempts") {
            pool.max_attempts = cli.max_attempts;
        }
    }
    let discovered = config
        .pools
        .iter()
        .any(|p| p.backends.iter().any(BackendSource::is_discovered));
    if !discovered && config.resolver.nameserver.is_some() {
        return usage("--resolver needs a dns:NAME:PORT or srv:NAME --backend");
    }
    Ok(config)
}

/// The configuration the flags alone describe: one pool, `default`, with
/// every `--backend`; the other values are set from the flags by [`configure`].
fn flags_only(cli: &Cli) -> ProxyConfig {
    ProxyConfig {
        listen: cli.listen,
        admin: None,
        admin_token: None,
        admin_hosts: Vec::new(),
        admin_tls: false,
        h2c: cli.h2.h2c,
        mode: cli.mode,
        threads: None,
        max_connections: None,
        keep_alive_timeout: cli.keep_alive_timeout,
        header_timeout: cli.header_timeout,
        shutdown_timeout: cli.shutdown_timeout,
        log_format: http_core::AccessLogFormat::Text,
        resolver: ResolverConfig::default(),
        tls: None,
        pools: vec![PoolSettings {
            name: "default".to_owned(),
            strategy: cli.strategy.strategy,
            options: StrategyOptions::default(),
            backends: cli.backends.clone(),
            backend_ca: None,
            health: None,
            passive: PassiveHealth::default(),
            timeouts: Timeouts::default(),
            pool: PoolConfig::default(),
            max_attempts: 3,
        }],
        routes: Vec::new(),
    }
}

/// The TLS flags a configuration's `[tls]` table amounts to.
fn tls_args(tls: Option<&TlsFiles>) -> cli::TlsArgs {
    match tls {
        None => cli::TlsArgs::default(),
        Some(t) => cli::TlsArgs {
            tls_cert: t.pairs.iter().map(|(c, _)| c.clone()).collect(),
            tls_key: t.pairs.iter().map(|(_, k)| k.clone()).collect(),
            redirect_http: t.redirect_http,
            hsts: t.hsts,
        },
    }
}

/// A backend as the summaries show it: `IP:PORT` (with `=WEIGHT` when not 1),
/// `https://HOST:PORT[=WEIGHT]` (with the address a name was looked up to),
/// `dns:NAME:PORT[=WEIGHT]`, `srv:NAME`.
fn show_backend(b: &BackendSource) -> String {
    match b {
        BackendSource::Static(b) if b.weight == 1 => b.addr.to_string(),
        BackendSource::Https { spec, host } => {
            let text = b.to_string();
            let text = match spec.weight {
                1 => text.strip_suffix("=1").unwrap_or(&text).to_owned(),
                _ => text,
            };
            if spec.addr.ip().to_string() == *host {
                text
            } else {
                format!("{text} ({})", spec.addr)
            }
        }
        BackendSource::Dns { weight, .. } if *weight != 1 => format!("{b}={weight}"),
        other => other.to_string(),
    }
}

/// A strategy in a few words: `round-robin`, `sticky-cookie (cookie NAME)`,
/// `consistent-hash (key KEY, balance B)`.
fn show_strategy(p: &PoolSettings) -> String {
    let args = cli::StrategyArgs {
        strategy: p.strategy,
        sticky_cookie: None,
        hash_key: None,
        hash_balance: None,
    };
    args.describe(&p.options)
}

/// What `check` prints: the listeners, then each pool and route on a line.
fn describe(c: &ProxyConfig) -> String {
    let mut out = format!(
        "listen {} (mode {}{})\nadmin {}\n",
        c.listen,
        c.mode.as_str(),
        if c.tls.is_some() { ", https" } else { "" },
        c.admin.map_or("off".to_owned(), |a| a.to_string())
    );
    if let Some(a) = c.tls.as_ref().and_then(|t| t.redirect_http) {
        out.push_str(&format!("redirect to https from {a}\n"));
    }
    for p in &c.pools {
        let backends: Vec<String> = p.backends.iter().map(show_backend).collect();
        out.push_str(&format!(
            "pool {}: {}; backends {}{}; health check {}; max attempts {}\n",
            p.name,
            show_strategy(p),
            backends.join(", "),
            backend_trust(p, None),
            cli::describe_health(p.health.as_ref()),
            p.max_attempts
        ));
    }
    if c.routes.is_empty() {
        out.push_str(&format!(
            "routes: none (every request goes to pool {})\n",
            c.pools[0].name
        ));
    }
    for (i, r) in c.routes.iter().enumerate() {
        out.push_str(&format!(
            "route {i}: host {} path {} -> pool {}\n",
            r.host.as_ref().map_or("*".to_owned(), |h| h.to_string()),
            r.path.as_deref().unwrap_or("*"),
            c.pools[r.pool].name
        ));
    }
    out
}

/// How HTTP/2 is served, for the summary (as `cli::H2Args::describe`).
fn h2_describe(h2c: bool, tls: bool) -> &'static str {
    cli::H2Args { h2c }.describe(tls)
}

/// What the certificates of a pool's https backends are verified against
/// (`""` without https backends): the CA file, or the system's roots (a CA
/// file given for backends the admin will add, when there are none yet).
fn backend_trust(pool: &PoolSettings, loaded: Option<&BackendTls>) -> String {
    if !pool.backends.iter().any(BackendSource::is_tls) {
        return match &pool.backend_ca {
            Some(ca) => format!(
                "; https backends added through the admin verified against CA file {}",
                ca.display()
            ),
            None => String::new(),
        };
    }
    match (loaded, &pool.backend_ca) {
        (Some(tls), _) => format!("; https backends verified against {}", tls.trust()),
        (None, Some(ca)) => format!("; https backends verified against CA file {}", ca.display()),
        (None, None) => "; https backends verified against the system roots".to_owned(),
    }
}

/// The start-up summary: where it listens, what it balances over and how.
fn summary(
    config: &ProxyConfig,
    local: SocketAddr,
    admin: Option<SocketAddr>,
    tls: Option<&http_core::TlsConfig>,
    backend_tls: Option<&BackendTls>,
) -> String {
    let pool = &config.pools[0];
    let trust = backend_trust(pool, backend_tls);
    let backends: Vec<String> = pool.backends.iter().map(show_backend).collect();
    let discovery = if pool.backends.iter().any(BackendSource::is_discovered) {
        format!(
            "; DNS discovery via {}, re-resolved every {}-{} (record TTL clamped)",
            config
                .resolver
                .nameserver
                .map_or("the system resolver".to_owned(), |r| format!("resolver {r}")),
            cli::format_duration(config.resolver.ttl_min),
            cli::format_duration(config.resolver.ttl_max),
        )
    } else {
        String::new()
    };
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| http_core::connection_capacity(2))
        .max(1);
    format!(
        "rr-proxy on {local}: mode {}; {} backend{} ({}){trust}{discovery}; strategy {}; health check {}; \
         passive ejection {}; timeouts: connect {}, response {}, idle {}, header {}, keep-alive {}; \
         limits: max connections {max_connections}, max attempts {}; admin {}{}; shutdown timeout {}; tls {}; http/2 {}",
        config.mode.as_str(),
        backends.len(),
        if backends.len() == 1 { "" } else { "s" },
        backends.join(", "),
        show_strategy(pool),
        cli::describe_health(pool.health.as_ref()),
        match pool.passive.max_failures {
            0 => "off".to_owned(),
            n => format!(
                "after {n} failures in a row, for {}",
                cli::format_duration(pool.passive.ejection)
            ),
        },
        cli::format_duration(pool.timeouts.connect),
        cli::format_duration(pool.timeouts.response),
        cli::format_duration(pool.timeouts.idle),
        cli::format_duration(config.header_timeout),
        cli::format_duration(config.keep_alive_timeout),
        pool.max_attempts,
        admin.map_or("off".to_owned(), |a| a.to_string()),
        if config.admin_tls { " (https)" } else { "" },
        cli::format_duration(config.shutdown_timeout),
        tls_args(config.tls.as_ref()).describe(tls),
        h2_describe(config.h2c, tls.is_some()),
    )
}

async fn run(
    cli: Cli,
    matches: ArgMatches,
    config: ProxyConfig,
    admin_security: Option<AdminSecurity>,
    stop: cli::Stop,
) -> Result<(), String> {
    let limits = Limits {
        keep_alive_timeout: config.keep_alive_timeout,
        header_timeout: config.header_timeout,
        ..Limits::default()
    };
    let mut builder = Proxy::builder().config(&config).map_err(|e| e.to_string())?;
    let tls_flags = tls_args(config.tls.as_ref());
    let tls = tls_flags.load()?;
    if let Some(tls) = &tls {
        builder = builder.tls(tls.clone());
    }
    let proxy = builder.build().map_err(|e| e.to_string())?;
    let handle = proxy.handle();

    let listener = cli::bind(config.listen).await?;
    let admin = match config.admin {
        Some(addr) => Some(cli::bind(addr).await?),
        None => None,
    };
    let redirect = match tls_flags.redirect_http {
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
    // Watched from before the listening line: a file replaced just after it
    // must be seen as a change, not taken as where the watch starts.
    if let Some(tls) = &tls {
        cli::reload_tls_on_change(tls);
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let admin_scheme = if config.admin_tls { "https" } else { "http" };
    let (trigger, signal) = ShutdownSignal::new();
    tokio::spawn(async move {
        stop.await;
        trigger.trigger();
    });
    let serving = Arc::new(cli::MovingListener::new(
        signal.clone(),
        Box::new(move |l, until| tokio::spawn(proxy.clone().serve(l, until))),
    ));
    serving.serve(listener, local);
    // With a file: SIGHUP and the admin's POST /reload read it again.
    let reloader = cli.config.clone().map(|file| {
        Arc::new(Reloader {
            file,
            cli,
            matches,
            handle: handle.clone(),
            running: Mutex::new(config.clone()),
            listener: serving.clone(),
            scheme,
        })
    });
    if let Some(r) = &reloader {
        let r = r.clone();
        cli::reload_on_hup("the configuration file", move || {
            let _ = r.reload();
        });
    }
    cli::announce_url("rr-proxy", scheme, local);
    if let Some(a) = redirect_addr {
        cli::announce("redirect to https", a);
    }
    if let Some(a) = admin_addr {
        cli::announce_url("admin", admin_scheme, a);
    }
    tracing::info!(
        "{}",
        summary(
            &config,
            local,
            admin_addr,
            tls.as_ref(),
            handle.backend_tls().as_ref()
        )
    );
    if config.pools.len() > 1 || !config.routes.is_empty() {
        // The first line told the first pool's settings; these tell them all.
        for line in describe(&config).lines() {
            tracing::info!("{line}");
        }
    }
    let mut ready = vec![("rr-proxy", scheme, local)];
    ready.extend(redirect_addr.map(|a| ("redirect to https", "http", a)));
    ready.extend(admin_addr.map(|a| ("admin", admin_scheme, a)));
    cli::notify_ready(&ready);

    let admin_tls = if config.admin_tls { tls.clone() } else { None };
    let admin_service = match (admin_addr, admin_security) {
        (Some(addr), Some(security)) => {
            let service = AdminService::new(handle, addr, security).map_err(|e| e.to_string())?;
            Some(match reloader {
                Some(r) => service.with_reload(move || r.reload()),
                None => service,
            })
        }
        _ => None,
    };
    let admin_task = admin.zip(admin_service).map(|(listener, service)| {
        let mut s = signal.clone();
        let server = http_core::Server::new(service).shutdown_timeout(Duration::from_secs(2));
        let server = match admin_tls {
            Some(tls) => server.tls(tls),
            None => server,
        };
        tokio::spawn(async move { server.serve(listener, async move { s.triggered().await }).await })
    });
    let redirect_task = redirect.map(|listener| {
        let mut s = signal.clone();
        let server = http_core::Server::new(http_core::RedirectToHttps::new(local.port()))
            .limits(limits)
            .shutdown_timeout(config.shutdown_timeout);
        tokio::spawn(async move { server.serve(listener, async move { s.triggered().await }).await })
    });
    let mut s = signal.clone();
    s.triggered().await;
    let served = serving.finish().await;
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    if let Some(t) = redirect_task {
        let _ = t.await;
    }
    served.map_err(|e| format!("serving failed: {e}"))
}

/// Reads the configuration file again (with the command line's flags over
/// it, as at start) and swaps it in: on SIGHUP and the admin's `POST /reload`.
struct Reloader {
    file: PathBuf,
    cli: Cli,
    matches: ArgMatches,
    handle: rr_proxy::ProxyHandle,
    /// The configuration in force, for what only a restart can change.
    running: Mutex<ProxyConfig>,
    /// Where the proxy listens: a new `listen` moves it.
    listener: Arc<cli::MovingListener>,
    scheme: &'static str,
}

impl Reloader {
    /// What changed, or why nothing did (also logged and counted).
    fn reload(&self) -> Result<String, String> {
        let file = self.file.display();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = match configure(&self.cli, &self.matches) {
            Err(Failure::Usage(e) | Failure::Config(e)) => {
                self.handle.reload_failed(&e);
                Err(e)
            }
            Ok(new) => match needs_restart(&running, &new) {
                Some(key) => {
                    let e = format!("{key}: changing it needs a restart (the running configuration is kept)");
                    self.handle.reload_failed(&e);
                    Err(e)
                }
                None => {
                    // The new address is bound before anything changes, so
                    // that a port in use fails the reload as a whole.
                    let moved = if new.listen == running.listen {
                        Ok(None)
                    } else {
                        cli::bind_now(new.listen).map(Some).map_err(|e| {
                            let e = format!("listen: {e}");
                            self.handle.reload_failed(&e);
                            e
                        })
                    };
                    match moved.and_then(|l| {
                        self.handle
                            .reload(&new)
                            .map(|d| (l, d))
                            .map_err(|e| e.to_string())
                    }) {
                        Ok((moved, done)) => {
                            let mut message = done.to_string();
                            if let Some(l) = moved {
                                match l.local_addr() {
                                    Ok(addr) => {
                                        self.listener.serve(l, addr);
                                        cli::announce_url("rr-proxy", self.scheme, addr);
                                        message.push_str(&format!("; now listening on {addr}"));
                                    }
                                    Err(e) => tracing::warn!("the new listener has no address: {e}"),
                                }
                            }
                            *running = new;
                            Ok(message)
                        }
                        Err(e) => Err(e),
                    }
                }
            },
        };
        match &outcome {
            Ok(done) => tracing::info!("configuration reloaded from {file}: {done}"),
            Err(e) => tracing::warn!("configuration not reloaded from {file}, the running one is kept: {e}"),
        }
        outcome
    }
}

/// The first setting of the program's own (the admin and redirect
/// listeners, the admin's security, TLS files, threads, log format) that
/// `new` changes: those need a restart. `listen` moves (but not beside a
/// redirect listener, which points at its port).
fn needs_restart(old: &ProxyConfig, new: &ProxyConfig) -> Option<&'static str> {
    // The redirect listener sends clients to the proxy's port.
    let redirecting = old.tls.as_ref().is_some_and(|t| t.redirect_http.is_some());
    [
        ("listen", redirecting && old.listen != new.listen),
        ("admin", old.admin != new.admin),
        ("admin_token", old.admin_token != new.admin_token),
        ("admin_hosts", old.admin_hosts != new.admin_hosts),
        ("admin_tls", old.admin_tls != new.admin_tls),
        ("threads", old.threads != new.threads),
        ("log_format", old.log_format != new.log_format),
        ("tls", old.tls != new.tls),
    ]
    .into_iter()
    .find_map(|(key, changed)| changed.then_some(key))
}
