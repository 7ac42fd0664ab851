//! End to end with a real Postfix smtpd whose smtpd_milters points at `rebound milter`:
//! a valid bounce is accepted and recorded, forged and expired tokens are refused at
//! RCPT (550 5.7.1, reject_invalid_verp on), and with rebound stopped Postfix tempfails
//! instead of taking the mail. Needs root and the Debian postfix package (`.ci/run`
//! installs it); skipped with a notice otherwise.

use super::client::RunningRebound;
use rebound::verp::{Keys, VerpConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BOUNCE_DOMAIN: &str = "bounces.example.test";

/// A private Postfix instance (own config, queue and log under a temp dir); stopped on drop.
struct Postfix {
    etc: PathBuf,
    smtpd_port: u16,
    _dir: tempfile::TempDir,
}

fn postfix_usable() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let installed = Path::new("/usr/sbin/postfix").exists();
    if !(root && installed) {
        eprintln!("milter::postfix: skipped (needs root and /usr/sbin/postfix; .ci/run installs it)");
    }
    root && installed
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Postfix {
    fn start(milter: &str) -> Postfix {
        let dir = tempfile::Builder::new().prefix("rebound-milter-pf").tempdir_in("/tmp").unwrap();
        let base = dir.path().to_path_buf();
        let etc = base.join("etc");
        for d in ["etc", "spool", "data", "log"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        // The postfix user must reach the queue; data_directory must be its own.
        run("chmod", &["755", base.to_str().unwrap()]);
        run("chown", &["postfix", base.join("data").to_str().unwrap()]);
        let smtpd_port = free_port();
        let b = base.display();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {b}/spool
data_directory = {b}/data
maillog_file = {b}/log/maillog
maillog_file_prefixes = {b}/log
myhostname = mx.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {BOUNCE_DOMAIN}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
transport_maps = texthash:{b}/etc/transport
alias_maps =
alias_database =
smtpd_tls_security_level = none
smtpd_milters = {milter}
milter_default_action = tempfail
milter_protocol = 6
milter_connect_timeout = 5s
milter_command_timeout = 10s
milter_content_timeout = 20s
"
        );
        std::fs::write(etc.join("main.cf"), main_cf).unwrap();
        std::fs::write(etc.join("transport"), format!("{BOUNCE_DOMAIN} discard:\n")).unwrap();
        let services = [
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ];
        let master = format!("127.0.0.1:{smtpd_port} inet n - n - - smtpd\n{}\n", services.join("\n"));
        std::fs::write(etc.join("master.cf"), master).unwrap();
        let pf = Postfix { etc, smtpd_port, _dir: dir };
        run("/usr/sbin/postfix", &["-c", pf.etc.to_str().unwrap(), "start"]);
        pf.wait_for_smtpd();
        pf
    }

    fn wait_for_smtpd(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.smtpd_port)) {
                let mut line = String::new();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = BufReader::new(s).read_line(&mut line);
                if line.starts_with("220") {
                    return;
                }
            }
            // Postfix's master is a separate daemon: poll its port until it answers.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postfix smtpd on port {} did not answer within 30 s; log:\n{}", self.smtpd_port, self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.etc.parent().unwrap().join("log/maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix").args(["-c", self.etc.to_str().unwrap(), "stop"]).output();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The reply codes of one SMTP transaction (greeting, EHLO, MAIL, RCPT, DATA, end of
/// data), stopping at the first refusal.
fn smtp_transaction(port: u16, rcpt: &str, message: &str) -> Vec<(&'static str, u16, String)> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut read_reply = || -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            text.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return (line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0), text);
            }
        }
    };
    let mut replies = Vec::new();
    let steps: [(&'static str, String); 6] = [
        ("greeting", String::new()),
        ("EHLO", "EHLO client.example.org\r\n".into()),
        ("MAIL", "MAIL FROM:<>\r\n".into()),
        ("RCPT", format!("RCPT TO:<{rcpt}>\r\n")),
        ("DATA", "DATA\r\n".into()),
        ("end of data", format!("{}\r\n.\r\n", message.replace('\n', "\r\n"))),
    ];
    for (name, line) in steps {
        w.write_all(line.as_bytes()).unwrap();
        let (code, text) = read_reply();
        replies.push((name, code, text));
        if code >= 400 {
            break;
        }
    }
    let _ = w.write_all(b"QUIT\r\n");
    replies
}

fn dsn(rcpt: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: {rcpt}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"

--b1
Content-Type: text/plain

<alice@example.org>: host mx.example.org said: 550 5.1.1 unknown user

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; alice@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <alice@example.org>: unknown user

--b1--
"
    )
}

fn code_of(replies: &[(&str, u16, String)], step: &str) -> Option<u16> {
    replies.iter().find(|(n, _, _)| *n == step).map(|(_, c, _)| *c)
}

fn messages_for(db: &Path, rcpt: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM messages WHERE source = 'milter' AND envelope_recipients LIKE ?1",
        [format!("%{rcpt}%")],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn postfix_smtpd_with_rebound_as_milter() {
    if !postfix_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let config = dir.path().join("rebound.toml");
    let key_file = dir.path().join("verp.key");
    std::fs::write(
        &config,
        format!(
            "[milter]\nreject_invalid_verp = true\n[verp]\ndomain = \"{BOUNCE_DOMAIN}\"\nprefix = \"bounce\"\nkey_file = {key_file:?}\n"
        ),
    )
    .unwrap();
    // The test signs with the key file rebound will read (created here, 0600).
    let verp = VerpConfig { domain: BOUNCE_DOMAIN.into(), prefix: "bounce".into(), key_file, ..Default::default() };
    let keys = rebound::verp_keys::load_or_create(&verp).unwrap();
    let today = rebound::verp::day_of(chrono::Utc::now().timestamp());
    let sign = |keys: &Keys, id: &str, expiry_day: i64| keys.sign("bounce", BOUNCE_DOMAIN, id, expiry_day).unwrap();

    let mut reb = RunningRebound::start(&["--config", config.to_str().unwrap(), "--db", db.to_str().unwrap()], &[]);
    let pf = Postfix::start(&format!("inet:{}", reb.addr));

    // A bounce to a valid return path: accepted (250 after DATA) and recorded first.
    let valid = sign(&keys, "s1", today + 30);
    let replies = smtp_transaction(pf.smtpd_port, &valid, &dsn(&valid));
    assert_eq!(code_of(&replies, "end of data"), Some(250), "{replies:?}\n{}", pf.log());
    assert_eq!(messages_for(&db, &valid), 1);
    // Parsed, classified and correlated as over LMTP: the token verifies and names the send.
    let event: (String, String, String, bool, Option<String>) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT source, recipient, reason, verified, send_id FROM events WHERE envelope_recipient = ?1",
            [&valid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(event, ("milter".into(), "alice@example.org".into(), "userunknown".into(), true, Some("s1".into())));

    // Forged (another key) and expired tokens: 550 5.7.1 at RCPT, the message is never sent.
    let forged = sign(&Keys::new(vec![b"not the site key, an attacker's".to_vec()]), "s1", today + 30);
    let expired = sign(&keys, "s1", today);
    for bad in [&forged, &expired] {
        let replies = smtp_transaction(pf.smtpd_port, bad, &dsn(bad));
        let (step, code, text) = replies.last().unwrap();
        assert_eq!((*step, *code), ("RCPT", 550), "{bad}: {replies:?}");
        assert!(text.contains("5.7.1"), "{text}");
        assert_eq!(messages_for(&db, bad), 0);
    }

    // rebound stopped: Postfix answers 4xx (milter_default_action = tempfail), so the
    // sending MTA keeps the bounce and retries; nothing is accepted.
    assert!(reb.terminate().success());
    let later = sign(&keys, "s2", today + 30);
    let replies = smtp_transaction(pf.smtpd_port, &later, &dsn(&later));
    let (step, code, text) = replies.last().unwrap();
    assert!((400..500).contains(code), "expected a 4xx with rebound down, got {step} {code} {text}");
    assert_ne!(code_of(&replies, "end of data"), Some(250));
    assert_eq!(messages_for(&db, &later), 0);
}
