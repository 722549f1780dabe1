//! Content codings and their negotiation from `Accept-Encoding` (RFC 9110 §12.5.3).

use std::fmt;
use std::str::FromStr;

/// A content coding the server can send: from a precompressed sidecar
/// (`FILE.zst`, `FILE.br`, `FILE.gz`) or compressed on the fly.
///
/// Parsed from its `Accept-Encoding` token:
///
/// ```
/// use static_server::Coding;
/// assert_eq!("br".parse::<Coding>().unwrap(), Coding::Brotli);
/// assert_eq!(Coding::Zstd.token(), "zstd");
/// assert!("deflate".parse::<Coding>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// `zstd` (RFC 8878), sidecar `FILE.zst`.
    Zstd,
    /// `br` (RFC 7932), sidecar `FILE.br`.
    Brotli,
    /// `gzip` (RFC 1952), sidecar `FILE.gz`.
    Gzip,
}

/// A name given for a [`Coding`] that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown content coding {0:?} (expected zstd, br or gzip)")]
pub struct UnknownCoding(pub String);

impl Coding {
    /// Every coding, in the default order of preference.
    pub const ALL: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The suffix of a precompressed sidecar file.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Zstd => ".zst",
            Coding::Brotli => ".br",
            Coding::Gzip => ".gz",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn bit(self) -> u8 {
        1 << self.index()
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

impl FromStr for Coding {
    type Err = UnknownCoding;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Coding::ALL
            .into_iter()
            .find(|c| s.eq_ignore_ascii_case(c.token()))
            .ok_or_else(|| UnknownCoding(s.to_owned()))
    }
}

/// Codings as a set of bits (`Coding::bit`).
pub(crate) type Codings = u8;

/// What a client's `Accept-Encoding` gives each coding: a quality 0–1000, or
/// `None` when the coding is neither named nor covered by `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Qualities {
    own: [Option<u16>; 3],
    star: Option<u16>,
}

impl Qualities {
    /// One pass over the header's elements.
    fn parse(accept: &[u8]) -> Qualities {
        let mut q = Qualities::default();
        for_each_weighted(accept, |name, weight| {
            let slot = if name == b"*" {
                &mut q.star
            } else if name.eq_ignore_ascii_case(b"zstd") {
                &mut q.own[Coding::Zstd.index()]
            } else if name.eq_ignore_ascii_case(b"br") {
                &mut q.own[Coding::Brotli.index()]
            } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
                // RFC 9110 §8.4.1.3: x-gzip is gzip.
                &mut q.own[Coding::Gzip.index()]
            } else {
                return;
            };
            // The first mention counts, as for a repeated header.
            slot.get_or_insert(weight);
        });
        q
    }

    /// The quality of `c`: its own entry, else `*`, else 0.
    fn of(&self, c: Coding) -> u16 {
        self.own[c.index()].or(self.star).unwrap_or(0)
    }
}

/// Calls `f(name, q)` for each element of a weighted list such as `Accept` or
/// `Accept-Encoding` (RFC 9110 §12.4.2): the element's name (a coding or media
/// range, trimmed) and its quality scaled to 0–1000 (1000 without `q=`, 0 for
/// an invalid one).
pub(crate) fn for_each_weighted(header: &[u8], mut f: impl FnMut(&[u8], u16)) {
    http_core::for_each_token(header, |element| {
        let mut parts = element.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let mut q = 1000;
        for p in parts {
            let p = p.trim_ascii();
            if p.len() > 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                q = parse_q(&p[2..]).unwrap_or(0);
            }
        }
        f(name, q)
    });
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, scaled to 0–1000.
fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    if int.len() != 1 || frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int[0] {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The coding to send: among `available` (a set of bits), the one the client
/// weighs highest, a tie going to the earlier in `preference` (the server's
/// order). A coding with q=0 is never chosen; `None` means identity, which is
/// also what a client refusing identity (`identity;q=0`, `*;q=0`) gets when
/// nothing else is acceptable (RFC 9110 §12.5.3 lets a server disregard the
/// header rather than answer 406).
pub(crate) fn choose(accept: Option<&[u8]>, available: Codings, preference: &[Coding; 3]) -> Option<Coding> {
    let q = Qualities::parse(accept?);
    let mut best: Option<(u16, Coding)> = None;
    for &c in preference {
        if available & c.bit() == 0 {
            continue;
        }
        let w = q.of(c);
        if w > 0 && best.is_none_or(|(bw, _)| w > bw) {
            best = Some((w, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    const ALL: Codings = 0b111;
    const DEFAULT: [Coding; 3] = Coding::ALL;

    #[test]
    fn negotiation_table() {
        let both = Brotli.bit() | Gzip.bit();
        let cases: &[(Option<&str>, Codings, Option<Coding>)] = &[
            (None, ALL, None),
            (Some(""), ALL, None),
            (Some("gzip, deflate, br"), both, Some(Brotli)),
            (Some("gzip, deflate, br, zstd"), ALL, Some(Zstd)),
            (Some("gzip, br"), ALL, Some(Brotli)),
            (Some("gzip"), both, Some(Gzip)),
            (Some("x-gzip"), ALL, Some(Gzip)),
            (Some("br;q=0, gzip"), both, Some(Gzip)),
            (Some("br;q=0.5, gzip;q=0.8"), both, Some(Gzip)),
            (Some("zstd;q=0.5, br;q=0.9, gzip;q=0.8"), ALL, Some(Brotli)),
            (Some("*"), both, Some(Brotli)),
            (Some("*"), ALL, Some(Zstd)),
            (Some("*;q=0.5, zstd;q=0"), ALL, Some(Brotli)),
            (Some("*;q=0"), ALL, None),
            (Some("identity"), ALL, None),
            (Some("identity;q=0"), ALL, None),
            (Some("identity;q=0, gzip;q=0.1"), ALL, Some(Gzip)),
            (Some("gzip;q=0"), Gzip.bit(), None),
            (Some("BR"), Brotli.bit(), Some(Brotli)),
            (Some("br"), Gzip.bit(), None),
            (Some("gzip;q=1.5"), Gzip.bit(), None),
            (Some("gzip;q=0.001"), Gzip.bit(), Some(Gzip)),
            (Some("gzip;q=0.0001"), Gzip.bit(), None),
            (Some("gzip ; q=0.5 , br;Q=0.4"), ALL, Some(Gzip)),
            (Some("gzip, gzip;q=0"), ALL, Some(Gzip)),
            (Some("br"), 0, None),
        ];
        for (accept, avail, want) in cases {
            assert_eq!(
                choose(accept.map(str::as_bytes), *avail, &DEFAULT),
                *want,
                "{accept:?} {avail:b}"
            );
        }
    }

    #[test]
    fn ties_follow_the_server_order() {
        let gzip_first = [Gzip, Brotli, Zstd];
        assert_eq!(choose(Some(b"br, gzip, zstd"), ALL, &gzip_first), Some(Gzip));
        assert_eq!(choose(Some(b"br, gzip;q=0.9"), ALL, &gzip_first), Some(Brotli));
    }

    #[test]
    fn coding_names() {
        assert_eq!("ZSTD".parse::<Coding>(), Ok(Zstd));
        assert_eq!(" gzip ".parse::<Coding>(), Ok(Gzip));
        assert_eq!("x".parse::<Coding>(), Err(UnknownCoding("x".into())));
    }
}
