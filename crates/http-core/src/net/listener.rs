//! The listening socket: how it is tuned, and accepting without the reactor.
//!
//! Measured with `ab -n 20000` (HTTP/1.0, a connection per request) through
//! rr-proxy: deferred accept and unregistered accepted sockets together took the
//! proxy's CPU time per request from 40 µs to 31 µs at c=10, and epoll_ctl calls
//! from 1.95 to 0 per request; `bench.py table` went from 0.97–1.09× HAProxy's
//! requests/s at c=10–100 to 1.09–1.25×. Without deferral the request had not yet
//! arrived when the socket was accepted in almost every case, so the first read
//! waited and registered the socket after all.

use std::io;
use std::net::SocketAddr;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::TcpListener;

use super::lazy::LazyTcpStream;

/// Sets `TCP_DEFER_ACCEPT` on a listening socket: connections are handed over
/// once their first bytes have arrived (or after about `secs` seconds), and 0
/// turns that off. Linux only.
#[cfg(target_os = "linux")]
fn set_defer_accept(listener: &impl std::os::fd::AsRawFd, secs: u32) -> io::Result<()> {
    let secs = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    // Neither std (unstable) nor socket2 offers this option.
    #[allow(unsafe_code)]
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a pointer to a live
    // local c_int, and the fd is the listener's, open for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_defer_accept(_listener: &impl std::os::fd::AsRawFd, _secs: u32) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Backlog of the listeners [`listen`] makes. The kernel caps it at
/// `net.core.somaxconn` (4096 on current Linux).
const BACKLOG: i32 = 4096;

/// Binds a TCP listener on `addr` with `SO_REUSEADDR` and a listen backlog of
/// 4096. `tokio::net::TcpListener::bind` listens with 128, which a burst of a
/// few hundred connections overruns: the excess SYNs are dropped and those
/// clients wait a second for their retransmission. Call it inside a runtime.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let listener = http_core::listen("127.0.0.1:0".parse().unwrap()).unwrap();
/// assert_ne!(listener.local_addr().unwrap().port(), 0);
/// # });
/// ```
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A listener whose accepted sockets are not registered with the reactor: they
/// come out as [`LazyTcpStream`]s, registered only if they ever have to wait.
pub(crate) struct Acceptor {
    listener: AsyncFd<mio::net::TcpListener>,
    /// Whether deferred accept may be switched on under load (HTTP only: the
    /// client speaks first).
    adaptive_defer: bool,
    deferred: bool,
}

impl Acceptor {
    /// `adaptive_defer`: see [`Acceptor::adapt`]; only for protocols in which the
    /// client speaks first.
    pub(crate) fn new(listener: TcpListener, adaptive_defer: bool) -> io::Result<Self> {
        let listener = listener.into_std()?;
        // Accepted sockets inherit delayed ACKs: the ACK of a request then rides
        // on its response instead of going out alone while the answer is being
        // prepared (for a proxy, a whole backend round trip).
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&listener).set_tcp_quickack(false);
        let listener = mio::net::TcpListener::from_std(listener);
        // tokio withdrew the safe registration of an arbitrary fd, since an
        // `AsyncFd` cannot check that its value owns the fd; tokio's own
        // `TcpListener` registers every socket it accepts. The gain is measured
        // in this module's header.
        #[allow(unsafe_code)]
        // SAFETY: the fd must stay open and the same for the AsyncFd's whole life.
        // The mio listener owns its fd and always returns it, the AsyncFd owns the
        // listener and deregisters it before dropping it, and nothing else holds
        // the fd.
        let listener = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Acceptor {
            listener,
            adaptive_defer,
            deferred: false,
        })
    }

    /// Turns deferred accept on while other connections are being served
    /// (`live` of them) and off when the server is idle again. Under load it
    /// spares each connection a wakeup and, since its request is then read at
    /// once, the two epoll_ctl calls of registering it. When idle it would only
    /// add the client's delay between connecting and writing to every request,
    /// which an early wakeup otherwise overlaps (4% fewer requests/s at `ab -c 1`).
    pub(crate) fn adapt(&mut self, live: usize) {
        if !self.adaptive_defer {
            return;
        }
        // Some hysteresis, so that a server at the edge does not flip each time.
        let want = if self.deferred { live > 1 } else { live >= 3 };
        if want == self.deferred {
            return;
        }
        match set_defer_accept(self.listener.get_ref(), u32::from(want)) {
            Ok(()) => self.deferred = want,
            Err(e) => {
                tracing::debug!(error = %e, "TCP_DEFER_ACCEPT unavailable");
                self.adaptive_defer = false;
            }
        }
    }

    /// Waits until a client is waiting to be accepted, without accepting it.
    pub(crate) async fn ready(&self) {
        // The readiness is kept (not cleared), so `accept` finds the client.
        let _ = self.listener.readable().await;
    }

    /// Waits for and accepts one connection (non-blocking, close-on-exec).
    pub(crate) async fn accept(&self) -> io::Result<(LazyTcpStream, SocketAddr)> {
        loop {
            let mut ready = self.listener.readable().await?;
            if let Ok(accepted) = ready.try_io(|l| l.get_ref().accept()) {
                let (stream, peer) = accepted?;
                return Ok((LazyTcpStream::from_std(stream.into()), peer));
            }
        }
    }
}
