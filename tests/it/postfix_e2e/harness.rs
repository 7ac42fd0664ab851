//! A private Postfix instance for tests (tests/postfix/instance.sh, which applies the
//! recipe in packaging/postfix/), stopped by a Drop guard even when a test fails.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The bounce domain of the test instance (the recipe's bounce.example.com, rewritten).
pub const BOUNCE_DOMAIN: &str = "bounce.example.test";
/// Answered 550 5.1.1 at RCPT by an smtp-sink.
pub const REJECTED: &str = "user@remote.example.test";
/// Answered 450 4.2.0 at RCPT by an smtp-sink; expires after one retry.
pub const DEFERRED: &str = "user@tempfail.example.test";
/// Routed to Postfix's error(8) with its "Host or domain name not found" text (5.4.4).
pub const NO_SUCH_DOMAIN: &str = "someone@nosuch.example.test";

/// Whether Postfix can be run here. In CI (env CI set) a missing Postfix is a failure;
/// elsewhere the test prints a notice and is skipped.
pub fn postfix_available(test: &str) -> bool {
    let why = if !Path::new("/usr/sbin/postfix").exists() || !Path::new("/usr/sbin/smtp-sink").exists()
    {
        Some("postfix is not installed (apt-get install postfix; see .ci/run)")
    } else if unsafe { libc::geteuid() } != 0 {
        Some("the private Postfix instance needs root")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("{test}: {why}, and CI is set"),
        Some(why) => {
            eprintln!("NOTICE: skipping {test}: {why}");
            false
        }
    }
}

/// A loopback port that was free a moment ago (for servers this test does not own).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A temporary directory the `postfix` user can traverse (tempdir makes 0700 ones).
pub fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("rebound-pf-").tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postfix/instance.sh")
}

/// Where the instance sends the bounce domain.
pub struct LmtpTargets<'a> {
    /// rebound's TCP port on 127.0.0.1.
    pub port: u16,
    /// rebound's unix socket.
    pub socket: &'a Path,
    /// Return paths routed over the unix socket (the recipe's `unix:` line).
    pub unix_rcpts: &'a [String],
}

/// A running private Postfix; stopped with `postfix -c DIR/etc stop` on drop.
pub struct Postfix {
    dir: PathBuf,
}

impl Postfix {
    /// Starts an instance in `dir` (wiped first) delivering the bounce domain to `to`.
    pub fn start(dir: &Path, to: &LmtpTargets) -> Postfix {
        let guard = Postfix { dir: dir.to_owned() };
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir)
            .env("LMTP_PORT", to.port.to_string())
            .env("LMTP_SOCKET", to.socket)
            .env("UNIX_RCPTS", to.unix_rcpts.join(" "))
            .env("SMTPD_PORT", free_port().to_string())
            .env("REJECT_PORT", free_port().to_string())
            .env("DEFER_PORT", free_port().to_string())
            .output()
            .expect("run tests/postfix/instance.sh");
        assert!(
            out.status.success(),
            "instance.sh start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        guard
    }

    fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// Submits a message from `return_path` to `rcpt` with Postfix's sendmail(1).
    pub fn inject(&self, return_path: &str, rcpt: &str) {
        let mut child = Command::new("/usr/sbin/sendmail")
            .arg("-C")
            .arg(self.etc())
            .args(["-f", return_path, rcpt])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn sendmail");
        let msg = format!(
            "From: Newsletter <{return_path}>\nTo: <{rcpt}>\nSubject: rebound e2e\n\
             Message-ID: <{}.{}@sender.example.test>\nMIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\n\nHello.\n",
            std::process::id(),
            rcpt.replace('@', ".")
        );
        child.stdin.take().expect("stdin").write_all(msg.as_bytes()).expect("write message");
        assert!(child.wait().expect("wait sendmail").success(), "sendmail -C failed for {rcpt}");
    }

    /// Asks the queue manager to retry deferred mail now (postqueue -f).
    pub fn flush(&self) {
        let _ = Command::new("/usr/sbin/postqueue").arg("-c").arg(self.etc()).arg("-f").status();
    }

    /// Postfix's log so far.
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/maillog")).unwrap_or_default()
    }

    /// The maillog lines of the recipe's rebound transport that report a delivery of
    /// `rcpt` (status=sent).
    pub fn lmtp_deliveries(&self, rcpt: &str) -> Vec<String> {
        let to = format!("to=<{rcpt}>");
        self.maillog()
            .lines()
            .filter(|l| l.contains("postfix/rebound/lmtp[") && l.contains(&to) && l.contains("status=sent"))
            .map(str::to_owned)
            .collect()
    }

    /// Polls `done` until it holds, nudging the queue (postqueue -f) every two seconds
    /// so the 450 case expires promptly; panics with the maillog after `limit`.
    pub fn wait_until(&self, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        let mut nudged = Instant::now();
        while !done() {
            if start.elapsed() > limit {
                panic!("timed out after {limit:?} waiting for {what}; maillog:\n{}", self.maillog());
            }
            if nudged.elapsed() > Duration::from_secs(2) {
                self.flush();
                nudged = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(&self.dir).status();
    }
}
