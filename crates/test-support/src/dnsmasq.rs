//! A real DNS server for discovery tests: Debian's `dnsmasq`, on a free
//! loopback port, answering from a hosts file and `srv-host=` lines the test
//! writes (and rewrites: [`Dnsmasq::set_hosts`] then [`Dnsmasq::reload`]).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// A running `dnsmasq`; killed when dropped.
pub struct Dnsmasq {
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    dir: TempDir,
    child: Option<Child>,
}

impl Dnsmasq {
    /// Starts `dnsmasq` with `hosts` (lines of `IP NAME`) and `conf` (such as
    /// `srv-host=_http._tcp.web.test,a.web.test,8080,0,5` lines), every answer
    /// with a TTL of 1 s. `None`, saying why, when `dnsmasq` is not installed,
    /// except under CI (`CI` set), which installs it (`.ci/run`): there that
    /// is a failure.
    pub fn start(hosts: &str, conf: &str) -> Option<Dnsmasq> {
        let installed = Command::new(program())
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !installed {
            assert!(std::env::var_os("CI").is_none(), "dnsmasq is missing under CI");
            eprintln!("skipped: dnsmasq is not installed (apt-get install dnsmasq)");
            return None;
        }
        let dir = TempDir::new("dnsmasq");
        dir.file("hosts", hosts);
        dir.file("dnsmasq.conf", conf);
        let mut d = Dnsmasq {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            child: None,
        };
        // A port free for UDP now; dnsmasq may still lose it (or the TCP side)
        // to another process, so try a few.
        for _ in 0..5 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .unwrap_or(0);
            d.addr.set_port(port);
            if d.launch() {
                return Some(d);
            }
        }
        panic!("dnsmasq did not start (its output is above)");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts the process on `self.addr`; true once it answers.
    fn launch(&mut self) -> bool {
        let mut cmd = Command::new(program());
        cmd.arg("--no-daemon")
            .arg(format!("--port={}", self.addr.port()))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--addn-hosts={}", self.path("hosts").display()))
            .arg(format!("--conf-file={}", self.path("dnsmasq.conf").display()))
            .arg("--local-ttl=1")
            .arg(format!("--pid-file={}", self.path("dnsmasq.pid").display()))
            .arg("--log-facility=-")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match std::fs::File::create(self.path("dnsmasq.log")) {
            Ok(log) => cmd.stderr(log),
            Err(_) => cmd.stderr(Stdio::null()),
        };
        // As root, dnsmasq would switch to the user "nobody", who may not read
        // the test's directory.
        if is_root() {
            cmd.arg("--user=root");
        }
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        // Ready when its TCP side accepts (it binds UDP and TCP together).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.path("dnsmasq.log")).unwrap_or_default();
                eprintln!("dnsmasq on {} exited ({status}): {log}", self.addr);
                return false;
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Replaces the hosts file (takes effect at [`reload`](Self::reload)).
    pub fn set_hosts(&self, hosts: &str) {
        // Written beside and renamed, so that dnsmasq never reads half a file.
        let tmp = self.path("hosts.new");
        std::fs::write(&tmp, hosts).expect("writing the hosts file");
        std::fs::rename(&tmp, self.path("hosts")).expect("replacing the hosts file");
    }

    /// SIGHUP: dnsmasq rereads its hosts files (not `srv-host=` lines).
    pub fn reload(&self) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg("-HUP")
                .arg(c.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -HUP dnsmasq failed");
        }
    }

    /// Kills it: queries go unanswered (an outage).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, with the current files.
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..20 {
            if self.launch() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dnsmasq did not restart on {}", self.addr);
    }
}

/// `dnsmasq` where Debian puts it (not on every user's PATH), or from the PATH.
fn program() -> &'static str {
    if std::path::Path::new("/usr/sbin/dnsmasq").exists() {
        "/usr/sbin/dnsmasq"
    } else {
        "dnsmasq"
    }
}

/// True when running as root.
fn is_root() -> bool {
    // The effective user id, from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.kill();
    }
}
