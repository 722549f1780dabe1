//! A request body arriving in DATA frames, and what a stream's service call
//! shares with the connection: the connection puts the frames' bytes in the
//! stream's [`Inbox`] and the service takes them out through [`H2Body`];
//! the bytes taken are given back to the client as flow-control window by
//! the connection, so a slow service holds the client to the stream's
//! window. The request body limit and timeout apply as over HTTP/1.1.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use crate::server::body::BodyError;
use crate::{BodyKind, Error, Limits};

/// What the connection and one stream's service call share.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    /// Body bytes received and not yet taken by the service.
    pub(super) data: VecDeque<Bytes>,
    /// The client ended the stream: no more data comes.
    pub(super) end: bool,
    /// The stream is gone (reset by the client, refused for a framing error,
    /// the connection ended): the service call is cancelled.
    pub(super) gone: bool,
    /// Bytes the service has taken since the connection last looked: the
    /// window the connection gives back.
    pub(super) taken: usize,
    /// The service waits for data.
    pub(super) body_waker: Option<Waker>,
    /// The stream's task waits for its service call (woken to be cancelled).
    pub(super) task_waker: Option<Waker>,
    /// The server reset the stream for this error of the client's (a body
    /// that disagrees with its `content-length`, bad trailers).
    pub(super) refused: Option<Error>,
}

/// The [`Inbox`] of a stream, shared.
#[derive(Debug, Default, Clone)]
pub(super) struct Shared(Arc<Mutex<Inbox>>);

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inbox> {
        // A panic while the lock was held leaves nothing half-done that
        // matters here: the data are whole `Bytes`.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the stream gone and wakes whoever waits on it.
    pub(super) fn cancel(&self) {
        let mut i = self.lock();
        i.gone = true;
        i.data.clear();
        if let Some(w) = i.body_waker.take() {
            w.wake();
        }
        if let Some(w) = i.task_waker.take() {
            w.wake();
        }
    }
}

/// The body of one HTTP/2 request and how far it has been read.
#[derive(Debug)]
pub(crate) struct H2Body {
    inbox: Shared,
    /// Bytes still owed by a declared `content-length` (the connection holds
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
    pub(super) fn new(inbox: Shared, kind: BodyKind, end_stream: bool, limits: &Limits) -> Self {
        let remaining = match kind {
            BodyKind::Length(n) => Some(n),
            BodyKind::Empty => Some(0),
            BodyKind::Chunked | BodyKind::UntilClose => None,
        };
        H2Body {
            done: remaining == Some(0) || end_stream,
            inbox,
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
        if self.done {
            return Ok(None);
        }
        let next = poll_fn(|cx| {
            let mut i = self.inbox.lock();
            if let Some(b) = i.data.pop_front() {
                i.taken += b.len();
                return Poll::Ready(Ok(Some(b)));
            }
            if i.gone {
                return Poll::Ready(Err(()));
            }
            if i.end {
                return Poll::Ready(Ok(None));
            }
            if !i.body_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                i.body_waker = Some(cx.waker().clone());
            }
            Poll::Pending
        });
        let next = match tokio::time::timeout(self.timeout, next).await {
            Ok(next) => next,
            Err(_) => return Err(self.fail(Error::BodyTimeout)),
        };
        match next {
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(()) => {
                self.broken = true;
                self.done = true;
                Err(BodyError::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "HTTP/2 stream reset",
                )))
            }
            Ok(Some(data)) => {
                let n = data.len() as u64;
                self.received += n;
                if let Some(r) = &mut self.remaining {
                    *r = r.saturating_sub(n);
                }
                if self.received > self.max {
                    return Err(self.fail(Error::BodyTooLarge));
                }
                if self.remaining == Some(0) {
                    // The connection checks that the stream ends here.
                    self.done = true;
                }
                Ok(Some(data))
            }
        }
    }

    fn fail(&mut self, e: Error) -> BodyError {
        self.error = Some(e);
        self.done = true;
        BodyError::Invalid(e)
    }
}
