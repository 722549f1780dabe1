//! Reading a request body from the connection, decoding its framing on the way.

use std::fmt;
use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::h2::H2Body;
use crate::net::io::Io;
use crate::{BodyDecoder, BodyKind, Error, Limits};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body's framing is malformed or over a limit; the driver answers with
    /// this error's status and closes the connection.
    #[error(transparent)]
    Invalid(#[from] Error),
    /// The transport failed.
    #[error("reading the request body: {0}")]
    Io(#[from] io::Error),
}

/// Per-request body state kept by the connection, so the driver knows after the
/// service returns whether the body was read to its end.
#[derive(Debug, Clone)]
pub(crate) struct BodyProgress {
    pub decoder: BodyDecoder,
    /// `Expect: 100-continue` was asked and the interim answer not sent yet.
    pub continue_pending: bool,
    /// A framing error met while reading; the driver answers it.
    pub error: Option<Error>,
    /// The body stopped for an I/O failure or timeout; the connection cannot go on.
    pub broken: bool,
    pub timeout: Duration,
}

impl BodyProgress {
    pub fn new(kind: BodyKind, expect_continue: bool, limits: &Limits) -> Self {
        // A request body is never close-delimited (RFC 9112 §6.3): the parser
        // gives requests without framing headers an empty body.
        let kind = if kind == BodyKind::UntilClose {
            BodyKind::Empty
        } else {
            kind
        };
        let decoder = BodyDecoder::new(kind, limits);
        BodyProgress {
            continue_pending: expect_continue && !decoder.is_done(),
            decoder,
            error: None,
            broken: false,
            timeout: limits.body_timeout,
        }
    }

    pub fn is_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// The bytes still to come when the body has a declared length.
    pub fn remaining_len(&self) -> Option<u64> {
        self.decoder.remaining_len()
    }

    pub fn is_chunked(&self) -> bool {
        self.decoder.is_chunked()
    }
}

/// The body of a request, read on demand from the connection.
///
/// Data comes out as [`Bytes`] split from the connection's read buffer, without
/// copying. When the client sent `Expect: 100-continue`, the interim
/// `100 Continue` is written on the first read, so a service that answers without
/// reading never invites the body.
///
/// Over HTTP/2 the pieces are the DATA frames' payloads; the flow-control
/// window is opened again as they are taken, so a service that reads slowly
/// holds the client back instead of buffering its body.
pub struct RequestBody<'a>(Source<'a>);

enum Source<'a> {
    H1(H1Body<'a>),
    H2(&'a mut H2Body),
}

struct H1Body<'a> {
    io: &'a mut dyn Io,
    buf: &'a mut BytesMut,
    progress: &'a mut BodyProgress,
}

impl fmt::Debug for RequestBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::H1(b) => f
                .debug_struct("RequestBody")
                .field("decoder", &b.progress.decoder)
                .finish(),
            Source::H2(b) => f.debug_tuple("RequestBody").field(b).finish(),
        }
    }
}

impl<'a> RequestBody<'a> {
    pub(crate) fn new(io: &'a mut dyn Io, buf: &'a mut BytesMut, progress: &'a mut BodyProgress) -> Self {
        RequestBody(Source::H1(H1Body { io, buf, progress }))
    }

    pub(crate) fn h2(body: &'a mut H2Body) -> Self {
        RequestBody(Source::H2(body))
    }

    /// True when the body has been read to its end (or there is none).
    pub fn is_end(&self) -> bool {
        match &self.0 {
            Source::H1(b) => b.progress.is_done(),
            Source::H2(b) => b.is_done(),
        }
    }

    /// The bytes still to come when the body has a declared length.
    pub fn remaining_len(&self) -> Option<u64> {
        match &self.0 {
            Source::H1(b) => b.progress.remaining_len(),
            Source::H2(b) => b.remaining_len(),
        }
    }

    /// True when the body is chunked on the wire; over HTTP/2, when its
    /// length was not declared (its HTTP/1.1 form is chunked).
    pub fn is_chunked(&self) -> bool {
        match &self.0 {
            Source::H1(b) => b.progress.is_chunked(),
            Source::H2(b) => b.is_chunked(),
        }
    }

    /// The next piece of the body, or `None` at its end.
    pub async fn data(&mut self) -> Result<Option<Bytes>, BodyError> {
        match &mut self.0 {
            Source::H1(b) => b.data().await,
            Source::H2(b) => b.data().await,
        }
    }

    /// Reads the whole body into memory, refusing more than `max` bytes
    /// ([`Error::BodyTooLarge`]).
    pub async fn to_bytes(&mut self, max: usize) -> Result<Bytes, BodyError> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.data().await? {
            if out.len() + chunk.len() > max {
                self.refuse(Error::BodyTooLarge);
                return Err(BodyError::Invalid(Error::BodyTooLarge));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Notes that the body broke a limit: the driver answers `e`.
    fn refuse(&mut self, e: Error) {
        match &mut self.0 {
            Source::H1(b) => {
                b.progress.error = Some(e);
                b.progress.decoder.abandon();
            }
            Source::H2(b) => b.error = Some(e),
        }
    }
}

impl H1Body<'_> {
    async fn data(&mut self) -> Result<Option<Bytes>, BodyError> {
        let r = self.next_data().await;
        match &r {
            Err(BodyError::Invalid(e)) => {
                self.progress.error = Some(*e);
                self.progress.decoder.abandon();
            }
            Err(BodyError::Io(_)) => {
                self.progress.broken = true;
                self.progress.decoder.abandon();
            }
            Ok(_) => {}
        }
        r
    }

    async fn next_data(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            if !self.buf.is_empty() || self.progress.decoder.is_done() {
                let p = self.progress.decoder.decode(self.buf)?;
                if !p.data.is_empty() {
                    let mut part = self.buf.split_to(p.consumed);
                    part.advance(p.data.start);
                    return Ok(Some(part.freeze()));
                }
                self.buf.advance(p.consumed);
                if p.done {
                    return Ok(None);
                }
                if p.consumed > 0 {
                    continue;
                }
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes into the buffer, sending `100 Continue` first if owed.
    async fn fill(&mut self) -> Result<(), BodyError> {
        if self.progress.continue_pending {
            self.progress.continue_pending = false;
            let w = async {
                self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                self.io.flush().await
            };
            tokio::time::timeout(self.progress.timeout, w)
                .await
                .map_err(|_| Error::BodyTimeout)??;
        }
        self.buf.reserve(16 * 1024);
        let n = tokio::time::timeout(self.progress.timeout, self.io.read_buf(self.buf))
            .await
            .map_err(|_| Error::BodyTimeout)??;
        if n == 0 {
            return Err(BodyError::Invalid(Error::UnexpectedEof));
        }
        Ok(())
    }
}
