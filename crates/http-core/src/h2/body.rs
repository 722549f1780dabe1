//! A request body arriving in DATA frames: flow-control capacity is given
//! back as the service takes the data, so a slow service holds the client to
//! the stream's window; the request body limit and timeout apply as over
//! HTTP/1.1.

use std::io;
use std::time::Duration;

use ::h2::RecvStream;
use bytes::Bytes;

use crate::server::body::BodyError;
use crate::{BodyKind, Error, Limits};

/// The body of one HTTP/2 request and how far it has been read.
#[derive(Debug)]
pub(crate) struct H2Body {
    recv: RecvStream,
    /// Bytes still owed by a declared `content-length` (the h2 crate holds
    /// the client to it: more or fewer bytes reset the stream).
    remaining: Option<u64>,
    received: u64,
    max: u64,
    timeout: Duration,
    done: bool,
    /// The body went over a limit or stalled: the driver answers this error.
    pub(crate) error: Option<Error>,
    /// The stream failed (reset by the client, connection gone).
    pub(crate) broken: bool,
}

impl H2Body {
    pub(crate) fn new(recv: RecvStream, kind: BodyKind, limits: &Limits) -> Self {
        let remaining = match kind {
            BodyKind::Length(n) => Some(n),
            BodyKind::Empty => Some(0),
            BodyKind::Chunked | BodyKind::UntilClose => None,
        };
        H2Body {
            done: remaining == Some(0) || recv.is_end_stream(),
            recv,
            remaining,
            received: 0,
            max: limits.max_body_len,
            timeout: limits.body_timeout,
            error: None,
            broken: false,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    pub(crate) fn remaining_len(&self) -> Option<u64> {
        if self.done {
            return Some(0);
        }
        self.remaining
    }

    /// True while the body's length is unknown (no `content-length`): the
    /// HTTP/1.1 form of such a body is chunked.
    pub(crate) fn is_chunked(&self) -> bool {
        self.remaining.is_none()
    }

    pub(crate) async fn data(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let next = match tokio::time::timeout(self.timeout, self.recv.data()).await {
                Ok(next) => next,
                Err(_) => return Err(self.fail(Error::BodyTimeout)),
            };
            match next {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    self.broken = true;
                    self.done = true;
                    return Err(BodyError::Io(io::Error::other(e)));
                }
                Some(Ok(data)) => {
                    let n = data.len();
                    // The window opens again as the service takes the bytes.
                    let _ = self.recv.flow_control().release_capacity(n);
                    self.received += n as u64;
                    if let Some(r) = &mut self.remaining {
                        *r = r.saturating_sub(n as u64);
                    }
                    if self.received > self.max {
                        return Err(self.fail(Error::BodyTooLarge));
                    }
                    if self.recv.is_end_stream() {
                        self.done = true;
                    }
                    if n > 0 {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: Error) -> BodyError {
        self.error = Some(e);
        self.done = true;
        BodyError::Invalid(e)
    }
}
