//! `multipart/byteranges` bodies for requests with several ranges (RFC 9110 §14.6).

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use http_core::Body;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Bytes buffered between the file reader task and the connection.
const PIPE_CAPACITY: usize = 64 * 1024;

/// A boundary unlikely to appear in any file: a per-process counter mixed with the clock.
pub(crate) fn boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:016x}{:08x}", t ^ 0x9e37_79b9_7f4a_7c15, n)
}

/// The part headers for each range, and the closing delimiter.
fn frame(ranges: &[(u64, u64)], len: u64, content_type: &[u8], boundary: &str) -> (Vec<Bytes>, Bytes) {
    let heads = ranges
        .iter()
        .enumerate()
        .map(|(i, (s, e))| {
            let mut h = BytesMut::new();
            if i > 0 {
                h.extend_from_slice(b"\r\n");
            }
            h.extend_from_slice(format!("--{boundary}\r\nContent-Type: ").as_bytes());
            h.extend_from_slice(content_type);
            h.extend_from_slice(format!("\r\nContent-Range: bytes {s}-{e}/{len}\r\n\r\n").as_bytes());
            h.freeze()
        })
        .collect();
    (heads, Bytes::from(format!("\r\n--{boundary}--\r\n")))
}

/// The body for `ranges` of an in-memory file.
pub(crate) fn from_memory(ranges: &[(u64, u64)], data: &Bytes, content_type: &[u8], boundary: &str) -> Body {
    let (heads, tail) = frame(ranges, data.len() as u64, content_type, boundary);
    let mut out = BytesMut::new();
    for (head, (s, e)) in heads.iter().zip(ranges) {
        out.extend_from_slice(head);
        out.extend_from_slice(&data[*s as usize..=*e as usize]);
    }
    out.extend_from_slice(&tail);
    Body::Full(out.freeze())
}

/// The body for `ranges` of a file on disk, streamed with bounded memory: a task
/// copies each part into a pipe the connection reads from.
pub(crate) fn from_file(
    ranges: Vec<(u64, u64)>,
    path: PathBuf,
    len: u64,
    content_type: &[u8],
    boundary: &str,
) -> Body {
    let (heads, tail) = frame(&ranges, len, content_type, boundary);
    let total = heads.iter().map(|h| h.len() as u64).sum::<u64>()
        + ranges.iter().map(|(s, e)| e - s + 1).sum::<u64>()
        + tail.len() as u64;
    let (reader, mut writer) = tokio::io::duplex(PIPE_CAPACITY);
    tokio::spawn(async move {
        let copy = async {
            let mut file = tokio::fs::File::open(&path).await?;
            for (head, (s, e)) in heads.iter().zip(&ranges) {
                writer.write_all(head).await?;
                file.seek(SeekFrom::Start(*s)).await?;
                let mut part = (&mut file).take(e - s + 1);
                tokio::io::copy(&mut part, &mut writer).await?;
            }
            writer.write_all(&tail).await?;
            Ok::<(), std::io::Error>(())
        };
        // A failure leaves the body short of its length; the driver then aborts
        // the connection, which is all that can be done mid-response.
        if let Err(e) = copy.await {
            tracing::debug!(error = %e, "multipart body stopped");
        }
    });
    Body::Stream {
        len: Some(total),
        reader: Box::new(reader),
    }
}
