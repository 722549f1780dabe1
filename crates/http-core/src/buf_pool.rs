//! A per-thread free list of I/O buffers, so that an idle connection holds none
//! and a busy one does not allocate for each request.

use std::cell::RefCell;

use bytes::BytesMut;

/// Capacity of a pooled buffer: a typical head and a small response fit in one.
pub(crate) const BUF_CAPACITY: usize = 8 * 1024;
/// Buffers kept per thread: enough for the requests one thread has in progress
/// at once under ordinary load (the benchmarks' 50 connections: a proxied
/// request holds three at its peak, its client's read and write buffers and
/// the upstream exchange's). 256 were kept once, and a burst of pipelining
/// clients left rr-proxy holding 8 MB of them after it had ended (hostile-load
/// test: 14 MB over idle with 256, 6 MB with 64); 128 is 1 MiB a thread at most.
const MAX_POOLED: usize = 128;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with at least [`BUF_CAPACITY`] bytes of room.
pub(crate) fn take() -> BytesMut {
    FREE.with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(BUF_CAPACITY))
}

/// Returns a buffer to this thread's list. Buffers that grew large are dropped
/// rather than kept, so one big response does not pin memory forever.
pub(crate) fn give(mut buf: BytesMut) {
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    // A read buffer whose heads were split off has a smaller capacity left; once
    // those heads are dropped, `reserve` takes the whole allocation back without
    // allocating. Without this no read buffer would ever be reused.
    buf.reserve(BUF_CAPACITY);
    if buf.capacity() < BUF_CAPACITY || buf.capacity() > 4 * BUF_CAPACITY {
        return;
    }
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < MAX_POOLED {
            f.push(buf);
        }
    });
}

/// A byte queue over memory that is always initialised, for writers that
/// want a `&mut [u8]` to fill (rustls' unbuffered API, `read` on a socket):
/// its room is zeroed once, when the memory is first allocated, and not again
/// each time it is handed out. Empty and unallocated until bytes arrive;
/// [`release`](Self::release) gives the memory back to this thread's list.
#[derive(Debug, Default)]
pub(crate) struct InitBuf {
    /// `buf.len()` is the allocation: all of it initialised.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

thread_local! {
    static FREE_INIT: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// [`InitBuf`] memory kept per thread: a TLS connection holds two while
/// busy. 32 of at most [`MAX_INIT_KEPT`] is 3 MiB a thread at most.
const MAX_POOLED_INIT: usize = 32;
/// The largest [`InitBuf`] memory kept for reuse: a TLS connection's
/// outgoing buffer under a large response (64 KiB and a record).
const MAX_INIT_KEPT: usize = 96 * 1024;

impl InitBuf {
    /// The bytes waiting.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The bytes waiting, to be changed in place.
    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Memory held, waiting bytes or not.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Room for at least `n` more bytes after the waiting ones, to write
    /// into and then [`commit`](Self::commit).
    pub(crate) fn room(&mut self, n: usize) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = FREE_INIT.with(|f| f.borrow_mut().pop()).unwrap_or_default();
        }
        if self.buf.len() - self.end < n {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < n {
                let want = (self.end + n).max(BUF_CAPACITY).max(self.buf.len() * 2);
                self.buf.resize(want, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes written into [`room`](Self::room) as waiting.
    pub(crate) fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Drops `n` waiting bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops every waiting byte.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Gives the memory back to this thread's list if no bytes wait (a
    /// buffer that grew past [`MAX_INIT_KEPT`] is freed instead).
    pub(crate) fn release(&mut self) {
        if !self.is_empty() || self.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        self.clear();
        if buf.len() > MAX_INIT_KEPT {
            return;
        }
        FREE_INIT.with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < MAX_POOLED_INIT {
                f.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: after a head was split off (and dropped), the buffer used to be
    /// refused for having less than `BUF_CAPACITY` left, so every request
    /// allocated a new 8 KiB buffer.
    #[test]
    fn a_buffer_with_heads_split_off_is_reused() {
        let pooled = || FREE.with(|f| f.borrow().len());
        let mut buf = take();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let head = buf.split_to(buf.len()).freeze();
        drop(head);
        let before = pooled();
        give(buf);
        assert_eq!(pooled(), before + 1, "the buffer was kept for reuse");
        assert!(take().capacity() >= BUF_CAPACITY);
    }
}
