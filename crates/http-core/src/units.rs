//! Parsers for the values operators write in flags and configuration files:
//! durations (`10s`, `1500ms`), sizes (`64MiB`) and listening addresses
//! (`127.0.0.1:8080`, `:8080`). Shared by the binaries' flags and the
//! libraries' configuration files, so a value means the same in both. Errors
//! are one line naming the text and the expected form.

use std::net::SocketAddr;
use std::time::Duration;

/// The longest `DUR` a flag takes: a year. A longer one is surely a mistake, and
/// deadlines far enough out would overflow `Instant`.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Parses a `DUR` value (`--header-timeout 10s`, `header_timeout = "10s"`): the
/// `humantime` crate's format (`1500ms`, `10s`, `2m`, `1h 30m`, `1.5s`), or a
/// bare number of seconds (`10`, `0.5`), the form the flags took before.
/// Refuses zero and anything over [`MAX_DURATION`]. The error is one line
/// naming the text and the expected form.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(http_core::units::parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
/// assert_eq!(http_core::units::parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(http_core::units::parse_duration("10"), Ok(Duration::from_secs(10)));
/// assert!(http_core::units::parse_duration("abc").is_err());
/// assert!(http_core::units::parse_duration("0s").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(s)? {
        d if d.is_zero() => Err(format!("bad duration {s:?}: must be longer than zero")),
        d => Ok(d),
    }
}

/// [`parse_duration`] with zero allowed, for a flag where 0 means "every time"
/// (`static-server --revalidate 0`).
///
/// ```
/// assert_eq!(http_core::units::parse_duration_or_zero("0s"), Ok(std::time::Duration::ZERO));
/// assert_eq!(http_core::units::parse_duration_or_zero("0"), Ok(std::time::Duration::ZERO));
/// ```
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let hint = "write e.g. 1500ms, 10s, 2m or a number of seconds";
    let d = if is_bare_number(s) {
        s.parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or_else(|| format!("bad duration {s:?}: {hint}"))?
    } else {
        humantime::parse_duration(s).map_err(|e| format!("bad duration {s:?}: {e}; {hint}"))?
    };
    if d > MAX_DURATION {
        return Err(format!("bad duration {s:?}: at most a year"));
    }
    Ok(d)
}

/// Digits with at most one `.` among them: `10`, `0.5`.
fn is_bare_number(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
}

/// Parses a listening address (`--listen`, `--admin`, `listen = ...`):
/// `IP:PORT`, `[IPv6]:PORT`, `:PORT` or a bare `PORT`, the last two on every
/// IPv4 address.
///
/// ```
/// let a = |s| http_core::units::parse_listen(s).map(|a| a.to_string());
/// assert_eq!(a("127.0.0.1:8080"), Ok("127.0.0.1:8080".into()));
/// assert_eq!(a(":8080"), Ok("0.0.0.0:8080".into()));
/// assert_eq!(a("8080"), Ok("0.0.0.0:8080".into()));
/// assert_eq!(a("[::1]:0"), Ok("[::1]:0".into()));
/// assert!(a("localhost").is_err());
/// ```
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let hint = "expected IP:PORT, :PORT or PORT (e.g. 127.0.0.1:8080, :8080)";
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port_only
            .parse()
            .map_err(|_| format!("bad address {s:?}: port over 65535; {hint}"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    s.parse().map_err(|_| format!("bad address {s:?}: {hint}"))
}

/// Parses a `SIZE` value: `4096`, `512KiB`, `64M`,
/// `10MB`, `1.5GiB` (a fraction is rounded down to whole bytes). Units are
/// read without regard to case; a space may stand before them.
///
/// ```
/// assert_eq!(http_core::units::parse_size("64MiB"), Ok(64 << 20));
/// assert_eq!(http_core::units::parse_size("64M"), Ok(64 << 20));
/// assert_eq!(http_core::units::parse_size("10MB"), Ok(10_000_000));
/// assert_eq!(http_core::units::parse_size("4096"), Ok(4096));
/// assert!(http_core::units::parse_size("10XB").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, String> {
    let hint = "write e.g. 4096, 512KiB, 64MiB, 1GiB or 10MB";
    let text = s.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim_start());
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(format!("bad size {s:?}: unknown unit {unit:?}; {hint}")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
        || fraction.len() > 9
    {
        return Err(format!("bad size {s:?}: {hint}"));
    }
    let too_big = || format!("bad size {s:?}: more than {} bytes", u64::MAX);
    // Digits without the point, times the unit, divided by 10^(digits after the point).
    let digits: u128 = format!("{whole}{fraction}").parse().map_err(|_| too_big())?;
    let bytes = digits.checked_mul(multiplier).ok_or_else(too_big)? / 10u128.pow(fraction.len() as u32);
    u64::try_from(bytes).map_err(|_| too_big())
}
