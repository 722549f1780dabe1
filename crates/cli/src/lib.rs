//! Glue shared by the binaries: runtime, logging, signals, listeners, errors.
//! No HTTP logic lives here; that is in the library crates.

use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

mod logfmt;

pub use logfmt::LogFormat;

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
/// filter; `default` applies when it is unset. Each request's access line is at
/// info level, target `access`.
pub fn init_logging(default: &str, format: LogFormat) {
    http_core::server::set_access_log_format(match format {
        LogFormat::Text => http_core::AccessLogFormat::Text,
        LogFormat::Json => http_core::AccessLogFormat::Json,
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
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

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled, so that a signal sent
/// right after the `listening on` line cannot kill the process unhandled. Call
/// it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}

/// Binds a listener, turning the error into a message that names the address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    http_core::listen(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("cannot listen on {addr}: the port is already in use")
        } else {
            format!("cannot listen on {addr}: {e}")
        }
    })
}

/// Prints the line that tells users (and scripts) where the server is, at once.
pub fn announce(what: &str, addr: SocketAddr) {
    flush_logs();
    if json_logs() {
        let url = format!("http://{addr}");
        let message = format!("{what} listening on {url}");
        eprintln!("{}", logfmt::json_line("INFO", &message, &[("listening", &url)]));
    } else {
        eprintln!("{what} listening on http://{addr}");
    }
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

/// Runs `main` on a runtime and turns an error into one line on stderr and exit code 1.
pub fn run<F, E>(threads: Option<usize>, main: F) -> std::process::ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    raise_fd_limit();
    start_memory_trimmer();
    let rt = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let result = rt.block_on(main);
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
    match T::try_parse() {
        Ok(args) => args,
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

/// The longest `DUR` a flag takes: a year. A longer one is surely a mistake, and
/// deadlines far enough out would overflow `Instant`.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Parses a `DUR` flag (`--header-timeout 10s`), as [`DURATION_HELP`] says: the
/// `humantime` crate's format (`1500ms`, `10s`, `2m`, `1h 30m`, `1.5s`), or a
/// bare number of seconds (`10`, `0.5`), the form the flags took before.
/// Refuses zero and anything over [`MAX_DURATION`]. The error is one line
/// naming the text and the expected form.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(cli::parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
/// assert_eq!(cli::parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(cli::parse_duration("10"), Ok(Duration::from_secs(10)));
/// assert!(cli::parse_duration("abc").is_err());
/// assert!(cli::parse_duration("0s").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(s)? {
        d if d.is_zero() => Err(format!("bad duration {s:?}: must be longer than zero")),
        d => Ok(d),
    }
}

/// [`parse_duration`] with zero allowed, for a flag where 0 means "every time"
/// (`static-server --revalidate 0`).
///
/// ```
/// assert_eq!(cli::parse_duration_or_zero("0s"), Ok(std::time::Duration::ZERO));
/// assert_eq!(cli::parse_duration_or_zero("0"), Ok(std::time::Duration::ZERO));
/// ```
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let hint = "write e.g. 1500ms, 10s, 2m or a number of seconds";
    let d = if is_bare_number(s) {
        s.parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| format!("bad duration {s:?}: {hint}"))?
    } else {
        humantime::parse_duration(s).map_err(|e| format!("bad duration {s:?}: {e}; {hint}"))?
    };
    if d > MAX_DURATION {
        return Err(format!("bad duration {s:?}: at most a year"));
    }
    Ok(d)
}

/// Digits with at most one `.` among them: `10`, `0.5`.
fn is_bare_number(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
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
}
