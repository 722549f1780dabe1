//! `static-server`: serve a directory over HTTP/1.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use http_core::Limits;
use static_server::{StaticFiles, SymlinkPolicy};

#[derive(Parser, Debug)]
#[command(
    name = "static-server",
    version,
    about = "Serve a directory over HTTP/1.1",
    after_help = cli::DURATION_HELP
)]
struct Args {
    /// Directory to serve.
    #[arg(long, default_value = "static")]
    root: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Log line format: text, or json (one JSON object per line, access lines included).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    log_format: cli::LogFormat,
    /// Adds `X-Served-By: NAME` to every response.
    #[arg(long, value_name = "NAME")]
    server_id: Option<String>,
    /// HTML listing for directories without an index file.
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
    /// Do not serve FILE.br / FILE.gz to clients that accept them.
    #[arg(long)]
    no_precompressed: bool,
    /// Largest file kept in memory, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    cache_max_file: u64,
    /// Memory for cached files in all, in bytes (0 disables the cache).
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
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
    /// How long a client may take to send a request head once it has started.
    #[arg(long, default_value = "10s", value_name = "DUR", value_parser = cli::parse_duration)]
    header_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    #[arg(long, default_value = "60s", value_name = "DUR", value_parser = cli::parse_duration)]
    keep_alive_timeout: Duration,
    /// Most connections served at once (default: what the open-file limit
    /// allows, at most 25000). At the limit, idle keep-alive connections are
    /// closed to make room for new clients.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Symlinks {
    WithinRoot,
    Never,
}

fn main() -> ExitCode {
    let args: Args = cli::parse_args();
    cli::init_logging("info", args.log_format);
    let threads = args.threads;
    cli::run(threads, run(args))
}

async fn run(args: Args) -> Result<(), String> {
    let mut builder = StaticFiles::builder(&args.root)
        .listing(args.listing)
        .index_files(args.index)
        .symlinks(match args.symlinks {
            Symlinks::WithinRoot => SymlinkPolicy::WithinRoot,
            Symlinks::Never => SymlinkPolicy::Never,
        })
        .dotfiles(args.dotfiles)
        .precompressed(!args.no_precompressed)
        .cache(args.cache_max_file, args.cache_size)
        .revalidate_after(
            args.revalidate
                .or(args.revalidate_ms.map(Duration::from_millis))
                .unwrap_or(Duration::from_secs(1)),
        )
        .limits(Limits {
            header_timeout: args.header_timeout,
            keep_alive_timeout: args.keep_alive_timeout,
            ..Limits::default()
        });
    if let Some(n) = args.max_connections {
        builder = builder.max_connections(n);
    }
    if let Some(id) = args.server_id {
        builder = builder.server_id(id);
    }
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected `Name: value`"))?;
        builder = builder.header(name.trim(), value.trim());
    }
    let files = builder.build().map_err(|e| e.to_string())?;
    let listener = cli::bind(args.listen).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Installed before the address is announced: see `cli::shutdown_signal`.
    let stop = cli::shutdown_signal();
    cli::announce("static-server", addr);
    tracing::info!(root = %files.root().display(), "serving");
    files
        .serve(listener, stop)
        .await
        .map_err(|e| format!("server failed: {e}"))
}
