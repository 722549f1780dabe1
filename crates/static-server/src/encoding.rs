//! Choosing a precompressed sidecar (`FILE.br`, `FILE.gz`) from `Accept-Encoding`.

/// A content coding we can serve from a sidecar file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Gzip => ".gz",
        }
    }
}

/// The quality (0–1000) `accept` gives `coding`, by RFC 9110 §12.5.3: its own
/// entry, else `*`, else 0.
fn quality(accept: &[u8], coding: &str) -> u16 {
    let mut own = None;
    let mut star = None;
    http_core::for_each_token(accept, |element| {
        let mut parts = element.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let mut q = 1000;
        for p in parts {
            let p = p.trim_ascii();
            if p.len() > 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                q = parse_q(&p[2..]).unwrap_or(0);
            }
        }
        if name.eq_ignore_ascii_case(coding.as_bytes()) {
            own = Some(q);
        } else if name == b"*" {
            star = Some(q);
        }
    });
    own.or(star).unwrap_or(0)
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

/// The best coding among `available` that the client accepts (brotli wins a tie).
pub(crate) fn choose(accept: Option<&[u8]>, available: &[Coding]) -> Option<Coding> {
    let accept = accept?;
    let mut best: Option<(u16, Coding)> = None;
    for &c in available {
        let q = quality(accept, c.token());
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    #[test]
    fn negotiation_table() {
        let both = [Brotli, Gzip];
        let cases: &[(Option<&str>, &[Coding], Option<Coding>)] = &[
            (None, &both, None),
            (Some("gzip, deflate, br"), &both, Some(Brotli)),
            (Some("gzip"), &both, Some(Gzip)),
            (Some("br;q=0, gzip"), &both, Some(Gzip)),
            (Some("br;q=0.5, gzip;q=0.8"), &both, Some(Gzip)),
            (Some("*"), &both, Some(Brotli)),
            (Some("*;q=0"), &both, None),
            (Some("identity"), &both, None),
            (Some("gzip;q=0"), &[Gzip], None),
            (Some("BR"), &[Brotli], Some(Brotli)),
            (Some("br"), &[Gzip], None),
            (Some("gzip;q=1.5"), &[Gzip], None),
            (Some("gzip;q=0.001"), &[Gzip], Some(Gzip)),
        ];
        for (accept, avail, want) in cases {
            assert_eq!(choose(accept.map(str::as_bytes), avail), *want, "{accept:?}");
        }
    }
}
