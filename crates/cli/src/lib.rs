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

/// Starts logging to stderr. `RUST_LOG` sets the filter; `default` applies when
/// it is unset. Each request's access line is at info level, target `access`.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(|| loop {
            std::thread::sleep(LOG_FLUSH_EVERY);
            flush_logs();
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BufferedStderr)
        .with_ansi(false)
        .event_format(logfmt::LineFormat)
        .init();
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
    eprintln!("{what} listening on http://{addr}");
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

/// One clear line on stderr and a non-zero exit.
pub fn fail(msg: impl Display) -> std::process::ExitCode {
    eprintln!("error: {msg}");
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
