//! Glue shared by the binaries: runtime, logging, signals, listeners, errors.
//! No HTTP logic lives here; that is in the library crates.

use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

mod listener;
mod logfmt;
mod strategy;

pub use listener::{bind_now, MovingListener, ServeFn, Until};
pub use logfmt::LogFormat;
pub use strategy::StrategyArgs;

/// Log lines waiting to be written to stderr. Writing each line with its own
/// system call would cost as much as serving the request it describes, so lines
/// are gathered and written together: when 32 KiB have gathered, every 100 ms, and
/// at exit ([`flush_logs`]).
static LOG_BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
const LOG_FLUSH_AT: usize = 32 * 1024;
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Writes what has gathered in the log buffer to stderr.
pub fn flush_logs() {
    let pending = std::mem::take(&mut *LOG_BUFFER.lock().unwrap_or_else(|p| p.into_inner()));
    if !pending.is_empty() {
        let _ = std::io::stderr().lock().write_all(&pending);
    }
}

struct BufferedStderr;

impl Write for BufferedStderr {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut buf = LOG_BUFFER.lock().unwrap_or_else(|p| p.into_inner());
            buf.extend_from_slice(data);
            buf.len() >= LOG_FLUSH_AT
        };
        if full {
            flush_logs();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts logging to stderr in `format` (`--log-format`; for the access lines
/// too, through `http_core::server::set_access_log_format`). `RUST_LOG` sets the
/// filter; `default` applies when it is unset or empty. Each request's access
/// line is at info level, target `access`. A `RUST_LOG` that is not a valid
/// filter is an error (one line naming it), not silently replaced by the
/// default: an operator who asked for debug output and got none would look in
/// the wrong place.
pub fn init_logging(default: &str, format: LogFormat) -> Result<(), String> {
    let filter = log_filter(std::env::var_os("RUST_LOG").as_deref(), default)?;
    http_core::server::set_access_log_format(match format {
        LogFormat::Text => http_core::AccessLogFormat::Text,
        LogFormat::Json => http_core::AccessLogFormat::Json,
    });
    let _ = std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(|| loop {
            std::thread::sleep(LOG_FLUSH_EVERY);
            flush_logs();
        });
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BufferedStderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => subscriber.event_format(logfmt::LineFormat).init(),
        LogFormat::Json => subscriber.event_format(logfmt::JsonFormat).init(),
    }
    Ok(())
}

/// The log filter from `RUST_LOG`'s value (`None`: unset), or `default`.
fn log_filter(
    rust_log: Option<&std::ffi::OsStr>,
    default: &str,
) -> Result<tracing_subscriber::EnvFilter, String> {
    use tracing_subscriber::EnvFilter;
    let text = match rust_log {
        None => {
            return EnvFilter::try_new(default).map_err(|e| format!("default log filter {default:?}: {e}"))
        }
        Some(v) => v.to_str().ok_or_else(|| {
            format!("RUST_LOG={v:?} is not valid UTF-8; expected a log filter such as info or rr_proxy=debug")
        })?,
    };
    if text.trim().is_empty() {
        return EnvFilter::try_new(default).map_err(|e| format!("default log filter {default:?}: {e}"));
    }
    EnvFilter::try_new(text).map_err(|e| {
        let why = e.to_string();
        let why = why.lines().next().unwrap_or("invalid");
        format!("RUST_LOG={text:?} is not a valid log filter ({why}); expected e.g. info, warn or info,rr_proxy=debug")
    })
}

/// Whether the binary logs JSON (`--log-format json`).
fn json_logs() -> bool {
    http_core::server::access_log_format() == http_core::AccessLogFormat::Json
}

/// Prints `message` on stderr at once, as it is or, with `--log-format json`,
/// as a JSON line like the log's.
pub fn notice(message: &str) {
    flush_logs();
    if json_logs() {
        eprintln!("{}", logfmt::json_line("INFO", message, &[]));
    } else {
        eprintln!("{message}");
    }
}

/// A tokio runtime with `threads` workers (default: one per core). One thread
/// gets the lighter current-thread scheduler.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Resolves once a SIGINT or SIGTERM has asked the process to stop (see
/// [`watch_signals`]). Given to the binary's main future by [`run`].
#[derive(Debug)]
pub struct Stop(tokio::sync::oneshot::Receiver<()>);

impl Future for Stop {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // An error means the watcher is gone, which happens only as the runtime
        // shuts down; stopping is right then too.
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// What every binary does on signals, for `--help` and the README.
pub const SIGNALS_HELP: &str = "Signals: SIGINT or SIGTERM stops accepting, lets requests in flight finish \
     (for at most --shutdown-timeout) and exits 0; a second SIGINT or SIGTERM during that wait exits at once \
     (status 130 or 143). SIGHUP reloads the TLS certificates and keys (--tls-cert, --tls-key) and the configuration file \
     (static-server --config, rr-proxy --config); a bad new file keeps the old ones, with a warning saying why; without either it \
     is logged and ignored. \
     With NOTIFY_SOCKET set (systemd Type=notify) it sends READY=1 once every listener is bound and \
     STOPPING=1 when shutdown starts.";

/// The exit statuses, for `--help` and the README.
pub const EXIT_HELP: &str = "Exit status: 0 after a clean shutdown; 1 when starting or serving fails (missing root, \
     port in use, no backends); 2 for a bad command line (unknown flag, bad value, --threads 0) or a bad RUST_LOG; \
     128 + the signal's number when a second SIGINT or SIGTERM cuts the shutdown short.";

/// The text after a binary's `--help`: `parts` (the formats its flags take)
/// followed by [`SIGNALS_HELP`] and [`EXIT_HELP`], a paragraph each.
pub fn after_help(parts: &[&str]) -> String {
    let mut all: Vec<&str> = parts.to_vec();
    all.extend([SIGNALS_HELP, EXIT_HELP]);
    all.join("\n\n")
}

/// Installs the signal handlers and starts the task that watches them; call it
/// inside the runtime, before anything is bound, so that no signal finds the
/// default action (which for SIGHUP is to die silently with status 129):
///
/// - SIGHUP reloads what [`reload_tls_on_change`] registered (the TLS
///   certificates); with nothing registered it is logged and ignored: a
///   reload signal must never kill a server.
/// - The first SIGINT or SIGTERM resolves the returned [`Stop`] (graceful
///   shutdown: the binary stops accepting and drains within its shutdown
///   timeout) and sends `STOPPING=1` to the service manager ([`sd_notify`]).
/// - A second SIGINT or SIGTERM while that runs exits at once, with a log line
///   and status 128 + the signal's number (130, 143), as a shell reports a
///   process killed by it.
pub fn watch_signals() -> Stop {
    let (tx, rx) = tokio::sync::oneshot::channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (term, int, hup) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        );
        match (term, int) {
            (Ok(term), Ok(int)) => {
                let hup = match hup {
                    Ok(hup) => Some(hup),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot handle SIGHUP");
                        None
                    }
                };
                tokio::spawn(watch_unix(term, int, hup, tx));
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot handle SIGTERM; stopping on Ctrl-C only");
                tokio::spawn(watch_ctrl_c(tx));
            }
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(watch_ctrl_c(tx));
    Stop(rx)
}

#[cfg(unix)]
async fn watch_unix(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
    mut hup: Option<tokio::signal::unix::Signal>,
    tx: tokio::sync::oneshot::Sender<()>,
) {
    let mut tx = Some(tx);
    loop {
        let (name, number) = tokio::select! {
            Some(()) = term.recv() => ("SIGTERM", libc::SIGTERM),
            Some(()) = int.recv() => ("SIGINT", libc::SIGINT),
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                if !reload_all() {
                    tracing::info!("SIGHUP received: nothing to reload (no --tls-cert, no configuration file); ignoring");
                }
                continue;
            }
            else => return,
        };
        match tx.take() {
            Some(tx) => begin_shutdown(name, tx),
            None => exit_at_once(name, 128 + number),
        }
    }
}

async fn watch_ctrl_c(tx: tokio::sync::oneshot::Sender<()>) {
    if tokio::signal::ctrl_c().await.is_err() {
        // No way to be told to stop: keep the sender, so the server runs on.
        std::future::pending::<()>().await;
    }
    begin_shutdown("Ctrl-C", tx);
    if tokio::signal::ctrl_c().await.is_ok() {
        exit_at_once("Ctrl-C", 130);
    }
}

fn begin_shutdown(name: &str, tx: tokio::sync::oneshot::Sender<()>) {
    tracing::info!("{name} received: shutting down gracefully (send it again to exit at once)");
    sd_notify("STOPPING=1\nSTATUS=shutting down");
    let _ = tx.send(());
}

fn exit_at_once(name: &str, status: i32) -> ! {
    tracing::warn!(
        "{name} received again during graceful shutdown: exiting at once, requests in flight are cut off"
    );
    flush_logs();
    std::process::exit(status)
}

/// Sends `state` (`READY=1`, `STOPPING=1`, `STATUS=...`, newline-separated) to
/// the service manager when `NOTIFY_SOCKET` names one, as systemd's
/// `sd_notify(3)` does: a datagram to that Unix socket, a path or, when it
/// starts with `@`, a name in Linux's abstract namespace. Without
/// `NOTIFY_SOCKET` it does nothing; a failure is logged and otherwise ignored
/// (a server that serves is better than one that quits over a status message).
pub fn sd_notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_notification(&socket, state) {
        tracing::warn!(socket = ?socket, error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

#[cfg(unix)]
fn send_notification(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned());
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'/') => {
            sock.send_to(state.as_bytes(), socket)?;
        }
        #[cfg(target_os = "linux")]
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        #[cfg(not(target_os = "linux"))]
        Some(b'@') => return Err(bad("abstract socket names need Linux")),
        _ => return Err(bad("expected an absolute path or @NAME")),
    }
    Ok(())
}

#[cfg(not(unix))]
fn send_notification(_socket: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "NOTIFY_SOCKET needs Unix sockets",
    ))
}

/// Tells the service manager the binary is ready: `READY=1` and a status line
/// naming each listener (`WHO on SCHEME://ADDR`). Call it once every listener is
/// bound and announced.
pub fn notify_ready(listeners: &[(&str, &str, SocketAddr)]) {
    let list: Vec<String> = listeners
        .iter()
        .map(|(who, scheme, a)| format!("{who} on {scheme}://{a}"))
        .collect();
    sd_notify(&format!("READY=1\nSTATUS=listening: {}", list.join(", ")));
}

/// Binds a listener, turning the error into a message that names the address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    http_core::listen(addr).map_err(|e| bind_error(addr, &e))
}

fn bind_error(addr: SocketAddr, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        format!("cannot listen on {addr}: the port is already in use")
    } else {
        format!("cannot listen on {addr}: {e}")
    }
}

/// Prints the line that tells users (and scripts) where the server is, at once.
pub fn announce(what: &str, addr: SocketAddr) {
    announce_url(what, "http", addr)
}

/// [`announce`] with the scheme given: `WHAT listening on SCHEME://ADDR`
/// (`https` for a TLS listener).
pub fn announce_url(what: &str, scheme: &str, addr: SocketAddr) {
    flush_logs();
    let url = format!("{scheme}://{addr}");
    if json_logs() {
        let message = format!("{what} listening on {url}");
        eprintln!("{}", logfmt::json_line("INFO", &message, &[("listening", &url)]));
    } else {
        eprintln!("{what} listening on {url}");
    }
}

/// HTTP/2 on the plain listener, shared by the three binaries.
#[derive(Debug, Clone, clap::Args)]
pub struct H2Args {
    /// Also serve HTTP/2 with prior knowledge (h2c) on the plain listener: a
    /// connection that starts with the HTTP/2 client preface speaks HTTP/2
    /// (`curl --http2-prior-knowledge`), any other HTTP/1.1. Off by default.
    /// The upgrade from HTTP/1.1 (`Upgrade: h2c`) is not supported. Over TLS
    /// (--tls-cert), HTTP/2 is chosen by ALPN whether or not this is given.
    #[arg(long)]
    pub h2c: bool,
}

impl H2Args {
    /// For the start-up summary: how HTTP/2 is served.
    pub fn describe(&self, tls: bool) -> &'static str {
        match (tls, self.h2c) {
            (true, true) => "h2 (ALPN) and h2c",
            (true, false) => "h2 (ALPN)",
            (false, true) => "h2c (prior knowledge)",
            (false, false) => "off",
        }
    }
}

/// The TLS flags every binary takes (flattened into its own).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate
    /// first). Repeatable: the Nth --tls-cert goes with the Nth --tls-key, each
    /// pair answers for the DNS names of its certificate (chosen by SNI), the
    /// first also for clients that name no host or another. Reloaded on SIGHUP
    /// and when the files change.
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Vec<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of the --tls-cert in the
    /// same position.
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Vec<PathBuf>,
    /// With --tls-cert: also listen on ADDR for plain HTTP and answer every
    /// request with 308 to the same URL over HTTPS.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub redirect_http: Option<SocketAddr>,
    /// With --tls-cert: add `Strict-Transport-Security: max-age=SECONDS` to
    /// every HTTPS response (never to plain ones).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=63_072_000))]
    pub hsts: Option<u64>,
}

/// How often the certificate and key files are looked at for changes.
pub const TLS_WATCH_EVERY: Duration = Duration::from_secs(2);

impl TlsArgs {
    /// True when certificates were given.
    pub fn enabled(&self) -> bool {
        !self.tls_cert.is_empty() || !self.tls_key.is_empty()
    }

    /// The command-line mistakes (exit 2): a certificate without its key or
    /// the other way round, --redirect-http or --hsts without certificates.
    pub fn check(&self) -> Result<(), String> {
        let (certs, keys) = (self.tls_cert.len(), self.tls_key.len());
        if certs != keys {
            return Err(format!(
                "--tls-cert and --tls-key come in pairs: {certs} certificate{} and {keys} key{} given",
                if certs == 1 { "" } else { "s" },
                if keys == 1 { "" } else { "s" },
            ));
        }
        if !self.enabled() {
            if self.redirect_http.is_some() {
                return Err(
                    "--redirect-http needs --tls-cert and --tls-key (it sends clients to HTTPS)".into(),
                );
            }
            if self.hsts.is_some() {
                return Err("--hsts needs --tls-cert and --tls-key (it applies to HTTPS responses)".into());
            }
        }
        Ok(())
    }

    /// Loads the certificates (`None` without --tls-cert): one line naming
    /// the file at fault when one cannot be used.
    pub fn load(&self) -> Result<Option<http_core::TlsConfig>, String> {
        if !self.enabled() {
            return Ok(None);
        }
        let pairs: Vec<http_core::CertPair> = self
            .tls_cert
            .iter()
            .zip(&self.tls_key)
            .map(|(c, k)| http_core::CertPair::new(c, k))
            .collect();
        let mut tls =
            http_core::TlsConfig::from_pem_files(&pairs).map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
        if let Some(secs) = self.hsts {
            tls = tls.hsts(Duration::from_secs(secs));
        }
        Ok(Some(tls))
    }

    /// How the summary line describes TLS.
    pub fn describe(&self, tls: Option<&http_core::TlsConfig>) -> String {
        let Some(tls) = tls else {
            return "off".to_owned();
        };
        let names: Vec<String> = tls
            .names()
            .iter()
            .map(|n| {
                if n.is_empty() {
                    "(no DNS names)".to_owned()
                } else {
                    n.join(" ")
                }
            })
            .collect();
        format!(
            "{} certificate{} ({}; the first is the default), TLS 1.3 and 1.2, ALPN {}, HSTS {}, \
             redirect from {}; reloaded on SIGHUP and when the files change",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            http_core::net::ALPN_PROTOCOLS
                .iter()
                .map(|p| String::from_utf8_lossy(p))
                .collect::<Vec<_>>()
                .join(","),
            self.hsts.map_or("off".to_owned(), |s| format!("max-age={s}")),
            self.redirect_http.map_or("off".to_owned(), |a| a.to_string()),
        )
    }
}

/// What SIGHUP reloads: each registered action runs in turn.
type Reloader = (&'static str, Box<dyn Fn() + Send>);
static RELOADERS: Mutex<Vec<Reloader>> = Mutex::new(Vec::new());

/// Reloads `tls`'s certificates on SIGHUP and whenever their files change
/// (looked at every [`TLS_WATCH_EVERY`]); a bad new file keeps the old
/// certificates and logs a warning saying why. Call it inside the runtime.
pub fn reload_tls_on_change(tls: &http_core::TlsConfig) {
    let on_hup = tls.clone();
    RELOADERS.lock().unwrap_or_else(|p| p.into_inner()).push((
        "the TLS certificates",
        Box::new(move || {
            let _ = on_hup.reload();
        }),
    ));
    tokio::spawn(tls.clone().watch_files(TLS_WATCH_EVERY));
}

/// Runs `reload` on SIGHUP (after what was registered before); `what` names
/// it in the log line (`the configuration file`).
pub fn reload_on_hup(what: &'static str, reload: impl Fn() + Send + 'static) {
    RELOADERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((what, Box::new(reload)));
}

/// Runs what SIGHUP reloads; false when nothing is registered.
fn reload_all() -> bool {
    let reloaders = RELOADERS.lock().unwrap_or_else(|p| p.into_inner());
    if !reloaders.is_empty() {
        let what: Vec<&str> = reloaders.iter().map(|(w, _)| *w).collect();
        tracing::info!("SIGHUP received: reloading {}", what.join(" and "));
    }
    for (_, r) in reloaders.iter() {
        r();
    }
    !reloaders.is_empty()
}

/// Raises the soft open-file limit to the hard one, so that the connection cap
/// (sized from it) is reached before `accept` runs out of descriptors.
fn raise_fd_limit() {
    match http_core::raise_fd_limit() {
        Ok(l) if l.now > l.before => {
            tracing::info!("raised the open-file limit from {} to {}", l.before, l.now);
        }
        Ok(l) => tracing::debug!("open-file limit {}", l.now),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// How often freed heap memory is handed back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Hands freed heap memory back to the system every [`TRIM_EVERY`]. glibc's
/// malloc returns memory only from the top of its heap, so after a burst of
/// connections (10,000 answered 408 at once, or held and closed) the server
/// kept most of what they had used: 15 MB of 18 MB for static-server in the
/// hostile-load test, 41 MB for rr-proxy. `malloc_trim` releases every free
/// page in the heap; on a heap of a few MB it takes microseconds.
fn start_memory_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let _ = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_EVERY);
            #[allow(unsafe_code)]
            // SAFETY: malloc_trim takes no pointers and only walks glibc's own
            // heap under its locks; it is safe to call from any thread at any time.
            unsafe {
                libc::malloc_trim(0);
            }
        });
}

/// Runs the future `main` makes on a runtime with `threads` workers, giving it
/// the [`Stop`] of [`watch_signals`] (installed first, so that signals are
/// handled from before anything is bound), and turns an error into one line on
/// stderr and exit code 1.
pub fn run<M, F, E>(threads: Option<usize>, main: M) -> std::process::ExitCode
where
    M: FnOnce(Stop) -> F,
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    raise_fd_limit();
    start_memory_trimmer();
    let rt = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let result = rt.block_on(async move {
        let stop = watch_signals();
        main(stop).await
    });
    drop(rt);
    flush_logs();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Parses the command line. `--help` and `--version` print and exit 0; a bad
/// flag prints one line (clap's first, the error itself) and exits 2.
pub fn parse_args<T: clap::Parser>() -> T {
    parse_args_with_matches().0
}

/// [`parse_args`], also giving clap's matches, from which a binary learns
/// which flags were given on the command line (`--config` precedence).
pub fn parse_args_with_matches<T: clap::Parser>() -> (T, clap::ArgMatches) {
    let parsed = T::command()
        .try_get_matches()
        .and_then(|m| T::from_arg_matches(&m).map(|t| (t, m)));
    match parsed {
        Ok(both) => both,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see --help)");
            std::process::exit(2);
        }
    }
}

/// What a `DUR` flag takes, for the binaries' `--help`.
pub const DURATION_HELP: &str = "DUR is a duration: a number and a unit, e.g. 1500ms, 10s, 2m, 1h30m, 0.5s \
     (units ns, us, ms, s, m, h, d; several may follow each other); a bare number means seconds.";

pub use http_core::units::{parse_duration, parse_duration_or_zero, parse_listen, parse_size, MAX_DURATION};

/// Parses `--threads N`: a whole number from 1 to 1024. Zero workers cannot
/// serve anything, so it is refused rather than quietly taken as one.
///
/// ```
/// assert_eq!(cli::parse_threads("4"), Ok(4));
/// assert!(cli::parse_threads("0").unwrap_err().contains("at least 1"));
/// ```
pub fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1 (leave --threads out for one per core)".to_owned()),
        Ok(n) if n > MAX_THREADS => Err(format!("at most {MAX_THREADS}")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number of threads")),
    }
}

/// The most worker threads `--threads` takes.
pub const MAX_THREADS: usize = 1024;

/// What an address flag (`--listen`, `--admin`) takes, for `--help`.
pub const ADDR_HELP: &str = "ADDR is IP:PORT (127.0.0.1:8080, [::1]:8080), :PORT or a bare PORT; \
     :PORT and PORT mean every IPv4 address (0.0.0.0:PORT), as nginx's `listen 8080` does. \
     Port 0 picks a free port; the `listening on` line gives the real one.";

/// What a `SIZE` flag takes, for `--help`.
pub const SIZE_HELP: &str = "SIZE is a number of bytes with an optional unit: KiB, MiB, GiB, TiB (powers of 1024; \
     K, M, G, T mean the same, as in nginx), or kB, MB, GB, TB (powers of 1000); e.g. 512KiB, 64MiB, 10MB, 1.5GiB, 4096.";

/// A count of 1 or more (`--max-connections`): 0 would serve nobody, so it is
/// refused rather than quietly taken as 1.
///
/// ```
/// assert_eq!(cli::parse_count("25000"), Ok(25000));
/// assert!(cli::parse_count("0").is_err());
/// assert!(cli::parse_count("-1").is_err());
/// ```
pub fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be 1 or more".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// A byte count as a person would write it: the largest binary unit that
/// divides it exactly (`64MiB`, `1536KiB`), else the largest decimal one
/// (`10MB`), else bytes (`1500B`). The output
/// parses back with [`parse_size`].
pub fn format_size(bytes: u64) -> String {
    if bytes != 0 {
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if bytes % (1 << shift) == 0 {
                return format!("{}{unit}", bytes >> shift);
            }
        }
        for (size, unit) in [
            (1_000_000_000_000, "TB"),
            (1_000_000_000, "GB"),
            (1_000_000, "MB"),
            (1_000, "kB"),
        ] {
            if bytes % size == 0 {
                return format!("{}{unit}", bytes / size);
            }
        }
    }
    format!("{bytes}B")
}

/// A duration as the `DUR` flags take it: `10s`, `1m30s`, `1500ms`.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// One clear line on stderr and exit status 2, for a bad command line or
/// environment found after clap's checks (a bad `RUST_LOG`): the status clap
/// gives a bad flag.
pub fn fail_usage(msg: impl Display) -> std::process::ExitCode {
    eprintln!("error: {msg}");
    std::process::ExitCode::from(2)
}

/// One clear line on stderr and a non-zero exit.
pub fn fail(msg: impl Display) -> std::process::ExitCode {
    if json_logs() {
        eprintln!("{}", logfmt::json_line("ERROR", &msg.to_string(), &[]));
    } else {
        eprintln!("error: {msg}");
    }
    std::process::ExitCode::FAILURE
}

/// An active health check in a few words, for the start-up summaries:
/// `GET / every 2s (timeout 1s, expect 200-499, rise 2, fall 3)`, or `off`.
pub fn describe_health(health: Option<&rr_proxy::HealthCheck>) -> String {
    let Some(h) = health else {
        return "off".to_owned();
    };
    let probe = if h.tcp_only {
        "TCP connect".to_owned()
    } else {
        format!("GET {}", h.path)
    };
    let expect = if h.tcp_only {
        String::new()
    } else {
        format!(", expect {}-{}", h.expect.start(), h.expect.end())
    };
    format!(
        "{probe} every {} (timeout {}{expect}, rise {}, fall {})",
        format_duration(h.interval),
        format_duration(h.timeout),
        h.rise,
        h.fall
    )
}

/// The admin endpoint's protection from `--admin ADDR`, `--admin-token FILE` and
/// `--admin-host NAME`: the token read from `token_file`, the extra host names.
/// An error (one line, naming the flag) when `admin` is not a loopback address
/// and no token is given, when the file does not hold a good token, or when a
/// name is not a host name. The token itself never appears in a message.
pub fn admin_security(
    admin: SocketAddr,
    token_file: Option<&Path>,
    hosts: &[String],
) -> Result<rr_proxy::AdminSecurity, String> {
    let token = match token_file {
        Some(path) => Some(rr_proxy::AdminToken::from_file(path).map_err(|e| format!("--admin-token: {e}"))?),
        None => None,
    };
    let security = rr_proxy::AdminSecurity {
        token,
        hosts: hosts.to_vec(),
    };
    security.validate(admin).map_err(|e| match e {
        rr_proxy::AdminError::TokenRequired(_) => format!(
            "--admin {admin} is not a loopback address: give --admin-token FILE (a bearer token) too, \
             or listen on 127.0.0.1"
        ),
        rr_proxy::AdminError::BadHost(name) => {
            format!("--admin-host {name:?}: expected a host name or IP address without a port")
        }
        e => e.to_string(),
    })?;
    Ok(security)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("1500ms"), Duration::from_millis(1500));
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h 30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("0.25"), Duration::from_millis(250));
        assert_eq!(ok("365d"), MAX_DURATION);
        for bad in [
            "",
            "abc",
            "10x",
            "s",
            "-1",
            "1..5",
            ".",
            "1e3",
            "inf",
            "NaN",
            "0",
            "0s",
            "0.0",
            "366d",
            "99999999999999999999",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.starts_with(&format!("bad duration {bad:?}")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("0ms"), Ok(Duration::ZERO));
        assert!(parse_duration_or_zero("abc").is_err());
    }

    #[test]
    fn listen_addresses() {
        let ok = |s: &str| parse_listen(s).unwrap().to_string();
        assert_eq!(ok("127.0.0.1:44444"), "127.0.0.1:44444");
        assert_eq!(ok("0.0.0.0:0"), "0.0.0.0:0");
        assert_eq!(ok("[::]:8080"), "[::]:8080");
        assert_eq!(ok(":8080"), "0.0.0.0:8080");
        assert_eq!(ok(":0"), "0.0.0.0:0");
        assert_eq!(ok("8080"), "0.0.0.0:8080");
        assert_eq!(ok("0"), "0.0.0.0:0");
        for bad in [
            "",
            ":",
            "65536",
            ":65536",
            "localhost:80",
            "127.0.0.1",
            "::1",
            "1.2.3.4:x",
            " 80",
            "-1",
        ] {
            let e = parse_listen(bad).expect_err(bad);
            assert!(e.starts_with(&format!("bad address {bad:?}")), "{e}");
            assert!(e.contains(":PORT"), "{e}");
        }
    }

    #[test]
    fn sizes() {
        let ok = |s: &str| parse_size(s).unwrap();
        assert_eq!(ok("0"), 0);
        assert_eq!(ok("4096"), 4096);
        assert_eq!(ok("4096B"), 4096);
        assert_eq!(ok("512KiB"), 512 * 1024);
        assert_eq!(ok("512k"), 512 * 1024);
        assert_eq!(ok("64MiB"), 64 << 20);
        assert_eq!(ok("64mib"), 64 << 20);
        assert_eq!(ok("64 MiB"), 64 << 20);
        assert_eq!(ok("1GiB"), 1 << 30);
        assert_eq!(ok("1G"), 1 << 30);
        assert_eq!(ok("2TiB"), 2 << 40);
        assert_eq!(ok("10MB"), 10_000_000);
        assert_eq!(ok("10kB"), 10_000);
        assert_eq!(ok("3GB"), 3_000_000_000);
        assert_eq!(ok("1.5GiB"), 3 << 29);
        assert_eq!(ok("0.5KiB"), 512);
        assert_eq!(ok("1.0001KB"), 1000);
        assert_eq!(ok(".5K"), 512);
        assert_eq!(ok("18446744073709551615"), u64::MAX);
        for bad in [
            "",
            "MiB",
            "10XB",
            "10 Mi",
            "-1",
            "1.2.3",
            ".",
            "1e6",
            "10MiBs",
            "18446744073709551616",
            "16777216TiB",
            "0x10",
            "1,000",
        ] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.starts_with(&format!("bad size {bad:?}")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        for n in [
            0,
            1,
            1000,
            1500,
            10_000_000,
            1024,
            1536 * 1024,
            64 << 20,
            1 << 30,
            3 << 40,
            u64::MAX,
        ] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{}", format_size(n));
        }
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1536 * 1024), "1536KiB");
        assert_eq!(format_size(10_000_000), "10MB");
        assert_eq!(format_size(1500), "1500B");
        assert_eq!(format_size(0), "0B");
    }

    #[test]
    fn threads() {
        assert_eq!(parse_threads("1"), Ok(1));
        assert_eq!(parse_threads("1024"), Ok(1024));
        for bad in ["0", "1025", "-1", "x", ""] {
            assert!(parse_threads(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_filters() {
        use std::ffi::OsStr;
        assert!(log_filter(None, "info").is_ok());
        assert!(log_filter(Some(OsStr::new("")), "info").is_ok());
        for good in [
            "debug",
            "warn,rr_proxy=debug",
            "access=off",
            "info,http_core[conn]=trace",
        ] {
            assert!(log_filter(Some(OsStr::new(good)), "info").is_ok(), "{good}");
        }
        for bad in ["foo=bar=baz", "info,x=loud", "[{"] {
            let e = log_filter(Some(OsStr::new(bad)), "info").expect_err(bad);
            assert!(e.starts_with(&format!("RUST_LOG={bad:?}")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn formatted_durations_parse_back() {
        for d in [
            Duration::from_secs(10),
            Duration::from_secs(90),
            Duration::from_millis(1500),
        ] {
            assert_eq!(
                parse_duration(&format_duration(d)),
                Ok(d),
                "{}",
                format_duration(d)
            );
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
