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
