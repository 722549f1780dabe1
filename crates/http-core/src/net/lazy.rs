//! An accepted TCP stream that joins the event loop only when it has to wait.
//!
//! Registering a socket with epoll and removing it again costs two system calls
//! and a slot in the reactor. A connection that is answered and closed without
//! ever waiting (an HTTP/1.0 client whose request has arrived by the time it is
//! accepted, as in the course's `ab` table) needs neither: its reads and writes
//! succeed at once. [`LazyTcpStream`] therefore tries each operation on the bare
//! non-blocking socket and registers it with tokio only when one would block;
//! from then on it is an ordinary [`tokio::net::TcpStream`].

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::io::{poll_write_and_shutdown, Io};

/// A TCP stream that is registered with the tokio reactor on its first operation
/// that would block. [`accept_loop`](crate::accept_loop) hands these to its
/// handlers; they read and write like a [`TcpStream`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use http_core::LazyTcpStream;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
/// let (accepted, _) = listener.accept().unwrap();
/// accepted.set_nonblocking(true).unwrap();
/// let mut server = LazyTcpStream::from_std(accepted);
///
/// client.write_all(b"ping").await.unwrap();
/// let mut buf = [0u8; 4];
/// server.read_exact(&mut buf).await.unwrap();
/// server.write_all(b"pong").await.unwrap();
/// client.read_exact(&mut buf).await.unwrap();
/// assert_eq!(&buf, b"pong");
/// # });
/// ```
#[derive(Debug)]
pub struct LazyTcpStream {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// Not yet registered: every operation is tried directly.
    Raw(std::net::TcpStream),
    Registered(TcpStream),
    /// Registration failed; the socket is closed.
    Failed,
}

impl LazyTcpStream {
    /// Wraps a connected stream, which must be in non-blocking mode (as streams
    /// accepted from a non-blocking listener with `accept4(SOCK_NONBLOCK)` are).
    pub fn from_std(stream: std::net::TcpStream) -> Self {
        LazyTcpStream {
            inner: Inner::Raw(stream),
        }
    }

    /// Registers the stream (if it is not already) and returns it as a tokio stream.
    pub fn into_tokio(mut self) -> io::Result<TcpStream> {
        self.register()?;
        match self.inner {
            Inner::Registered(s) => Ok(s),
            _ => Err(closed()),
        }
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Raw(s) => s.peer_addr(),
            Inner::Registered(s) => s.peer_addr(),
            Inner::Failed => Err(closed()),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Raw(s) => s.local_addr(),
            Inner::Registered(s) => s.local_addr(),
            Inner::Failed => Err(closed()),
        }
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match &self.inner {
            Inner::Raw(s) => s.set_nodelay(on),
            Inner::Registered(s) => s.set_nodelay(on),
            Inner::Failed => Err(closed()),
        }
    }

    /// Whether the stream has joined the reactor (it has had to wait).
    pub fn is_registered(&self) -> bool {
        matches!(self.inner, Inner::Registered(_))
    }

    /// Offers `last` to the socket with `MSG_MORE`, so that it waits for what
    /// follows (the FIN) instead of leaving as a segment of its own. Returns
    /// how much the socket took.
    #[cfg(target_os = "linux")]
    fn send_more(&self, last: &[u8]) -> io::Result<usize> {
        let flags = libc::MSG_MORE | libc::MSG_NOSIGNAL;
        match &self.inner {
            Inner::Raw(s) => socket2::SockRef::from(s).send_with_flags(last, flags),
            Inner::Registered(s) => s.try_io(tokio::io::Interest::WRITABLE, || {
                socket2::SockRef::from(s).send_with_flags(last, flags)
            }),
            Inner::Failed => Err(closed()),
        }
    }

    fn register(&mut self) -> io::Result<()> {
        if matches!(self.inner, Inner::Raw(_)) {
            if let Inner::Raw(s) = std::mem::replace(&mut self.inner, Inner::Failed) {
                self.inner = Inner::Registered(TcpStream::from_std(s)?);
            }
        }
        Ok(())
    }

    /// Runs `op` on the bare socket while unregistered. `None` means the stream
    /// is (now) registered and the caller must go through tokio.
    fn try_raw<R>(
        &mut self,
        mut op: impl FnMut(&std::net::TcpStream) -> io::Result<R>,
    ) -> Option<io::Result<R>> {
        let Inner::Raw(s) = &self.inner else {
            return None;
        };
        loop {
            match op(s) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return match self.register() {
                        Ok(()) => None,
                        Err(e) => Some(Err(e)),
                    };
                }
                other => return Some(other),
            }
        }
    }

    fn registered(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match &mut self.inner {
            Inner::Registered(s) => Ok(Pin::new(s)),
            _ => Err(closed()),
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "socket closed after a failed registration",
    )
}

impl AsyncRead for LazyTcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(r) = self.try_raw(|mut s| s.read(buf.initialize_unfilled())) {
            return Poll::Ready(r.map(|n| buf.advance(n)));
        }
        self.registered()?.poll_read(cx, buf)
    }
}

impl AsyncWrite for LazyTcpStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(r) = self.try_raw(|mut s| s.write(buf)) {
            return Poll::Ready(r);
        }
        self.registered()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(r) = self.try_raw(|mut s| s.write_vectored(bufs)) {
            return Poll::Ready(r);
        }
        self.registered()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(r) = self.try_raw(|s| s.shutdown(Shutdown::Write)) {
            return Poll::Ready(r);
        }
        self.registered()?.poll_shutdown(cx)
    }
}

impl Io for LazyTcpStream {
    /// Sends `last` and then the FIN, in one segment when the socket takes all of
    /// `last` at once: the bytes are queued with `MSG_MORE` so that the shutdown
    /// carries them. A connection that closes after its response so costs one
    /// packet fewer (and the peer one wakeup fewer) than a write and a shutdown.
    fn poll_finish(self: Pin<&mut Self>, cx: &mut Context<'_>, last: &mut &[u8]) -> Poll<io::Result<()>> {
        #[cfg(target_os = "linux")]
        if !last.is_empty() {
            match self.send_more(last) {
                Ok(n) => *last = &last[n..],
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        // Whatever did not fit goes the usual way (and pushes the queued part);
        // if the socket is full, the rest is offered with `MSG_MORE` again when
        // it has room and this is polled anew.
        poll_write_and_shutdown(self, cx, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (tokio::net::TcpStream, LazyTcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        (client, LazyTcpStream::from_std(accepted))
    }

    #[tokio::test]
    async fn answers_waiting_data_without_registering() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"request").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut buf = [0u8; 7];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"answer").await.unwrap();
        server.shutdown().await.unwrap();
        assert!(!server.is_registered());
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"answer");
    }

    #[tokio::test]
    async fn registers_and_wakes_when_a_read_must_wait() {
        let (mut client, mut server) = pair().await;
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 5];
            server.read_exact(&mut buf).await.unwrap();
            (server.is_registered(), buf)
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        client.write_all(b"late!").await.unwrap();
        let (registered, buf) = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("the read was never woken")
            .unwrap();
        assert!(registered);
        assert_eq!(&buf, b"late!");
    }

    #[tokio::test]
    async fn registers_and_wakes_when_a_write_must_wait() {
        let (mut client, mut server) = pair().await;
        // Far more than the socket buffers hold: the write blocks until the client reads.
        let body = vec![7u8; 32 << 20];
        let writer = tokio::spawn(async move {
            server.write_all(&body).await.unwrap();
            server.shutdown().await.unwrap();
            server.is_registered()
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 32 << 20);
        assert!(got.iter().all(|&b| b == 7));
        assert!(writer.await.unwrap());
    }

    #[tokio::test]
    async fn finish_sends_the_last_bytes_and_the_end_of_stream() {
        for registered in [false, true] {
            let (mut client, server) = pair().await;
            let mut server = if registered {
                let s = server.into_tokio().unwrap();
                s.writable().await.unwrap();
                LazyTcpStream {
                    inner: Inner::Registered(s),
                }
            } else {
                server
            };
            server.finish(b"last words").await.unwrap();
            assert_eq!(server.is_registered(), registered);
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"last words");
            // Larger than the socket buffer: the rest follows the ordinary way.
            let (mut client, mut server) = pair().await;
            let big = vec![3u8; 16 << 20];
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                client.read_to_end(&mut got).await.unwrap();
                got
            });
            server.finish(&big).await.unwrap();
            assert_eq!(reader.await.unwrap(), big);
        }
    }

    #[tokio::test]
    async fn sees_end_of_stream_and_converts_to_tokio() {
        let (client, server) = pair().await;
        let mut tokio_stream = server.into_tokio().unwrap();
        drop(client);
        let mut buf = [0u8; 8];
        assert_eq!(tokio_stream.read(&mut buf).await.unwrap(), 0);
    }
}
