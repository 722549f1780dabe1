//! Memory figures of a process, from Linux's `/proc`.

/// A figure in kB of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), of process `pid`
/// or, with `None`, of this one. `None` when the file or the line is missing.
pub fn proc_status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The resident memory (`VmRSS`) of process `pid` or, with `None`, of this one,
/// in bytes. Panics if `/proc` does not tell.
#[track_caller]
pub fn rss_bytes(pid: Option<u32>) -> u64 {
    let kib = proc_status_kib(pid, "VmRSS").unwrap_or_else(|| panic!("no VmRSS in /proc/{pid:?}/status"));
    kib * 1024
}
