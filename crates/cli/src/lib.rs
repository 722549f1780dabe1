//! Glue shared by the binaries: runtime, logging, signals, listeners, errors.
//! No HTTP logic lives here; that is in the library crates.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;

/// Starts logging to stderr. `RUST_LOG` sets the filter; `default` applies when
/// it is unset. Each request's access line is at info level, target `access`.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
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

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
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
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// Binds a listener, turning the error into a message that names the address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("cannot listen on {addr}: the port is already in use")
        } else {
            format!("cannot listen on {addr}: {e}")
        }
    })
}

/// Prints the line that tells users (and scripts) where the server is.
pub fn announce(what: &str, addr: SocketAddr) {
    eprintln!("{what} listening on http://{addr}");
}

/// Runs `main` on a runtime and turns an error into one line on stderr and exit code 1.
pub fn run<F, E>(threads: Option<usize>, main: F) -> std::process::ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let rt = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    match rt.block_on(main) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// One clear line on stderr and a non-zero exit.
pub fn fail(msg: impl Display) -> std::process::ExitCode {
    eprintln!("error: {msg}");
    std::process::ExitCode::FAILURE
}
