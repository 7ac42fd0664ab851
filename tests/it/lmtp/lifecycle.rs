//! The release binary: SIGTERM drains a transaction in flight and exits 0; systemd
//! socket activation and readiness; the Postfix harness samples end to end.

use super::support::{samples_dir, Client};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `rebound serve` as a child process, its JSON log lines readable one by one.
pub struct Served {
    child: Child,
    log: mpsc::Receiver<String>,
}

impl Served {
    /// Spawns `cmd` (stderr piped) and collects its log lines.
    pub fn spawn(mut cmd: Command) -> Served {
        cmd.stderr(Stdio::piped()).stdout(Stdio::null()).arg("--log-format").arg("json");
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Served { child, log }
    }

    /// Waits for a log line containing `needle` (fails after 30 s or at exit).
    pub fn wait_for(&self, needle: &str) -> String {
        loop {
            match self.log.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    /// The TCP address from the first "listening" line.
    pub fn address(&self) -> String {
        let line = self.wait_for("\"listening\"");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["fields"]["address"].as_str().unwrap().to_string()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits for exit; the exit code.
    pub fn wait(mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_cmd(db: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rebound"));
    cmd.arg("serve").arg("--listen").arg("127.0.0.1:0").arg("--db").arg(db);
    cmd
}

#[test]
fn sigterm_finishes_the_transaction_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let served = Served::spawn(serve_cmd(&db));
    let addr = served.address();
    let mut c = Client::connect(&addr);
    c.reply();
    c.cmd("LHLO client");
    let mut idle = Client::connect(&addr);
    assert!(idle.reply().starts_with("220"));
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n");
    assert_eq!(c.replies(4).last().map(|r| &r[..3]), Some("354"));
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n");
    served.signal(libc::SIGTERM);
    served.wait_for("shutting down");
    // The idle session is told, the one in DATA goes on.
    assert!(idle.reply().starts_with("421 4.3.2"));
    c.send(b"second half\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("421 4.3.2"), "then the session is closed");
    assert_eq!(served.wait(), Some(0));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn socket_activation_and_readiness_notification() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    // LISTEN_PID must be the server's own pid: a shell sets it, then execs rebound.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" serve --db \"$1\" --log-format json")
        .arg(env!("CARGO_BIN_EXE_rebound"))
        .arg(dir.path().join("r.db"))
        .env("NOTIFY_SOCKET", &notify_path)
        .stderr(Stdio::null());
    // SAFETY: only dup2/fcntl (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    let mut c = Client::connect(&addr.to_string());
    assert!(c.reply().starts_with("220 "), "served on the inherited socket");
    assert!(c.cmd("QUIT").starts_with("221"));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// One event per Final-Recipient for every harness sample, each sent to two return
/// paths in one pipelined connection.
#[test]
fn harness_samples_give_one_event_per_final_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let served = Served::spawn(serve_cmd(&db));
    let mut c = Client::connect(&served.address());
    c.reply();
    c.cmd("LHLO client");
    let mut expected_events = 0;
    let mut messages = 0;
    let mut files: Vec<_> = std::fs::read_dir(samples_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "eml")) {
        let raw = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        let finals = text.lines().filter(|l| l.starts_with("final-recipient:")).count();
        assert!(finals > 0, "{}", path.display());
        let mut stuffed = Vec::new();
        for line in raw.split_inclusive(|b| *b == b'\n') {
            if line.first() == Some(&b'.') {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line);
        }
        let replies = c.deliver(&["bounces+a@bounces.example.test", "bounces+b@bounces.example.test"], &stuffed);
        assert!(replies.iter().all(|r| r.starts_with("250")), "{}: {replies:?}", path.display());
        expected_events += 2 * finals;
        messages += 1;
    }
    c.cmd("QUIT");
    served.signal(libc::SIGTERM);
    assert_eq!(served.wait(), Some(0));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(n, messages);
    let e: i64 = conn.query_row("SELECT count(*) FROM events WHERE source = 'lmtp'", [], |r| r.get(0)).unwrap();
    assert_eq!(e as usize, expected_events);
}

#[test]
fn example_config_parses_and_states_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/rebound.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = rebound::config::Config::from_toml(&text).unwrap();
    let defaults = rebound::config::Config::default();
    assert_eq!(format!("{:?}", config.lmtp), format!("{:?}", defaults.lmtp));
    assert_eq!(config.store.db, defaults.store.db);
    // The commented metrics example is a valid setting too.
    let on = text.replace("# metrics_listen", "metrics_listen");
    let config = rebound::config::Config::from_toml(&on).unwrap();
    assert_eq!(config.metrics.metrics_listen.as_deref(), Some("127.0.0.1:9425"));
}

#[test]
fn reject_invalid_verp_refuses_forged_tokens_at_rcpt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rebound.toml");
    let key = dir.path().join("verp.key");
    std::fs::write(
        &cfg,
        format!("[verp]\ndomain = \"bounce.example.test\"\nkey_file = {:?}\nreject_invalid_verp = true\n", key.display().to_string()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(["--config", cfg.to_str().unwrap(), "verp", "sign", "--id", "send-1", "--expires", "30d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let genuine = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut cmd = serve_cmd(&dir.path().join("r.db"));
    cmd.args(["--config", cfg.to_str().unwrap()]);
    let served = Served::spawn(cmd);
    let mut c = Client::connect(&served.address());
    c.reply();
    c.cmd("LHLO client");
    c.cmd("MAIL FROM:<>");
    let at = genuine.find('@').unwrap();
    let last = if &genuine[at - 1..at] == "a" { "b" } else { "a" };
    let forged = format!("{}{last}{}", &genuine[..at - 1], &genuine[at..]);
    assert!(c.cmd(&format!("RCPT TO:<{forged}>")).starts_with("550 5.7.1"), "{forged}");
    assert!(c.cmd(&format!("RCPT TO:<{genuine}>")).starts_with("250"), "{genuine}");
    assert!(c.cmd("RCPT TO:<postmaster@bounce.example.test>").starts_with("250"), "not our prefix");
}

/// SIGHUP re-reads the operator's rules: a message after the reload is judged by the new
/// file, a broken file keeps the rules in force, and the server never stops.
#[test]
fn sighup_reloads_the_operator_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (db, rules, config) = (dir.path().join("r.db"), dir.path().join("rules.toml"), dir.path().join("c.toml"));
    let rule = |reason: &str| {
        format!(
            "[[rule]]\nid = \"local.zorglub\"\nreason = \"{reason}\"\ntext = ['zorglub quota']\nexamples = [\"550 zorglub quota\"]\n"
        )
    };
    std::fs::write(&rules, rule("mailboxfull")).unwrap();
    // Without the spool: each 250 then means classified and stored, so the reason can be read at once.
    std::fs::write(&config, format!("[lmtp]\nspool = false\n[classify]\nrules = {:?}\n", rules.display().to_string())).unwrap();
    let mut cmd = serve_cmd(&db);
    cmd.arg("--config").arg(&config);
    let served = Served::spawn(cmd);
    let mut c = Client::connect(&served.address());
    c.reply();
    c.cmd("LHLO client");
    let dsn = |n: u32| {
        format!(
            "From: MAILER-DAEMON@mx.example.test\r\nSubject: Undelivered Mail\r\nMessage-ID: <n{n}@mx.example.test>\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nfailed\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
             Final-Recipient: rfc822; u{n}@example.test\r\nAction: failed\r\nStatus: 5.0.0\r\n\
             Diagnostic-Code: smtp; 550 zorglub quota\r\n\r\n--b--\r\n"
        )
    };
    let reason_of = |n: u32| -> String {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT reason FROM events WHERE recipient = ?1", [format!("u{n}@example.test")], |r| r.get(0))
            .unwrap()
    };
    assert!(c.deliver(&["b@bounces.example.test"], dsn(1).as_bytes())[0].starts_with("250"));
    assert_eq!(reason_of(1), "mailboxfull");
    std::fs::write(&rules, rule("suspend")).unwrap();
    served.signal(libc::SIGHUP);
    served.wait_for("rules reloaded");
    assert!(c.deliver(&["b@bounces.example.test"], dsn(2).as_bytes())[0].starts_with("250"));
    assert_eq!(reason_of(2), "suspend");
    std::fs::write(&rules, "[[rule]\nid = ").unwrap();
    served.signal(libc::SIGHUP);
    served.wait_for("reload failed");
    assert!(c.deliver(&["b@bounces.example.test"], dsn(3).as_bytes())[0].starts_with("250"));
    assert_eq!(reason_of(3), "suspend");
    c.cmd("QUIT");
    served.signal(libc::SIGTERM);
    assert_eq!(served.wait(), Some(0));
}
