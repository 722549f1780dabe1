//! `static-server`: serve a directory over HTTP/1.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Parser, Subcommand, ValueEnum};

use http_core::{Limits, ShutdownSignal};
use static_server::config::{ConfigError, SiteSet, StaticConfig};
use static_server::{Coding, CompressionLevel, HeaderRule, StaticFiles, SymlinkPolicy};

/// Static-file server: serves one directory over HTTP/1.1 (safe paths,
/// validators, ranges, small files from memory).
#[derive(Parser, Debug)]
#[command(
    name = "static-server",
    version,
    long_about = None,
    after_help = cli::after_help(&[cli::ADDR_HELP, cli::DURATION_HELP, cli::SIZE_HELP, CONFIG_HELP]),
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Read the settings and the sites from this TOML file (see the README);
    /// a flag given on the command line overrides the file's top-level value.
    /// SIGHUP reloads it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory to serve.
    #[arg(long, value_name = "DIR", default_value = "static")]
    root: PathBuf,
    /// Address to listen on: IP:PORT, :PORT or PORT (all IPv4 addresses); port
    /// 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = cli::parse_listen)]
    listen: SocketAddr,
    /// Worker threads, 1 or more (default: one per core).
    #[arg(long, value_name = "N", value_parser = cli::parse_threads)]
    threads: Option<usize>,
    /// Log line format: text, or json (one JSON object per line, access lines included).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    log_format: cli::LogFormat,
    /// Adds `X-Served-By: NAME` to every response.
    #[arg(long, value_name = "NAME")]
    server_id: Option<String>,
    /// Listing for directories without an index file: HTML sortable by name,
    /// size and time (?sort=size&order=desc), JSON with ?format=json or
    /// Accept: application/json.
    #[arg(long)]
    listing: bool,
    /// Index file names tried for a directory, in order.
    #[arg(long = "index", value_name = "NAME", default_values_t = ["index.html".to_string()])]
    index: Vec<String>,
    /// Symbolic links: follow those that stay under the root, or never follow.
    #[arg(long, value_enum, default_value_t = Symlinks::WithinRoot)]
    symlinks: Symlinks,
    /// Serve names starting with a dot (hidden by default, except /.well-known/).
    #[arg(long)]
    dotfiles: bool,
    /// Do not serve FILE.zst / FILE.br / FILE.gz to clients that accept them.
    #[arg(long)]
    no_precompressed: bool,
    /// Codings to compress text, scripts, styles, JSON, SVG, XML and wasm with
    /// on the fly, in order of preference: a comma-separated list of zstd, br,
    /// gzip, or `none` to turn compression off.
    #[arg(long, value_name = "LIST", default_value = "zstd,br,gzip", value_parser = parse_compression)]
    compression: Compression,
    /// How hard to compress: fast (zstd/br/gzip level 1), balanced (3/5/6) or
    /// best (19/11/9; files streamed from disk get balanced).
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = Level::Fast)]
    compression_level: Level,
    /// Files shorter than this are sent uncompressed.
    #[arg(long, default_value = "512", value_name = "SIZE", value_parser = cli::parse_size)]
    compression_min_size: u64,
    /// Largest file kept in memory.
    #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = cli::parse_size)]
    cache_max_file: u64,
    /// Memory for cached files in all (0 disables the cache).
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = cli::parse_size)]
    cache_size: u64,
    /// How long a cached file is trusted before its size and mtime are checked
    /// again (0: every time) [default: 1s].
    #[arg(long, value_name = "DUR", value_parser = cli::parse_duration_or_zero)]
    revalidate: Option<Duration>,
    /// The same as --revalidate, in milliseconds (the older form).
    #[arg(long, value_name = "MS", conflicts_with = "revalidate")]
    revalidate_ms: Option<u64>,
    /// Extra response header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// A header for the files a glob matches (repeatable; later rules win):
    /// 'GLOB[,GLOB]: Name: value', e.g. '*.css,*.js: Cache-Control: public,
    /// max-age=31536000, immutable'. A glob without / matches the file name,
    /// one with / the path from the root ('/assets/**').
    #[arg(long = "header-rule", value_name = "RULE", value_parser = parse_header_rule)]
    header_rules: Vec<HeaderRule>,
    /// A file under the root (e.g. index.html) served with 200 to GET/HEAD of
    /// absent paths without an extension, as single-page apps need.
    #[arg(long, value_name = "FILE", value_parser = parse_page_file)]
    fallback: Option<PathBuf>,
    /// Extensions of absent paths that also get the --fallback file
    /// (comma-separated, e.g. html,htm) [default: none].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    fallback_extensions: Vec<String>,
    /// A file under the root served as the body of the answers with STATUS
    /// (400-599), e.g. 404=errors/404.html (repeatable).
    #[arg(long = "error-page", value_name = "STATUS=FILE", value_parser = parse_error_page)]
    error_pages: Vec<(u16, PathBuf)>,
    /// How long a client may take to send a request head once it has started.
    #[arg(long, default_value = "10s", value_name = "DUR", value_parser = cli::parse_duration)]
    header_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    #[arg(long, default_value = "60s", value_name = "DUR", value_parser = cli::parse_duration)]
    keep_alive_timeout: Duration,
    /// Most connections served at once (default: what the open-file limit
    /// allows, at most 25000). At the limit, idle keep-alive connections are
    /// closed to make room for new clients.
    #[arg(long, value_name = "N", value_parser = cli::parse_count)]
    max_connections: Option<usize>,
    /// After SIGINT or SIGTERM, how long requests in flight may take to finish
    /// before their connections are closed.
    #[arg(long, default_value = "10s", value_name = "DUR", value_parser = cli::parse_duration)]
    shutdown_timeout: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics on a listener of their
    /// own (read-only counts; keep ADDR on loopback or an internal network).
    #[arg(long, value_name = "ADDR", value_parser = cli::parse_listen)]
    metrics: Option<SocketAddr>,
    /// Serve the metrics listener over HTTPS too, with the --tls-cert
    /// certificates (default: plain HTTP, for a loopback or internal address).
    #[arg(long, requires = "metrics")]
    metrics_tls: bool,
    #[command(flatten)]
    tls: cli::TlsArgs,
    #[command(flatten)]
    h2: cli::H2Args,
}

/// How `--config` and the flags combine, for `--help`.
const CONFIG_HELP: &str = "With --config FILE, the file gives every setting the flags give plus sites by host name \
     ([[site]] tables); a flag given on the command line overrides the file's top-level value (the default site's \
     and the defaults every [[site]] inherits), a flag left out leaves the file's value, and a key the file leaves out \
     takes the flag's default. \
     `static-server check --config FILE` checks the file without binding anything.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a configuration file (keys, types, roots, pages, rules) without
    /// binding anything: print a summary and exit 0, or one line
    /// `FILE:LINE:COLUMN: key: message` and exit 1.
    Check {
        /// The TOML file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn parse_header_rule(s: &str) -> Result<HeaderRule, String> {
    s.parse().map_err(|e: static_server::RuleError| e.to_string())
}

fn parse_page_file(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("expected a file under the root, e.g. index.html".to_owned());
    }
    Ok(PathBuf::from(s))
}

/// `STATUS=FILE`, STATUS in 400-599.
fn parse_error_page(s: &str) -> Result<(u16, PathBuf), String> {
    let (status, file) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected STATUS=FILE, e.g. 404=errors/404.html"))?;
    let status: u16 = status
        .trim()
        .parse()
        .ok()
        .filter(|n| (400..=599).contains(n))
        .ok_or_else(|| format!("{s:?}: STATUS must be a number from 400 to 599"))?;
    Ok((status, parse_page_file(file)?))
}

/// The codings of `--compression`, in order (empty: off).
#[derive(Clone, Debug)]
struct Compression(Vec<Coding>);

/// `zstd,br,gzip` (any order, each at most once), or `none`.
fn parse_compression(s: &str) -> Result<Compression, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(Compression(Vec::new()));
    }
    let mut list = Vec::new();
    for item in s.split(',') {
        let c: Coding = item.parse().map_err(|e| format!("{e}, or none"))?;
        if list.contains(&c) {
            return Err(format!("{c} is listed twice"));
        }
        list.push(c);
    }
    Ok(Compression(list))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Level {
    Fast,
    Balanced,
    Best,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Symlinks {
    WithinRoot,
    Never,
}

fn main() -> ExitCode {
    let (mut args, matches): (Args, ArgMatches) = cli::parse_args_with_matches();
    if let Some(Command::Check { config }) = &args.command {
        return check(config);
    }
    let config = match &args.config {
        Some(path) => match load(path, &args, &matches) {
            Ok(cfg) => {
                let s = &cfg.server;
                if let Some(a) = s.listen {
                    args.listen = a;
                }
                args.metrics = s.metrics.or(args.metrics);
                args.threads = s.threads.or(args.threads);
                if !s.tls.is_empty() && !given(&matches, "tls_cert") && !given(&matches, "tls_key") {
                    args.tls.tls_cert = s.tls.iter().map(|(c, _)| c.clone()).collect();
                    args.tls.tls_key = s.tls.iter().map(|(_, k)| k.clone()).collect();
                }
                args.tls.redirect_http = s.redirect_http.or(args.tls.redirect_http);
                args.tls.hsts = s.hsts.or(args.tls.hsts);
                args.metrics_tls = s.metrics_tls.unwrap_or(args.metrics_tls);
                if let Some(f) = &s.log_format {
                    args.log_format = if f == "json" {
                        cli::LogFormat::Json
                    } else {
                        cli::LogFormat::Text
                    };
                }
                Some(cfg)
            }
            Err(e) => return cli::fail(e),
        },
        None => None,
    };
    if !args.fallback_extensions.is_empty() && args.fallback.is_none() && args.config.is_none() {
        return cli::fail_usage("--fallback-extensions is given without --fallback (see --help)");
    }
    if let Err(e) = args.tls.check() {
        return cli::fail_usage(e);
    }
    if args.metrics_tls && !args.tls.enabled() {
        return cli::fail_usage("--metrics-tls needs --tls-cert and --tls-key");
    }
    if let Err(e) = cli::init_logging("info", args.log_format) {
        return cli::fail_usage(e);
    }
    let threads = args.threads;
    match config {
        Some(cfg) => cli::run(threads, |stop| run_config(args, matches, cfg, stop)),
        None => cli::run(threads, |stop| run(args, stop)),
    }
}

/// `static-server check --config FILE`.
fn check(path: &std::path::Path) -> ExitCode {
    let checked = StaticConfig::load(path).and_then(|cfg| cfg.build().map(|set| (cfg, set)));
    let (cfg, set) = match checked {
        Ok(both) => both,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let s = &cfg.server;
    println!("{}: ok", cfg.file);
    println!(
        "listen {}",
        s.listen
            .map_or("127.0.0.1:8080 (default)".to_owned(), |a| a.to_string())
    );
    println!(
        "metrics {}",
        s.metrics.map_or("off".to_owned(), |a| a.to_string())
    );
    if s.tls.is_empty() {
        println!("tls off");
    } else {
        let certs: Vec<String> = s.tls.iter().map(|(c, _)| c.display().to_string()).collect();
        println!(
            "tls {} (redirect from {}, hsts {})",
            certs.join(","),
            s.redirect_http.map_or("off".to_owned(), |a| a.to_string()),
            s.hsts.map_or("off".to_owned(), |h| format!("max-age={h}"))
        );
    }
    for line in set.summary() {
        println!("site {line}");
    }
    if set.summary().iter().all(|l| !l.starts_with("default ")) {
        println!("other hosts: 421 Misdirected Request (no top-level root)");
    }
    ExitCode::SUCCESS
}

/// Was `id` given on the command line (not its default)?
fn given(m: &ArgMatches, id: &str) -> bool {
    m.value_source(id) == Some(ValueSource::CommandLine)
}

/// Reads the file and lays the flags given on the command line over it.
fn load(path: &std::path::Path, args: &Args, m: &ArgMatches) -> Result<StaticConfig, ConfigError> {
    let mut cfg = StaticConfig::load(path)?;
    let s = &mut cfg.server;
    if given(m, "listen") {
        s.listen = Some(args.listen);
    }
    if given(m, "metrics") {
        s.metrics = args.metrics;
    }
    if given(m, "threads") {
        s.threads = args.threads;
    }
    if given(m, "header_timeout") {
        s.header_timeout = Some(args.header_timeout);
    }
    if given(m, "keep_alive_timeout") {
        s.keep_alive_timeout = Some(args.keep_alive_timeout);
    }
    if given(m, "shutdown_timeout") {
        s.shutdown_timeout = Some(args.shutdown_timeout);
    }
    if given(m, "max_connections") {
        s.max_connections = args.max_connections;
    }
    if (given(m, "tls_cert") || given(m, "tls_key")) && args.tls.tls_cert.len() == args.tls.tls_key.len() {
        s.tls = args
            .tls
            .tls_cert
            .iter()
            .cloned()
            .zip(args.tls.tls_key.iter().cloned())
            .collect();
    }
    if given(m, "redirect_http") {
        s.redirect_http = args.tls.redirect_http;
    }
    if given(m, "hsts") {
        s.hsts = args.tls.hsts;
    }
    if given(m, "metrics_tls") {
        s.metrics_tls = Some(args.metrics_tls);
    }
    if given(m, "log_format") {
        s.log_format = Some(format!("{:?}", args.log_format).to_lowercase());
    }
    let d = &mut cfg.defaults;
    if given(m, "listing") {
        d.listing = Some(true);
    }
    if given(m, "dotfiles") {
        d.dotfiles = Some(true);
    }
    if given(m, "no_precompressed") {
        d.precompressed = Some(false);
    }
    if given(m, "index") {
        d.index = Some(args.index.clone());
    }
    if given(m, "symlinks") {
        d.symlinks = Some(symlink_policy(args.symlinks));
    }
    if given(m, "compression") {
        d.compression = Some(args.compression.0.clone());
    }
    if given(m, "compression_level") {
        d.compression_level = Some(level(args.compression_level));
    }
    if given(m, "compression_min_size") {
        d.compression_min_size = Some(args.compression_min_size);
    }
    if given(m, "cache_max_file") {
        d.cache_max_file = Some(args.cache_max_file);
    }
    if given(m, "cache_size") {
        d.cache_size = Some(args.cache_size);
    }
    if given(m, "revalidate") || given(m, "revalidate_ms") {
        d.revalidate = args.revalidate.or(args.revalidate_ms.map(Duration::from_millis));
    }
    if given(m, "server_id") {
        d.server_id = args.server_id.clone();
    }
    if given(m, "headers") {
        let mut list = Vec::new();
        for h in &args.headers {
            let (n, v) = h.split_once(':').ok_or_else(|| ConfigError {
                file: cfg.file.clone(),
                line: 0,
                column: 0,
                key: "--header".to_owned(),
                message: format!("{h:?}: expected `Name: value`"),
            })?;
            list.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        d.headers = Some(list);
    }
    if given(m, "header_rules") {
        d.header_rules = Some(args.header_rules.clone());
    }
    if given(m, "fallback") {
        d.fallback = args.fallback.clone();
    }
    if given(m, "fallback_extensions") {
        d.fallback_extensions = Some(args.fallback_extensions.clone());
    }
    if given(m, "error_pages") {
        d.error_pages = Some(args.error_pages.clone());
    }
    if given(m, "root") {
        cfg.set_root_from_command_line(args.root.clone());
    }
    Ok(cfg)
}

fn symlink_policy(s: Symlinks) -> SymlinkPolicy {
    match s {
        Symlinks::WithinRoot => SymlinkPolicy::WithinRoot,
        Symlinks::Never => SymlinkPolicy::Never,
    }
}

fn level(l: Level) -> CompressionLevel {
    match l {
        Level::Fast => CompressionLevel::Fast,
        Level::Balanced => CompressionLevel::Balanced,
        Level::Best => CompressionLevel::Best,
    }
}

/// Serving a configuration file: its sites by host name, reloaded on SIGHUP.
async fn run_config(
    args: Args,
    matches: ArgMatches,
    cfg: StaticConfig,
    stop: cli::Stop,
) -> Result<(), String> {
    let tls = args.tls.load()?;
    let mut set = cfg.build().map_err(|e| e.to_string())?;
    if let Some(tls) = &tls {
        set = set.with_tls(tls.clone());
    }
    let set = set.with_h2c(args.h2.h2c);
    let files = StaticFiles::from_sites(set).map_err(|e| e.to_string())?;
    let bound = Listeners::bind(&args, tls.as_ref()).await?;
    let addr = bound.addr;
    let sites = files
        .current_sites()
        .map(|s| s.summary().join("; "))
        .unwrap_or_default();
    tracing::info!(
        "static-server on {addr}: configuration {}; sites: {sites}; tls {}; http/2 {}",
        cfg.file,
        args.tls.describe(tls.as_ref()),
        args.h2.describe(tls.is_some())
    );
    bound.notify_ready();
    let path = args.config.clone().unwrap_or_default();
    let reloading = files.clone();
    let scheme = bound.scheme;
    let running_listen = Mutex::new(cfg.server.listen);
    bound
        .serve(files, stop, move |listener| {
            cli::reload_on_hup("the configuration file", move || {
                // A new address is bound while the file is read, before
                // anything changes: a port in use fails the reload as a whole.
                let mut moved = None;
                let result = reloading.reload_with(|| {
                    let cfg = load(&path, &args, &matches)?;
                    let listen = cfg.server.listen;
                    if listen != *running_listen.lock().unwrap_or_else(|e| e.into_inner()) {
                        let addr = listen.unwrap_or(DEFAULT_LISTEN);
                        let bound = cli::bind_now(addr).map_err(|message| ConfigError {
                            file: cfg.file.clone(),
                            line: 0,
                            column: 0,
                            key: "listen".into(),
                            message,
                        })?;
                        moved = Some((listen, bound));
                    }
                    let set: SiteSet = cfg.build()?;
                    Ok(match &tls {
                        Some(tls) => set.with_tls(tls.clone()),
                        None => set,
                    })
                });
                match result {
                    Ok(()) => {
                        if let Some((listen, bound)) = moved {
                            match bound.local_addr() {
                                Ok(addr) => {
                                    listener.serve(bound, addr);
                                    cli::announce_url("static-server", scheme, addr);
                                    *running_listen.lock().unwrap_or_else(|e| e.into_inner()) = listen;
                                }
                                Err(e) => tracing::warn!("the new listener has no address: {e}"),
                            }
                        }
                        let sites = reloading
                            .current_sites()
                            .map(|s| s.summary().join("; "))
                            .unwrap_or_default();
                        tracing::info!("configuration reloaded from {}: sites: {sites}", path.display());
                    }
                    Err(e) => tracing::warn!("configuration not reloaded, the running one is kept: {e}"),
                }
            });
        })
        .await
}

/// `--listen`'s default, for a file that gives no `listen`.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// The start-up summary: what this instance serves and how.
fn summary(
    args: &Args,
    files: &StaticFiles,
    addr: SocketAddr,
    revalidate: Duration,
    metrics: Option<SocketAddr>,
) -> String {
    let tls = args.tls.describe(files.tls());
    let on_off = |b: bool| if b { "on" } else { "off" };
    let cache = if args.cache_size == 0 {
        "off".to_owned()
    } else {
        format!(
            "files up to {} ({} in all, checked every {})",
            cli::format_size(args.cache_max_file),
            cli::format_size(args.cache_size),
            cli::format_duration(revalidate)
        )
    };
    let max_connections = args
        .max_connections
        .unwrap_or_else(|| http_core::connection_capacity(1))
        .max(1);
    let compression = if args.compression.0.is_empty() {
        "off".to_owned()
    } else {
        let list: Vec<&str> = args.compression.0.iter().map(|c| c.token()).collect();
        format!(
            "{} ({}, files from {})",
            list.join(","),
            format!("{:?}", args.compression_level).to_lowercase(),
            cli::format_size(args.compression_min_size)
        )
    };
    format!(
        "static-server on {addr}: root {}; listing {}; index {}; symlinks {}; dotfiles {}; precompressed {}; \
         compression {compression}; cache {cache}; limits: max connections {max_connections}, header timeout {}, keep-alive {}; \
         shutdown timeout {}; server id {}; metrics {}{}; header rules {}; fallback {}; error pages {}; tls {tls}; http/2 {}",
        files.root().display(),
        on_off(args.listing),
        args.index.join(","),
        match args.symlinks {
            Symlinks::WithinRoot => "within-root",
            Symlinks::Never => "never",
        },
        on_off(args.dotfiles),
        on_off(!args.no_precompressed),
        cli::format_duration(args.header_timeout),
        cli::format_duration(args.keep_alive_timeout),
        cli::format_duration(args.shutdown_timeout),
        args.server_id.as_deref().unwrap_or("none"),
        metrics.map_or("off".to_owned(), |a| a.to_string()),
        if args.metrics_tls { " (https)" } else { "" },
        args.header_rules.len(),
        args.fallback
            .as_ref()
            .map_or("off".to_owned(), |f| f.display().to_string()),
        if args.error_pages.is_empty() {
            "none".to_owned()
        } else {
            args.error_pages
                .iter()
                .map(|(s, f)| format!("{s}={}", f.display()))
                .collect::<Vec<_>>()
                .join(",")
        },
        args.h2.describe(files.tls().is_some()),
    )
}

async fn run(args: Args, stop: cli::Stop) -> Result<(), String> {
    let revalidate = args
        .revalidate
        .or(args.revalidate_ms.map(Duration::from_millis))
        .unwrap_or(Duration::from_secs(1));
    let mut builder = StaticFiles::builder(&args.root)
        .listing(args.listing)
        .index_files(args.index.iter().cloned())
        .symlinks(match args.symlinks {
            Symlinks::WithinRoot => SymlinkPolicy::WithinRoot,
            Symlinks::Never => SymlinkPolicy::Never,
        })
        .dotfiles(args.dotfiles)
        .precompressed(!args.no_precompressed)
        .compression(args.compression.0.iter().copied())
        .compression_level(match args.compression_level {
            Level::Fast => CompressionLevel::Fast,
            Level::Balanced => CompressionLevel::Balanced,
            Level::Best => CompressionLevel::Best,
        })
        .compression_min_size(args.compression_min_size)
        .cache(args.cache_max_file, args.cache_size)
        .revalidate_after(revalidate)
        .shutdown_timeout(args.shutdown_timeout)
        .limits(Limits {
            header_timeout: args.header_timeout,
            keep_alive_timeout: args.keep_alive_timeout,
            ..Limits::default()
        });
    if let Some(n) = args.max_connections {
        builder = builder.max_connections(n);
    }
    if let Some(id) = &args.server_id {
        builder = builder.server_id(id);
    }
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected `Name: value`"))?;
        builder = builder.header(name.trim(), value.trim());
    }
    for rule in &args.header_rules {
        builder = builder.header_rule(rule.clone());
    }
    if let Some(file) = &args.fallback {
        builder = builder
            .fallback(file)
            .fallback_extensions(args.fallback_extensions.iter().cloned());
    }
    for (status, file) in &args.error_pages {
        builder = builder.error_page(*status, file);
    }
    let tls = args.tls.load()?;
    if let Some(tls) = &tls {
        builder = builder.tls(tls.clone());
    }
    builder = builder.h2c(args.h2.h2c);
    let files = builder.build().map_err(|e| e.to_string())?;
    let bound = Listeners::bind(&args, tls.as_ref()).await?;
    tracing::info!(
        "{}",
        summary(&args, &files, bound.addr, revalidate, bound.metrics_addr)
    );
    bound.notify_ready();

    bound.serve(files, stop, |_| {}).await
}

/// The file, metrics and redirect listeners, bound and announced.
struct Listeners {
    files: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    redirect: Option<tokio::net::TcpListener>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    redirect_addr: Option<SocketAddr>,
    scheme: &'static str,
    metrics_scheme: &'static str,
    metrics_tls: bool,
}

impl Listeners {
    /// Binds the listeners the flags ask for, starts watching the TLS files
    /// and prints the listening lines.
    async fn bind(args: &Args, tls: Option<&http_core::TlsConfig>) -> Result<Listeners, String> {
        let files = cli::bind(args.listen).await?;
        let metrics = match args.metrics {
            Some(a) => Some(cli::bind(a).await?),
            None => None,
        };
        let redirect = match args.tls.redirect_http {
            Some(a) => Some(cli::bind(a).await?),
            None => None,
        };
        let local = |l: &Option<tokio::net::TcpListener>| {
            l.as_ref()
                .map(|l| l.local_addr().map_err(|e| e.to_string()))
                .transpose()
        };
        let addr = files.local_addr().map_err(|e| e.to_string())?;
        let metrics_addr = local(&metrics)?;
        let redirect_addr = local(&redirect)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let metrics_scheme = if args.metrics_tls { "https" } else { "http" };
        // Watched from before the listening line: a file replaced as soon as a
        // client sees that line is a change, not the state the watch starts from.
        if let Some(tls) = tls {
            cli::reload_tls_on_change(tls);
        }
        cli::announce_url("static-server", scheme, addr);
        if let Some(a) = redirect_addr {
            cli::announce("redirect to https", a);
        }
        if let Some(a) = metrics_addr {
            cli::announce_url("metrics", metrics_scheme, a);
            if !a.ip().is_loopback() {
                tracing::warn!("metrics on {a} can be read by anyone who reaches that address");
            }
        }
        Ok(Listeners {
            files,
            metrics,
            redirect,
            addr,
            metrics_addr,
            redirect_addr,
            scheme,
            metrics_scheme,
            metrics_tls: args.metrics_tls,
        })
    }

    /// Tells systemd (`Type=notify`) the listeners are ready.
    fn notify_ready(&self) {
        let mut ready = vec![("static-server", self.scheme, self.addr)];
        ready.extend(self.redirect_addr.map(|a| ("redirect to https", "http", a)));
        ready.extend(self.metrics_addr.map(|a| ("metrics", self.metrics_scheme, a)));
        cli::notify_ready(&ready);
    }

    /// Serves `files` until `stop`, then drains. The metrics and redirect
    /// listeners run until the file server has drained: a scrape during the
    /// drain still sees the numbers move. `started` gets the file listener
    /// once it is served (a reload may move it).
    async fn serve(
        self,
        files: StaticFiles,
        stop: cli::Stop,
        started: impl FnOnce(Arc<cli::MovingListener>),
    ) -> Result<(), String> {
        let port = self.addr.port();
        let (trigger, signal) = ShutdownSignal::new();
        tokio::spawn(async move {
            stop.await;
            trigger.trigger();
        });
        let serving = files.clone();
        let listener = Arc::new(cli::MovingListener::new(
            signal.clone(),
            Box::new(move |l, until| tokio::spawn(serving.clone().serve(l, until))),
        ));
        listener.serve(self.files, self.addr);
        started(listener.clone());
        let metrics_task = self.metrics.map(|listener| {
            let mut m = files.metrics();
            if let (true, Some(tls)) = (self.metrics_tls, files.tls()) {
                m = m.tls(tls.clone());
            }
            tokio::spawn(m.serve(listener, std::future::pending()))
        });
        let redirect_task = self.redirect.map(|listener| {
            let files = files.clone();
            tokio::spawn(async move {
                files
                    .serve_https_redirect(listener, port, std::future::pending())
                    .await
            })
        });
        let mut s = signal;
        s.triggered().await;
        let served = listener.finish().await;
        for t in [metrics_task, redirect_task].into_iter().flatten() {
            t.abort();
            let _ = t.await;
        }
        served.map_err(|e| format!("server failed: {e}"))
    }
}
