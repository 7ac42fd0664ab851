//! Test support: the release `rebound serve` binary as a child process on port 0, with
//! its address read from the "listening" log line, killable with SIGKILL, and its peak
//! RSS read from /proc.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `rebound serve` child process.
pub struct ServeProc {
    child: Child,
    /// The bound TCP address, ADDR:PORT.
    pub addr: String,
    /// Messages the intake spool held from before the start, stored before listening.
    pub recovered: usize,
}

impl ServeProc {
    /// Starts `rebound serve` in `dir` on `db` with `config` (TOML) on 127.0.0.1:0 and
    /// waits for its "listening" line.
    pub fn start(dir: &Path, db: &Path, config: &str) -> ServeProc {
        let cfg = dir.join("rebound.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rebound"))
            .current_dir(dir)
            .arg("--config")
            .arg(&cfg)
            .arg("--db")
            .arg(db)
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut addr = None;
        let mut recovered = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains("storing messages spooled before the last stop") {
                let start = line.find("\"messages\":").expect("messages field") + 11;
                recovered = line[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap();
            }
            if line.contains("\"listening\"") {
                let start = line.find("\"address\":\"").expect("address field") + 11;
                let end = line[start..].find('"').unwrap() + start;
                addr = Some(line[start..end].to_string());
                break;
            }
        }
        let addr = addr.expect("serve exited before listening");
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServeProc { child, addr, recovered }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (VmHWM) of the child, in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }

    /// SIGTERM (drain: everything acknowledged is stored) and reap; true on exit status 0.
    pub fn stop(&mut self) -> bool {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory with a database path in it.
pub fn fresh_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rebound.db");
    (dir, db)
}
