//! The transport a [`Server`](crate::Server) connection runs over: plain TCP
//! or TLS. One type for both, so that the connection driver is compiled once
//! for a service and the request path of plain connections is the code it was
//! before TLS existed, less a branch per read or write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::io::Io;
use super::lazy::LazyTcpStream;
use super::tls_stream::TlsStream;

/// A server connection: plain TCP, or TLS (boxed: a TLS session is large, and
/// a plain connection's task must not carry its size).
#[derive(Debug)]
pub(crate) enum ServerIo {
    Tcp(LazyTcpStream),
    Tls(Box<TlsStream>),
}

impl ServerIo {
    /// The TLS stream, when the connection is TLS.
    #[allow(dead_code)]
    pub(crate) fn tls(&self) -> Option<&TlsStream> {
        match self {
            ServerIo::Tls(t) => Some(t),
            ServerIo::Tcp(_) => None,
        }
    }
}

impl AsyncRead for ServerIo {
    #[inline]
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ServerIo::Tls(t) => tls_read(t, cx, buf),
        }
    }
}

// The TLS arms stay out of line, so that the plain arms inline as before.
#[inline(never)]
fn tls_read(t: &mut TlsStream, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    Pin::new(t).poll_read(cx, buf)
}

#[inline(never)]
fn tls_write(t: &mut TlsStream, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    Pin::new(t).poll_write(cx, buf)
}

#[inline(never)]
fn tls_write_vectored(
    t: &mut TlsStream,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    Pin::new(t).poll_write_vectored(cx, bufs)
}

#[inline(never)]
fn tls_flush(t: &mut TlsStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    Pin::new(t).poll_flush(cx)
}

#[inline(never)]
fn tls_shutdown(t: &mut TlsStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    Pin::new(t).poll_shutdown(cx)
}

#[inline(never)]
fn tls_finish(t: &mut TlsStream, cx: &mut Context<'_>, last: &mut &[u8]) -> Poll<io::Result<()>> {
    Pin::new(t).poll_finish(cx, last)
}

impl AsyncWrite for ServerIo {
    #[inline]
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerIo::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ServerIo::Tls(t) => tls_write(t, cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerIo::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerIo::Tls(t) => tls_write_vectored(t, cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Tcp(s) => Pin::new(s).poll_flush(cx),
            ServerIo::Tls(t) => tls_flush(t, cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ServerIo::Tls(t) => tls_shutdown(t, cx),
        }
    }
}

impl Io for ServerIo {
    fn poll_finish(self: Pin<&mut Self>, cx: &mut Context<'_>, last: &mut &[u8]) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Tcp(s) => Pin::new(s).poll_finish(cx, last),
            ServerIo::Tls(t) => tls_finish(t, cx, last),
        }
    }

    #[inline]
    fn is_tls(&self) -> bool {
        matches!(self, ServerIo::Tls(_))
    }

    fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            ServerIo::Tls(t) => t.alpn_protocol(),
            ServerIo::Tcp(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Limits, Request, Response, Service, ShutdownSignal};

    struct Ok200;
    impl Service for Ok200 {
        async fn call(&self, _r: Request<'_>) -> Response {
            Response::new(200)
        }
    }

    /// The server's connection future, over either transport, stays as small
    /// as the plain driver's (the TLS session is behind a box): an idle
    /// connection costs its task and little else.
    #[tokio::test]
    async fn the_connection_future_stays_small() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        let io = ServerIo::Tcp(LazyTcpStream::from_std(accepted));
        let f = crate::server::conn::drive(
            io,
            None,
            Arc::new(Ok200),
            Arc::new(Limits::default()),
            ShutdownSignal::never(),
            None,
            Some(Arc::new(crate::H2Limits::default())),
        );
        let size = std::mem::size_of_val(&f);
        assert!(size <= 1024, "connection future is {size} bytes");
    }
}
