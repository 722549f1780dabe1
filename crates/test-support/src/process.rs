//! Commands run to completion within a bound, curl among them.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::TIMEOUT;

/// Polls `child` until it exits or `limit` passes; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn read_on_a_thread(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// [`run_within`], but `Err` when `command` could not be started (not
/// installed, say).
fn try_run_within(command: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = read_on_a_thread(child.stdout.take().unwrap());
    let stderr = read_on_a_thread(child.stderr.take().unwrap());
    let Some(status) = wait_timeout(&mut child, limit) else {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{command:?} did not exit within {limit:?}; stderr: {}",
            String::from_utf8_lossy(&stderr.join().unwrap())
        );
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}

/// Runs `command` to completion: no stdin, stdout and stderr captured (a thread
/// reads each, so neither pipe fills). It runs in a process group of its own; if it
/// has not exited within `limit`, the whole group is killed and this panics, as it
/// does if `command` cannot be started.
pub fn run_within(command: &mut Command, limit: Duration) -> Output {
    try_run_within(command, limit).unwrap_or_else(|e| panic!("start {command:?}: {e}"))
}

/// `curl -s -S --max-time 10` with `args` (the URL among them).
fn curl_command(args: &[&str]) -> Command {
    let mut command = Command::new("curl");
    command.args(["-s", "-S", "--max-time", "10"]).args(args);
    command
}

/// Runs curl, a client written elsewhere, with `args` (plus `-s -S --max-time
/// 10`) within [`TIMEOUT`]. `None`, with the reason printed, when curl is not
/// installed: the caller skips its check (CI installs curl).
pub fn curl(args: &[&str]) -> Option<Output> {
    match try_run_within(&mut curl_command(args), TIMEOUT) {
        Ok(out) => Some(out),
        Err(e) => {
            eprintln!("SKIPPED: curl is not available ({e}); install curl to run this check");
            None
        }
    }
}

/// curl with `args` and the URL last, which must succeed (any HTTP status does):
/// the status and the body. Panics if curl is not installed.
#[track_caller]
pub fn curl_status(args: &[&str]) -> (u16, String) {
    let mut all = vec!["-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let out = run_within(&mut curl_command(&all), TIMEOUT);
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

/// Runs `python3 SCRIPT ARGS...` within `limit`, once python3 is found to
/// import every one of `modules`, and asserts that it succeeded: its output.
/// `None`, saying so, when python3 or a module is missing (`.ci/run`
/// installs them).
pub fn python_script(script: &str, modules: &[&str], args: &[&str], limit: Duration) -> Option<Output> {
    let import = format!("import {}", modules.join(", "));
    let found = Command::new("python3")
        .args(["-c", &import])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: python3 with {modules:?} is not available (.ci/run installs them)");
        return None;
    }
    let out = run_within(Command::new("python3").arg(script).args(args), limit);
    assert!(out.status.success(), "python3 {script} {args:?}: {out:?}");
    Some(out)
}
