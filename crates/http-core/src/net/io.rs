//! The transport trait: what the driver runs a connection over.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A transport the driver can run a connection over: a byte stream both ways,
/// plus the one operation the driver needs beyond [`AsyncWrite`], "write these
/// last bytes, then end the stream" ([`poll_finish`](Self::poll_finish)), which
/// a transport may do in fewer steps than a write and a shutdown.
///
/// Implemented for tokio's `TcpStream`, `UnixStream` and `DuplexStream`, for
/// [`LazyTcpStream`](crate::LazyTcpStream) (whose last bytes and FIN leave in
/// one segment), for [`Upgraded`](crate::Upgraded), and for `Box<T>` of any
/// `Io`, `Box<dyn Io>` included. A stream type of one's own implements it in
/// one line, taking the default; a stream type from another crate is wrapped
/// in [`AnyIo`].
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
///
/// /// A stream that could count or trace what passes through it.
/// struct Traced(DuplexStream);
///
/// impl AsyncRead for Traced {
///     fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
///         Pin::new(&mut self.0).poll_read(cx, buf)
///     }
/// }
///
/// impl AsyncWrite for Traced {
///     fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
///         Pin::new(&mut self.0).poll_write(cx, buf)
///     }
///     fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
///         Pin::new(&mut self.0).poll_flush(cx)
///     }
///     fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
///         Pin::new(&mut self.0).poll_shutdown(cx)
///     }
/// }
///
/// // The default `poll_finish`: write, flush, shut down.
/// impl http_core::Io for Traced {}
/// ```
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Writes `last`, then ends the stream (over TCP: sends the FIN). `last` is
    /// advanced past what has been written, so that after `Pending` it holds
    /// what is still to go; the caller polls again with it, as
    /// [`Finish`] (from [`finish`](Self::finish)) does.
    ///
    /// The default writes `last` with [`poll_write`](AsyncWrite::poll_write),
    /// then flushes and shuts down: `write_all`, `flush` and `shutdown` in turn.
    /// A transport overrides it when it can do
    /// better, such as carrying the last bytes and the end of the stream in one
    /// packet.
    fn poll_finish(self: Pin<&mut Self>, cx: &mut Context<'_>, last: &mut &[u8]) -> Poll<io::Result<()>> {
        poll_write_and_shutdown(self, cx, last)
    }

    /// True when the bytes travel over TLS. The driver tells services
    /// ([`Request::tls`](crate::Request::tls)) and adds HSTS by it. Default: false.
    fn is_tls(&self) -> bool {
        false
    }

    /// The protocol TLS's ALPN settled on (`b"h2"`, `b"http/1.1"`), once the
    /// handshake is done; `None` for a plain transport or when the client
    /// offered none. The driver serves HTTP/2 over TLS only when it is `h2`.
    /// Default: `None`.
    fn alpn_protocol(&self) -> Option<&[u8]> {
        None
    }

    /// Writes `last`, then ends the stream: [`poll_finish`](Self::poll_finish)
    /// as a future.
    ///
    /// ```
    /// use http_core::Io;
    /// use tokio::io::AsyncReadExt;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (mut client, mut server) = tokio::io::duplex(64);
    /// server.finish(b"goodbye").await.unwrap();
    /// let mut got = String::new();
    /// client.read_to_string(&mut got).await.unwrap(); // ends: the stream was shut down
    /// assert_eq!(got, "goodbye");
    /// # });
    /// ```
    fn finish<'a>(&'a mut self, last: &'a [u8]) -> Finish<'a, Self>
    where
        Self: Sized,
    {
        Finish { io: self, last }
    }
}

/// The default [`Io::poll_finish`], for transports that override it to fall
/// back on: writes `last` (advancing it), flushes, shuts down.
pub(crate) fn poll_write_and_shutdown<T: AsyncWrite + ?Sized>(
    mut io: Pin<&mut T>,
    cx: &mut Context<'_>,
    last: &mut &[u8],
) -> Poll<io::Result<()>> {
    while !last.is_empty() {
        let n = ready!(io.as_mut().poll_write(cx, last))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        *last = &last[n..];
    }
    ready!(io.as_mut().poll_flush(cx))?;
    io.poll_shutdown(cx)
}

/// The future of [`Io::finish`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Finish<'a, T: ?Sized> {
    io: &'a mut T,
    last: &'a [u8],
}

impl<T: Io + ?Sized> Future for Finish<'_, T> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut *this.io).poll_finish(cx, &mut this.last)
    }
}

impl Io for tokio::net::TcpStream {}
#[cfg(unix)]
impl Io for tokio::net::UnixStream {}
impl Io for tokio::io::DuplexStream {}

impl<T: Io + ?Sized> Io for Box<T> {
    fn poll_finish(self: Pin<&mut Self>, cx: &mut Context<'_>, last: &mut &[u8]) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.get_mut()).poll_finish(cx, last)
    }

    fn is_tls(&self) -> bool {
        (**self).is_tls()
    }

    fn alpn_protocol(&self) -> Option<&[u8]> {
        (**self).alpn_protocol()
    }
}

/// Any `AsyncRead + AsyncWrite` stream as an [`Io`] with the default
/// [`poll_finish`](Io::poll_finish): for stream types from other crates, which
/// cannot implement `Io` themselves.
///
/// ```
/// use std::sync::Arc;
/// use http_core::{serve_connection, AnyIo, Limits, Request, Response, Service, ShutdownSignal};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// struct Hello;
/// impl Service for Hello {
///     async fn call(&self, _req: Request<'_>) -> Response {
///         Response::text(200, "hello\n")
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let (mut client, server) = tokio::io::duplex(4096);
/// // A stream type the driver does not know: a buffered one.
/// let server = AnyIo(tokio::io::BufStream::new(server));
/// tokio::spawn(serve_connection(server, None, Arc::new(Hello), Arc::new(Limits::default()), ShutdownSignal::never()));
/// client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
/// let mut out = String::new();
/// client.read_to_string(&mut out).await.unwrap();
/// assert!(out.ends_with("\r\n\r\nhello\n"));
/// # });
/// ```
#[derive(Debug)]
pub struct AnyIo<T>(pub T);

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for AnyIo<T> {}

impl<T: AsyncRead + Unpin> AsyncRead for AnyIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AnyIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Takes at most `max` bytes a write and is pending every other poll: the
    /// default `poll_finish` must resume where it stopped.
    struct Trickle {
        inner: tokio::io::DuplexStream,
        max: usize,
        stall: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.stall = !self.stall;
            if self.stall {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(self.max);
            Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    impl Io for Trickle {}

    #[tokio::test]
    async fn default_finish_writes_everything_then_ends_the_stream() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut io = Trickle {
            inner: server,
            max: 3,
            stall: false,
        };
        io.finish(b"the last words").await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"the last words");
    }

    #[tokio::test]
    async fn finish_goes_through_boxes_and_wrappers() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut boxed: Box<dyn Io> = Box::new(AnyIo(server));
        boxed.finish(b"boxed").await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"boxed");
    }
}
