//! The accept loop: connection limit and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::Either;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::conn::drive;
#[allow(unused_imports)] // for the docs
use super::conn::serve_connection;
use super::service::Service;
use super::shutdown::{ShutdownSignal, ShutdownTrigger};
use crate::metrics::ConnectionGauge;
use crate::net::fd_limit::connection_capacity;
use crate::net::lazy::LazyTcpStream;
use crate::net::listener::Acceptor;
use crate::net::tls::TlsConfig;
use crate::net::transport::ServerIo;
use crate::{H2Limits, Limits};

/// Accepts TCP connections and serves each with [`serve_connection`]
/// (and, with [`h2c`](Self::h2c), [`serve_h2_connection`](crate::serve_h2_connection)).
///
/// Defaults: [`Limits::default`], at most as many open connections as the
/// open-file limit allows ([`connection_capacity`]`(1)`: 25 000 when it allows
/// that many), and 10 s for in-flight requests to finish once shutdown begins,
/// after which the remaining connections are dropped.
///
/// When the connection cap or the process's fd table is reached while a client
/// is waiting, the longest-idle keep-alive connections are closed to make room
/// (as nginx does), first those idle over 10 s, then over 1 s, then any; a
/// warning is logged at most once every 10 s.
///
/// On Linux the listener delays ACKs, so that a request's ACK travels with its
/// response, and while other connections are being served it hands over new ones
/// only once their first bytes have arrived (`TCP_DEFER_ACCEPT`), so that a
/// request is read the moment its connection is accepted.
///
/// ```no_run
/// use http_core::{Request, Response, Server, Service};
///
/// struct Hello;
/// impl Service for Hello {
///     async fn call(&self, _req: Request<'_>) -> Response {
///         Response::text(200, "hello\n")
///     }
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// Server::new(Hello)
///     .serve(listener, async { let _ = tokio::signal::ctrl_c().await; })
///     .await
/// # }
/// ```
pub struct Server<S> {
    service: Arc<S>,
    limits: Limits,
    max_connections: usize,
    shutdown_timeout: Duration,
    gauge: Option<ConnectionGauge>,
    tls: Option<TlsConfig>,
    h2c: bool,
    h2: H2Limits,
}

impl<S: Service> Server<S> {
    /// A server for `service` with the defaults above.
    pub fn new(service: S) -> Self {
        Self::from_arc(Arc::new(service))
    }

    /// A server for a service that is shared with other code.
    pub fn from_arc(service: Arc<S>) -> Self {
        Server {
            service,
            limits: Limits::default(),
            max_connections: connection_capacity(1),
            shutdown_timeout: Duration::from_secs(10),
            gauge: None,
            tls: None,
            h2c: false,
            h2: H2Limits::default(),
        }
    }

    /// Also serves HTTP/2 with prior knowledge ("h2c", RFC 9113 §3.3) on this
    /// plain listener: a connection that starts with the HTTP/2 client preface
    /// ([`H2_PREFACE`](crate::H2_PREFACE)) is served by
    /// [`serve_h2_connection`](crate::serve_h2_connection), any other by the
    /// HTTP/1.1 driver as before. The upgrade from HTTP/1.1 (`Upgrade: h2c`)
    /// is not supported: such a request is served over HTTP/1.1. Default: off.
    /// (Over TLS, HTTP/2 is chosen by ALPN, whatever this says.)
    ///
    /// ```no_run
    /// use http_core::{H2Limits, Request, Response, Server, Service};
    /// struct Hello;
    /// impl Service for Hello {
    ///     async fn call(&self, req: Request<'_>) -> Response {
    ///         // `HTTP/1.1` or `HTTP/2.0`: the service sees the same request either way.
    ///         Response::text(200, format!("{}\n", req.head.version().as_str()))
    ///     }
    /// }
    /// # async fn run() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// Server::new(Hello)
    ///     .h2c(true)
    ///     .h2_limits(H2Limits { max_concurrent_streams: 32, ..H2Limits::default() })
    ///     .serve(listener, std::future::pending())
    ///     .await
    /// # }
    /// ```
    pub fn h2c(mut self, on: bool) -> Self {
        self.h2c = on;
        self
    }

    /// Sets the HTTP/2 settings and abuse limits (default [`H2Limits::default`]).
    pub fn h2_limits(mut self, h2: H2Limits) -> Self {
        self.h2 = h2;
        self
    }

    /// Serves HTTPS: every accepted connection starts with a TLS handshake
    /// (on its own task, within the handshake timeout: by default the header
    /// timeout), then the same driver serves the decrypted stream, with
    /// keep-alive, pipelining, timeouts and graceful shutdown as over plain
    /// TCP. A failed or timed-out handshake is logged at debug level, counted
    /// in [`TlsConfig::stats`], and closes that connection only. With
    /// [`TlsConfig::hsts`] every response carries `Strict-Transport-Security`.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the limits applied to every connection.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the most connections served at once (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets how long in-flight requests may take to finish after shutdown begins.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Counts the open connections in `gauge` (for a metrics endpoint): each
    /// one from its accept until its task has ended. The accept loop does the
    /// counting, so a connection costs nothing more for it.
    pub fn connection_gauge(mut self, gauge: ConnectionGauge) -> Self {
        self.gauge = Some(gauge);
        self
    }

    /// Starts serving `listener` on a new task and returns a handle that knows the
    /// bound address and can stop the server.
    ///
    /// ```
    /// use http_core::{Request, Response, Server, Service};
    /// struct Hello;
    /// impl Service for Hello {
    ///     async fn call(&self, _req: Request<'_>) -> Response {
    ///         Response::text(200, "hello\n")
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let handle = Server::new(Hello).spawn(listener).unwrap();
    /// assert_ne!(handle.local_addr().port(), 0);
    /// handle.shutdown().await;
    /// # });
    /// ```
    pub fn spawn(self, listener: TcpListener) -> io::Result<ServerHandle> {
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // The caller's tracing span follows the server onto its task, so log lines
        // say which server wrote them when several run in one process.
        let task = tokio::spawn(
            self.serve(listener, async {
                let _ = stopped.await;
            })
            .instrument(tracing::Span::current()),
        );
        Ok(ServerHandle {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    /// Accepts and serves connections until `shutdown` resolves, then stops
    /// accepting, lets open connections finish their current request (idle ones
    /// close at once) within the shutdown timeout, and returns.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let handshake_timeout = self
            .tls
            .as_ref()
            .and_then(TlsConfig::handshake_timeout_value)
            .unwrap_or(self.limits.header_timeout);
        let hsts = self.tls.as_ref().and_then(TlsConfig::hsts_line);
        let tls = self.tls;
        let limits = Arc::new(self.limits);
        let service = self.service;
        // HTTP/2 by the preface: on plain connections with h2c, over TLS
        // when ALPN chose it (TLS offers h2 first).
        let h2_plain = self.h2c.then(|| Arc::new(self.h2));
        let h2_tls = Some(Arc::new(self.h2));
        // One handler for both transports, so that the driver is compiled once
        // for the service: plain connections pay a branch here and one per read
        // or write. The TLS handshake is driven by the connection's first read.
        run_accept_loop(
            Acceptor::new(listener, true)?,
            self.max_connections,
            self.shutdown_timeout,
            Reported::new(self.gauge),
            shutdown,
            move |stream, peer, signal| {
                let (io, h2) = match &tls {
                    None => (ServerIo::Tcp(stream), h2_plain.clone()),
                    Some(t) => match t.accept(stream, Some(peer), handshake_timeout) {
                        Ok(s) => (ServerIo::Tls(Box::new(s)), h2_tls.clone()),
                        // Checked when the configuration was built; the socket closes.
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "TLS connection could not be set up");
                            return Either::Right(std::future::ready(()));
                        }
                    },
                };
                Either::Left(drive(
                    io,
                    Some(peer),
                    service.clone(),
                    limits.clone(),
                    signal,
                    hsts.clone(),
                    h2,
                ))
            },
        )
        .await
    }
}

/// The accept loop under [`Server`], for servers of other protocols (a TCP relay):
/// accepts connections until `shutdown` resolves, runs `handle` for each on its own
/// task (at most `max_connections` at once; further clients wait in the listen
/// backlog), then stops accepting, fires the [`ShutdownSignal`] it gave each
/// handler, waits up to `shutdown_timeout` for the handlers to finish and aborts
/// the rest. At the cap or when the fd table is full, handlers that wait on
/// their signal as [`serve_connection`] does close idle keep-alive connections
/// to make room. Accepted sockets have `TCP_NODELAY` set and come as
/// [`LazyTcpStream`]s, which join the event loop only once they have to wait.
/// Handler tasks run in the caller's tracing span, if any.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    shutdown_timeout: Duration,
    shutdown: impl Future<Output = ()>,
    handle: F,
) -> io::Result<()>
where
    F: FnMut(LazyTcpStream, SocketAddr, ShutdownSignal) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acceptor = Acceptor::new(listener, false)?;
    let uncounted = Reported::new(None);
    run_accept_loop(
        acceptor,
        max_connections,
        shutdown_timeout,
        uncounted,
        shutdown,
        handle,
    )
    .await
}

async fn run_accept_loop<F, Fut>(
    mut acceptor: Acceptor,
    max_connections: usize,
    shutdown_timeout: Duration,
    mut open: Reported,
    shutdown: impl Future<Output = ()>,
    mut handle: F,
) -> io::Result<()>
where
    F: FnMut(LazyTcpStream, SocketAddr, ShutdownSignal) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max_connections = max_connections.max(1);
    let (trigger, signal) = ShutdownSignal::new();
    let mut tasks = JoinSet::new();
    let mut pressure = Pressure::default();
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        // Every join (here, or in a `select!` below, which continues the loop)
        // and every spawn is reported before the loop waits again.
        open.set(tasks.len());
        if tasks.len() >= max_connections {
            // At the limit: wait for a connection to end before accepting another;
            // if a client is waiting meanwhile, make room.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = tasks.join_next() => continue,
                () = acceptor.ready() => {}
            }
            pressure.make_room(&trigger, "connection limit reached", tasks.len());
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = tasks.join_next() => {}
                () = tokio::time::sleep(REAP_STEP) => {}
            }
            continue;
        }
        acceptor.adapt(tasks.len());
        // Finished connections are joined while waiting, not only at the next
        // accept: a joined task frees its memory, an unjoined one keeps it (after
        // a burst of 10,000 connections, about 14 MB until the next client came).
        let accepted = tokio::select! {
            a = acceptor.accept() => a,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                pressure.relieved();
                // Responses are written whole; Nagle would only delay them.
                let _ = stream.set_nodelay(true);
                // The handler's future is spawned as it is: wrapping it in another
                // async block (to hold a semaphore permit, say) would store it twice
                // over in every connection's task, idle or not.
                let work = handle(stream, peer, signal.clone());
                // Entering and leaving a span on every poll costs; only when the
                // server runs inside one is it worth it.
                let span = tracing::Span::current();
                if span.is_none() {
                    tasks.spawn(work);
                } else {
                    tasks.spawn(work.instrument(span));
                }
                open.set(tasks.len());
            }
            Err(e) if is_out_of_fds(&e) => {
                pressure.make_room(&trigger, "out of file descriptors", tasks.len());
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(REAP_STEP) => {}
                }
            }
            Err(e) => {
                // The client gave up before it was accepted, or the kernel is
                // short of memory: back off a little instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    drop(acceptor);
    trigger.trigger();
    let drained = tokio::time::timeout(shutdown_timeout, async {
        while tasks.join_next().await.is_some() {
            open.set(tasks.len());
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "shutdown timeout: closing remaining connections"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// The connections one accept loop has added to a [`ConnectionGauge`]; they
/// are taken off again when the loop ends.
struct Reported {
    gauge: Option<ConnectionGauge>,
    reported: usize,
}

impl Reported {
    fn new(gauge: Option<ConnectionGauge>) -> Self {
        Reported { gauge, reported: 0 }
    }

    /// Brings the gauge to `open` connections of this loop's.
    fn set(&mut self, open: usize) {
        let Some(g) = &self.gauge else { return };
        if open > self.reported {
            g.add(open - self.reported);
        } else if open < self.reported {
            g.sub(self.reported - open);
        }
        self.reported = open;
    }
}

impl Drop for Reported {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// Time given to idle connections to close before asking more of them.
const REAP_STEP: Duration = Duration::from_millis(10);
/// Idle ages above which keep-alive connections are closed to make room, one
/// step further each time room is still short: the longest idle go first.
const REAP_IDLE_OVER: [Duration; 3] = [Duration::from_secs(10), Duration::from_secs(1), Duration::ZERO];
/// At most one pressure warning per this interval.
const WARN_EVERY: Duration = Duration::from_secs(10);

fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == libc::EMFILE || code == libc::ENFILE)
}

/// Making room for new clients when connections or file descriptors run out.
#[derive(Default)]
struct Pressure {
    /// Index into [`REAP_IDLE_OVER`] for the next request for room.
    step: usize,
    last_warning: Option<Instant>,
    /// Times room was short since the last warning.
    unreported: u64,
}

impl Pressure {
    /// Asks idle keep-alive connections to close, longer-idle ones first, and
    /// warns (rate-limited) that the server is at its limit.
    fn make_room(&mut self, trigger: &ShutdownTrigger, why: &str, open: usize) {
        let now = Instant::now();
        let idle_over = REAP_IDLE_OVER[self.step.min(REAP_IDLE_OVER.len() - 1)];
        self.step += 1;
        if let Some(before) = now.checked_sub(idle_over) {
            trigger.reap_idle(before);
        }
        self.unreported += 1;
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
        {
            tracing::warn!(
                open,
                times = self.unreported,
                "{why}: closing keep-alive connections idle over {}s to make room",
                idle_over.as_secs()
            );
            self.last_warning = Some(now);
            self.unreported = 0;
        }
    }

    /// A connection was accepted: the next shortage starts with the longest idle again.
    fn relieved(&mut self) {
        self.step = 0;
    }
}

/// A server running on its own task (see [`Server::spawn`]). Dropping the handle
/// shuts the server down gracefully, as [`shutdown`](Self::shutdown) does without waiting.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// The address the listener is bound to (with the real port when bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops by itself (it only does so on shutdown).
    pub async fn wait(mut self) -> io::Result<()> {
        let r = (&mut self.task).await;
        self.stop.take();
        r.unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}
