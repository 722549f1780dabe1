//! Compression on the fly: which files, at what level, in memory (cached
//! variants, compressed once) or as a stream (files too large to keep).

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use tokio::io::{AsyncRead, BufReader, ReadBuf};

use crate::encoding::{Coding, Codings};

/// Media types compressed on the fly unless the builder adds more
/// ([`Builder::compress_type`](crate::Builder::compress_type)): text, scripts,
/// styles, JSON and XML (and their `+json` / `+xml` kinds, SVG among them),
/// WebAssembly, uncompressed fonts and icons. Everything else is sent as it is:
/// images other than SVG, audio, video, archives and WOFF fonts are compressed
/// already. `type/*` names a whole top-level type.
pub const COMPRESSIBLE_TYPES: &[&str] = &[
    "text/*",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/json",
    "application/*+json",
    "application/xml",
    "application/*+xml",
    "image/svg+xml",
    "application/wasm",
    "application/x-sh",
    "application/x-tar",
    "application/rtf",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
];

/// How hard to compress. The same setting maps to each coding's own scale.
///
/// | level | zstd | br | gzip |
/// |---|---|---|---|
/// | `Fast` (default) | 1 | 1 | 1 |
/// | `Balanced` | 3 | 5 | 6 |
/// | `Best` | 19 | 11 | 9 |
///
/// `Best` applies to files compressed once and kept in the cache; files
/// streamed (larger than the cache's file limit) are compressed at `Balanced`
/// at most, so that one download costs bounded CPU and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CompressionLevel {
    /// What nginx, Caddy and static-web-server use by default: most of the
    /// saving for little CPU.
    #[default]
    Fast,
    /// The codings' usual defaults.
    Balanced,
    /// Smallest output, slow; for sites whose files change rarely.
    Best,
}

impl CompressionLevel {
    /// The native level of `c`.
    pub(crate) fn of(self, c: Coding) -> i32 {
        match (self, c) {
            (CompressionLevel::Fast, _) => 1,
            (CompressionLevel::Balanced, Coding::Zstd) => 3,
            (CompressionLevel::Balanced, Coding::Brotli) => 5,
            (CompressionLevel::Balanced, Coding::Gzip) => 6,
            (CompressionLevel::Best, Coding::Zstd) => 19,
            (CompressionLevel::Best, Coding::Brotli) => 11,
            (CompressionLevel::Best, Coding::Gzip) => 9,
        }
    }

    /// The level used for streams.
    pub(crate) fn for_stream(self) -> CompressionLevel {
        match self {
            CompressionLevel::Best => CompressionLevel::Balanced,
            other => other,
        }
    }
}

impl std::str::FromStr for CompressionLevel {
    type Err = String;

    /// `fast`, `balanced` or `best`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fast" => Ok(CompressionLevel::Fast),
            "balanced" => Ok(CompressionLevel::Balanced),
            "best" => Ok(CompressionLevel::Best),
            _ => Err(format!(
                "unknown compression level {s:?} (expected fast, balanced or best)"
            )),
        }
    }
}

/// log2 of the window of a streamed brotli or zstd encoder: 512 KiB, so that
/// one download holds about 1–2 MiB of encoder state whatever the file's size.
const STREAM_WINDOW_LOG: u32 = 19;
/// Bytes read from the file at a time by a streaming encoder.
const STREAM_READ: usize = 32 * 1024;

/// The compression settings, fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Codings compressed on the fly, in the server's order of preference.
    pub on_the_fly: Codings,
    /// Every coding in the server's order: the configured list, then the rest
    /// (which only sidecars can provide), for breaking ties.
    pub preference: [Coding; 3],
    pub level: CompressionLevel,
    pub min_size: u64,
    pub types: Vec<String>,
}

impl Settings {
    pub fn new(list: &[Coding], level: CompressionLevel, min_size: u64, extra: &[String]) -> Settings {
        let mut preference = Coding::ALL;
        let mut i = 0;
        for c in list.iter().chain(Coding::ALL.iter()) {
            if !preference[..i].contains(c) {
                preference[i] = *c;
                i += 1;
            }
        }
        let mut types: Vec<String> = COMPRESSIBLE_TYPES.iter().map(|t| (*t).to_owned()).collect();
        types.extend(extra.iter().map(|t| t.trim().to_ascii_lowercase()));
        Settings {
            on_the_fly: list.iter().fold(0, |m, c| m | c.bit()),
            preference,
            level,
            min_size,
            types,
        }
    }

    /// The codings a file of `len` bytes and type `content_type` may be
    /// compressed to on the fly (empty when it must be sent as it is).
    pub fn codings_for(&self, content_type: &str, len: u64) -> Codings {
        if self.on_the_fly == 0 || len < self.min_size {
            return 0;
        }
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if self.types.iter().any(|pattern| type_matches(pattern, &mime)) {
            self.on_the_fly
        } else {
            0
        }
    }
}

/// `pattern` is `type/subtype`, `type/*`, or `type/*+suffix`.
fn type_matches(pattern: &str, mime: &str) -> bool {
    let (Some((pt, ps)), Some((mt, ms))) = (pattern.split_once('/'), mime.split_once('/')) else {
        return false;
    };
    if pt != mt {
        return false;
    }
    match ps.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => ms.ends_with(suffix) && ms.len() > suffix.len(),
        None => ps == ms,
    }
}

/// Compresses `data` in memory (blocking; run it off the async workers).
pub(crate) fn compress(c: Coding, level: CompressionLevel, data: &[u8]) -> io::Result<Vec<u8>> {
    let native = level.of(c);
    match c {
        Coding::Gzip => {
            let mut out = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 3),
                flate2::Compression::new(native as u32),
            );
            out.write_all(data)?;
            out.finish()
        }
        Coding::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: native,
                size_hint: data.len(),
                ..Default::default()
            };
            let mut out = Vec::with_capacity(data.len() / 3);
            brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
            Ok(out)
        }
        Coding::Zstd => zstd::bulk::compress(data, native),
    }
}

/// `file`, compressed as it is read: memory bounded by the
/// encoder's window and two buffers, whatever the file's size.
pub(crate) fn stream(
    c: Coding,
    level: CompressionLevel,
    file: impl AsyncRead + Send + Unpin + 'static,
) -> Box<dyn AsyncRead + Send + Unpin> {
    use async_compression::Level;
    let native = level.for_stream().of(c);
    let input = BufReader::with_capacity(STREAM_READ, file);
    match c {
        Coding::Gzip => Box::new(GzipEncoder::with_quality(input, Level::Precise(native))),
        Coding::Brotli => {
            let params = async_compression::brotli::EncoderParams::default()
                .quality(Level::Precise(native))
                .window_size(STREAM_WINDOW_LOG as i32);
            Box::new(BrotliEncoder::with_params(input, params))
        }
        Coding::Zstd => Box::new(ZstdEncoder::with_quality_and_params(
            input,
            Level::Precise(native),
            &[async_compression::zstd::CParameter::window_log(STREAM_WINDOW_LOG)],
        )),
    }
}

/// Reads exactly `len` bytes of a file: a file cut short while it is sent is
/// an error (the connection is aborted, as for an identity stream), not a
/// shorter representation sent as if complete.
pub(crate) struct Exact<R> {
    inner: tokio::io::Take<R>,
    remaining: u64,
}

impl<R: AsyncRead + Unpin> Exact<R> {
    pub fn new(inner: R, len: u64) -> Self {
        use tokio::io::AsyncReadExt;
        Exact {
            inner: inner.take(len),
            remaining: len,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Exact<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let asked = buf.remaining() > 0;
        std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let n = (buf.filled().len() - before) as u64;
        if n == 0 && asked && self.remaining > 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than when it was opened",
            )));
        }
        self.remaining -= n;
        Poll::Ready(Ok(()))
    }
}

/// The entity-tag of a compressed representation: the file's own tag with the
/// coding and its native level appended, so that each encoding (and each
/// level, whose bytes differ) has its own strong tag.
pub(crate) fn etag(identity: &[u8], c: Coding, level: i32) -> String {
    let inner = identity
        .strip_prefix(b"\"")
        .and_then(|t| t.strip_suffix(b"\""))
        .unwrap_or(identity);
    format!("\"{}-{}{}\"", String::from_utf8_lossy(inner), c.token(), level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compressible_types() {
        let s = Settings::new(
            &Coding::ALL,
            CompressionLevel::Fast,
            100,
            &["application/x-foo".into()],
        );
        let all = 0b111;
        for (ctype, want) in [
            ("text/html; charset=utf-8", all),
            ("text/css", all),
            ("application/javascript; charset=utf-8", all),
            ("application/json", all),
            ("application/manifest+json", all),
            ("image/svg+xml; charset=utf-8", all),
            ("application/wasm", all),
            ("application/x-foo", all),
            ("image/png", 0),
            ("image/jpeg", 0),
            ("video/mp4", 0),
            ("audio/mpeg", 0),
            ("application/zip", 0),
            ("application/gzip", 0),
            ("font/woff2", 0),
            ("font/woff", 0),
            ("application/octet-stream", 0),
            ("application/json+zip", 0),
        ] {
            assert_eq!(s.codings_for(ctype, 100), want, "{ctype}");
        }
        assert_eq!(s.codings_for("text/html", 99), 0, "under the minimum size");
        let off = Settings::new(&[], CompressionLevel::Fast, 0, &[]);
        assert_eq!(off.codings_for("text/html", 1000), 0);
        assert_eq!(off.preference, Coding::ALL);
    }

    #[test]
    fn preference_is_the_list_then_the_rest() {
        let s = Settings::new(&[Coding::Gzip], CompressionLevel::Fast, 0, &[]);
        assert_eq!(s.preference, [Coding::Gzip, Coding::Zstd, Coding::Brotli]);
        assert_eq!(s.on_the_fly, Coding::Gzip.bit());
    }

    #[test]
    fn every_coding_round_trips_at_every_level() {
        let data = "hello, compressible world. ".repeat(400);
        for level in [
            CompressionLevel::Fast,
            CompressionLevel::Balanced,
            CompressionLevel::Best,
        ] {
            for c in Coding::ALL {
                let packed = compress(c, level, data.as_bytes()).unwrap();
                assert!(packed.len() < data.len() / 10, "{c} {level:?}: {}", packed.len());
                let mut back = Vec::new();
                match c {
                    Coding::Gzip => {
                        flate2::read::GzDecoder::new(&packed[..])
                            .read_to_end(&mut back)
                            .unwrap();
                    }
                    Coding::Brotli => {
                        brotli::Decompressor::new(&packed[..], 4096)
                            .read_to_end(&mut back)
                            .unwrap();
                    }
                    Coding::Zstd => back = zstd::decode_all(&packed[..]).unwrap(),
                }
                assert_eq!(back, data.as_bytes(), "{c} {level:?}");
            }
        }
    }

    #[test]
    fn tags_name_the_coding_and_level() {
        assert_eq!(etag(b"\"1-2.3-4\"", Coding::Brotli, 1), "\"1-2.3-4-br1\"");
        assert_eq!(etag(b"\"x\"", Coding::Zstd, 19), "\"x-zstd19\"");
    }
}
