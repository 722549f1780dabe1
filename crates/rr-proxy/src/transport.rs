//! The connection to a backend: plain TCP or TLS over TCP, opened the same way
//! for forwarding and health checks, and checked before a pooled one is reused.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::backend::Backend;
use crate::reason::FailureReason;

/// A connection to a backend. The TLS state is boxed: a plain connection
/// stays small, and costs one `match` per read or write.
#[derive(Debug)]
pub(crate) enum Upstream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (`https://` backends).
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why no connection was opened, for the backend's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// TCP connect failed, or TCP connect plus handshake timed out.
    Connect(FailureReason),
    /// The TLS handshake failed.
    Tls(FailureReason),
}

impl OpenError {
    pub(crate) fn reason(self) -> FailureReason {
        match self {
            OpenError::Connect(r) | OpenError::Tls(r) => r,
        }
    }
}

/// Who opens a connection, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Forwarding a request: every failure is a warning.
    Forward,
    /// A health check: the checker logs changes of health itself; a failed
    /// TLS handshake is a warning (with rustls' words) when `warn_tls`.
    Probe {
        /// Log a TLS failure at warn (else at debug).
        warn_tls: bool,
    },
}

/// Connects to `b` and, for an `https://` backend, runs the TLS handshake;
/// both within `timeout`. Counts the connection in the backend's `connects`
/// when it is for forwarding.
pub(crate) async fn open(b: &Backend, timeout: Duration, caller: Caller) -> Result<Upstream, OpenError> {
    let log = caller == Caller::Forward;
    let deadline = tokio::time::Instant::now() + timeout;
    let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(b.addr())).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            if log {
                tracing::warn!(backend = %b.addr(), error = %e, "cannot connect to backend");
            }
            return Err(OpenError::Connect(FailureReason::Connect(e.kind())));
        }
        Err(_) => {
            if log {
                tracing::warn!(backend = %b.addr(), "connecting to backend timed out");
            }
            return Err(OpenError::Connect(FailureReason::ConnectTimeout));
        }
    };
    let _ = tcp.set_nodelay(true);
    let Some(target) = b.tls() else {
        if log {
            b.count_connect();
        }
        return Ok(Upstream::Plain(tcp));
    };
    match tokio::time::timeout_at(deadline, target.handshake(tcp)).await {
        Ok(Ok(tls)) => {
            if log {
                b.count_connect();
            }
            Ok(Upstream::Tls(Box::new(tls)))
        }
        Ok(Err(e)) => {
            let name = target.name().to_str();
            if log || caller == (Caller::Probe { warn_tls: true }) {
                tracing::warn!(backend = %b.addr(), server_name = %name, error = %e.detail,
                    "TLS handshake with backend failed: {}", e.failure);
            } else {
                tracing::debug!(backend = %b.addr(), server_name = %name, error = %e.detail,
                    "TLS handshake with backend failed: {}", e.failure);
            }
            Err(OpenError::Tls(FailureReason::Tls(e.failure)))
        }
        Err(_) => {
            target.count_failure();
            if log {
                tracing::warn!(backend = %b.addr(), "connecting to backend timed out (in the TLS handshake)");
            }
            Err(OpenError::Connect(FailureReason::ConnectTimeout))
        }
    }
}

impl Upstream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Upstream::Plain(s) => s,
            Upstream::Tls(s) => s.get_ref().0,
        }
    }

    /// True when nothing the proxy did not ask for is waiting: the backend
    /// has not closed the connection and sent nothing unasked.
    ///
    /// Asks the socket itself, with one non-blocking peek: the reactor's
    /// readiness cannot tell. Bytes that came in the same segment as the end
    /// of the last response, beyond a read that filled the buffer exactly,
    /// raised no event after that read; and an event for bytes that came
    /// since may not have been processed yet when a busy worker reuses the
    /// connection.
    ///
    /// Over TLS, bytes on the socket are not necessarily unasked: a TLS 1.3
    /// server sends session tickets after the handshake, which may arrive
    /// while the connection is idle. Those bytes are handed to rustls
    /// (reading the socket directly, without waiting); the connection is
    /// stale when they hold application data, a `close_notify`, a protocol
    /// error, or the socket is closed.
    pub(crate) fn is_open_and_quiet(&mut self) -> bool {
        match self {
            Upstream::Plain(s) => peek_quiet(s) == Some(true),
            Upstream::Tls(s) => match peek_quiet(s.get_ref().0) {
                Some(false) => false,
                // Nothing on the socket; but rustls may hold what came
                // before (plaintext no one read, a close_notify).
                Some(true) => tls_state_quiet(s.get_mut().1),
                None => tls_quiet(s),
            },
        }
    }

    /// Forgets the read readiness left over from reading the last response
    /// (without a system call), so that reading the next response waits for
    /// an event instead of first trying a read that finds nothing. The checks
    /// before reuse do not depend on readiness ([`Self::is_open_and_quiet`]).
    pub(crate) fn quiesce(&self) {
        let _ = self.tcp().try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
}

/// One non-blocking peek: `Some(true)` when nothing is waiting, `Some(false)`
/// when the peer closed or the socket failed, `None` when bytes are waiting.
fn peek_quiet(s: &TcpStream) -> Option<bool> {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    // The socket is non-blocking (tokio's): the peek never waits.
    match socket2::SockRef::from(s).peek(&mut byte) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(true),
        Ok(n) if n > 0 => None,
        // The backend's FIN, or an error.
        _ => Some(false),
    }
}

/// Most TLS bytes read while checking an idle connection: a few session
/// tickets fit many times over; more is not what an idle backend sends.
const IDLE_TLS_BYTES: usize = 64 * 1024;

/// Hands the bytes waiting on an idle TLS connection to rustls: quiet when
/// they were handshake messages (session tickets) only.
fn tls_quiet(s: &mut TlsStream<TcpStream>) -> bool {
    let (tcp, conn) = s.get_mut();
    let mut raw = RawSocket(socket2::SockRef::from(&*tcp));
    let mut total = 0;
    loop {
        match conn.read_tls(&mut raw) {
            // Closed (without close_notify).
            Ok(0) => return false,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // A socket error, or rustls' buffer is full.
            Err(_) => return false,
        }
        let state = match conn.process_new_packets() {
            Ok(state) => state,
            Err(_) => return false,
        };
        if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
            return false;
        }
        if total > IDLE_TLS_BYTES {
            return false;
        }
    }
    true
}

/// True when rustls holds no plaintext and has seen no `close_notify`.
fn tls_state_quiet(conn: &mut rustls::ClientConnection) -> bool {
    match conn.process_new_packets() {
        Ok(state) => state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed(),
        Err(_) => false,
    }
}

/// Reads the socket directly: non-blocking, whatever tokio's readiness says.
struct RawSocket<'a>(socket2::SockRef<'a>);

impl Read for RawSocket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl AsyncRead for Upstream {
    #[inline]
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    #[inline]
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Plain(s) => s.is_write_vectored(),
            Upstream::Tls(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::BackendTls;

    /// A TLS 1.3 server for `localhost` (sending rustls' default two session
    /// tickets after each handshake) and a backend that trusts it.
    async fn setup(dir: &std::path::Path) -> (TcpListener, tokio_rustls::TlsAcceptor, Backend) {
        let ca = test_support::TestCa::new(dir);
        let (cert, key) = ca.issue_pem(&["localhost"], 1);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = BackendTls::from_ca_file(&ca.ca_pem).unwrap();
        let backend = Backend::new(0, addr, 1).with_tls(tls.target("localhost").unwrap());
        (
            listener,
            tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            backend,
        )
    }

    async fn connect(
        listener: &TcpListener,
        acceptor: &tokio_rustls::TlsAcceptor,
        b: &Backend,
    ) -> (Upstream, tokio_rustls::server::TlsStream<TcpStream>) {
        let (client, server) = tokio::join!(open(b, Duration::from_secs(5), Caller::Forward), async {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.unwrap()
        });
        (client.unwrap(), server)
    }

    /// Waits until bytes are waiting on the client's socket (or it closed).
    async fn until_bytes_arrive(up: &Upstream) {
        for _ in 0..500 {
            if peek_quiet(up.tcp()) != Some(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("nothing arrived");
    }

    #[tokio::test]
    async fn session_tickets_on_an_idle_tls_connection_leave_it_reusable() {
        let dir = test_support::TempDir::new("transport-tickets");
        let (listener, acceptor, b) = setup(dir.path()).await;
        let (mut up, mut server) = connect(&listener, &acceptor, &b).await;
        // The tickets are on the socket, unread: a raw peek sees bytes.
        until_bytes_arrive(&up).await;
        assert_eq!(peek_quiet(up.tcp()), None, "the test needs unread tickets");
        assert!(up.is_open_and_quiet(), "tickets are not unasked bytes");
        assert_eq!(peek_quiet(up.tcp()), Some(true), "and they were taken in");
        assert!(up.is_open_and_quiet());
        // The connection still works both ways afterwards.
        up.write_all(b"ping").await.unwrap();
        up.flush().await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        server.flush().await.unwrap();
        up.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn unasked_data_close_notify_or_a_fin_make_an_idle_tls_connection_stale() {
        let dir = test_support::TempDir::new("transport-stale");
        let (listener, acceptor, b) = setup(dir.path()).await;
        for how in ["data", "close_notify", "fin"] {
            let (mut up, mut server) = connect(&listener, &acceptor, &b).await;
            until_bytes_arrive(&up).await;
            assert!(up.is_open_and_quiet(), "{how}: quiet once the tickets are in");
            match how {
                "data" => {
                    server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
                    server.flush().await.unwrap();
                }
                "close_notify" => server.shutdown().await.unwrap(),
                _ => drop(server),
            }
            until_bytes_arrive(&up).await;
            assert!(!up.is_open_and_quiet(), "{how}: stale");
            // Still stale when asked again: what was taken in stays in rustls.
            assert!(!up.is_open_and_quiet(), "{how}: still stale");
        }
    }

    #[tokio::test]
    async fn a_plain_idle_connection_is_quiet_until_bytes_or_a_fin_arrive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = Backend::new(0, listener.local_addr().unwrap(), 1);
        for how in ["data", "fin"] {
            let (up, server) = tokio::join!(open(&b, Duration::from_secs(5), Caller::Forward), async {
                listener.accept().await.unwrap().0
            });
            let (mut up, mut server) = (up.unwrap(), server);
            assert!(matches!(up, Upstream::Plain(_)));
            assert!(up.is_open_and_quiet());
            match how {
                "data" => server.write_all(b"x").await.unwrap(),
                _ => drop(server),
            }
            until_bytes_arrive(&up).await;
            assert!(!up.is_open_and_quiet(), "{how}");
        }
        assert_eq!(b.stats().connects, 2);
    }
}
