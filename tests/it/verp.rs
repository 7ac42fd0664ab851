//! Tests: VERP tokens, correlation into the store, and the verp/send/reject commands.

use proptest::prelude::*;
use rebound::parse::ParsedMessage;
use rebound::policy::State;
use rebound::store::correlate::correlate_with_keys;
use rebound::store::event::{insert_event, NewEvent};
use rebound::store::sends::{put_send, Send};
use rebound::store::status::get_status;
use rebound::verp::{expiry_day_for, parse_return_path, Keys, ReturnPath, VerpConfig, VerpError};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn keys(k: &[u8]) -> Keys {
    Keys::new(vec![k.to_vec()])
}

fn sign(k: &Keys, id: &str, days: i64) -> String {
    k.sign("bounce", "bounce.example.com", id, expiry_day_for(NOW, days * DAY)).unwrap()
}

#[test]
fn token_roundtrip_and_shape() {
    let k = keys(b"0123456789abcdef0123456789abcdef");
    let a = sign(&k, "Send_42-x", 30);
    let local = a.split('@').next().unwrap();
    let parts: Vec<&str> = local.trim_start_matches("bounce+").split('.').collect();
    assert_eq!(parts.len(), 3, "{a}");
    assert_eq!(parts[2].len(), 12, "60-bit MAC in 12 base32 characters: {a}");
    assert!(parts[1..].iter().all(|p| p.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))), "{a}");
    let v = k.verify(&a, "bounce", NOW).unwrap();
    assert_eq!(v.id, "Send_42-x");
    assert_eq!(v.expiry_day, NOW / DAY + 31);
    // MTAs fold case: upper or lower, the token still verifies.
    assert!(k.verify(&a.to_ascii_uppercase(), "bounce", NOW).is_ok());
    assert!(k.verify(&a.to_ascii_lowercase(), "bounce", NOW).is_ok());
    assert!(k.verify(&format!("<{a}>"), "BOUNCE", NOW).is_ok());
}

#[test]
fn tampered_tokens_are_forged_or_malformed() {
    let k = keys(b"0123456789abcdef0123456789abcdef");
    let a = sign(&k, "abc123", 30);
    let at = a.find('@').unwrap();
    for i in "bounce+".len()..at {
        let mut b = a.clone().into_bytes();
        if b[i] == b'.' {
            continue;
        }
        b[i] = if b[i] == b'a' { b'b' } else { b'a' };
        let t = String::from_utf8(b).unwrap();
        match k.verify(&t, "bounce", NOW) {
            Err(VerpError::Forged) | Err(VerpError::Malformed(_)) => {}
            other => panic!("byte {i} of {t}: {other:?}"),
        }
    }
}

#[test]
fn wrong_key_expired_and_rotation() {
    let old = keys(b"old-key-old-key-old-key-old-key!");
    let new = keys(b"new-key-new-key-new-key-new-key!");
    let rotated = Keys::new(vec![b"new-key-new-key-new-key-new-key!".to_vec(), b"old-key-old-key-old-key-old-key!".to_vec()]);
    let by_old = sign(&old, "s1", 30);
    assert_eq!(new.verify(&by_old, "bounce", NOW), Err(VerpError::Forged));
    assert!(rotated.verify(&by_old, "bounce", NOW).is_ok(), "old tokens verify after rotation");
    let by_rotated = sign(&rotated, "s1", 30);
    assert!(new.verify(&by_rotated, "bounce", NOW).is_ok(), "the first key signs");
    assert_eq!(old.verify(&by_rotated, "bounce", NOW), Err(VerpError::Forged));

    let expired = sign(&old, "s1", 0);
    assert!(matches!(old.verify(&expired, "bounce", NOW), Err(VerpError::Expired { .. })));
    let month = sign(&old, "s1", 30);
    assert!(old.verify(&month, "bounce", NOW + 30 * DAY).is_ok());
    assert!(matches!(old.verify(&month, "bounce", NOW + 32 * DAY), Err(VerpError::Expired { .. })));
    // Moving the expiry forward breaks the MAC.
    let ReturnPath::Signed { id, expiry_day, mac } = parse_return_path(&month, "bounce").unwrap() else { panic!() };
    assert_eq!(old.verify_parts(&id, expiry_day + 100, &mac, NOW), Err(VerpError::Forged));
}

#[test]
fn classic_and_garbage() {
    assert_eq!(
        parse_return_path("bounce+alice=example.org@bounce.example.com", "bounce"),
        Ok(ReturnPath::Classic { recipient: "alice@example.org".into() })
    );
    let k = keys(b"0123456789abcdef");
    for g in ["", "@", "bounce+@x", "bounce+a.b.c@x", "bounce+..@x", "other+a.b.cccccccccccc@x", "bounce+é.ü.ß@x", "bounce+a=@x"] {
        assert!(k.verify(g, "bounce", NOW).is_err(), "{g:?}");
    }
    assert!(Keys::default().sign("bounce", "x", "id", 1).is_err());
    assert!(k.sign("bounce", "x", "bad.id", 1).is_err());
}

proptest! {
    #[test]
    fn decoder_never_panics(s in "\\PC{0,120}", prefix in "[a-zA-Z+]{0,8}") {
        let k = keys(b"0123456789abcdef");
        let _ = parse_return_path(&s, &prefix);
        let _ = k.verify(&s, &prefix, NOW);
        let _ = k.verify(&format!("bounce+{s}@x"), "bounce", NOW);
        let _ = rebound::verp::has_prefix(&s, &prefix);
    }

    #[test]
    fn any_id_roundtrips(id in "[A-Za-z0-9_-]{1,40}", days in 1i64..3650) {
        let k = keys(b"0123456789abcdef");
        let a = sign(&k, &id, days);
        let v = k.verify(&a.to_ascii_uppercase(), "bounce", NOW).unwrap();
        prop_assert!(v.id.eq_ignore_ascii_case(&id));
    }
}

// ---- correlation into the store -------------------------------------------------

fn site_keys() -> Keys {
    keys(b"site-key-site-key-site-key-site!")
}

fn bounce_event(rcpt_to: &str, recipient: &str, hard: bool, fault: &str) -> NewEvent {
    NewEvent {
        occurred_at: NOW,
        source: "lmtp".into(),
        envelope_recipient: rcpt_to.into(),
        recipient: recipient.into(),
        kind: "bounce".into(),
        status: if hard { "5.1.1".into() } else { "5.7.1".into() },
        reason: if hard { "userunknown".into() } else { "blocked".into() },
        class: if hard { "invalid_recipient".into() } else { "reputation".into() },
        fault: fault.into(),
        hard,
        ..Default::default()
    }
}

/// Correlates and inserts one event; returns it as stored.
fn store_one(conn: &mut rusqlite::Connection, parsed: &ParsedMessage, e: NewEvent) -> NewEvent {
    let tx = conn.transaction().unwrap();
    let mut events = vec![e];
    correlate_with_keys(&tx, &VerpConfig::default(), &site_keys(), parsed, &mut events, NOW).unwrap();
    insert_event(&tx, None, &events[0]).unwrap();
    tx.commit().unwrap();
    events.pop().unwrap()
}

fn state(conn: &rusqlite::Connection, addr: &str) -> Option<State> {
    get_status(conn, addr).unwrap().map(|s| s.state)
}

#[test]
fn correlation_decides_what_changes_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rebound::store::open(&dir.path().join("t.db")).unwrap();
    let k = site_keys();
    let none = ParsedMessage::default();
    put_send(&conn, &Send { id: "S-1".into(), recipient: "a@example.org".into(), sent_at: NOW - DAY, ..Default::default() }).unwrap();

    // A valid token (matching the send, case folded by the MTA) suppresses.
    let e = store_one(&mut conn, &none, bounce_event(&sign(&k, "s-1", 30).to_uppercase(), "A@example.org", true, "recipient"));
    assert!(e.verified);
    assert_eq!(e.send_id.as_deref(), Some("S-1"), "canonical id from sends");
    assert_eq!(state(&conn, "a@example.org"), Some(State::Suppressed));

    // A valid token with no sends row: the signature is the proof.
    let e = store_one(&mut conn, &none, bounce_event(&sign(&k, "nosend", 30), "b@example.org", true, "recipient"));
    assert!(e.verified);
    assert_eq!(state(&conn, "b@example.org"), Some(State::Suppressed));

    // Sender fault with a valid token: stored, verified, no status.
    let e = store_one(&mut conn, &none, bounce_event(&sign(&k, "c", 30), "c@example.org", false, "sender"));
    assert!(e.verified);
    assert_eq!(state(&conn, "c@example.org"), None);

    // Forged and expired tokens change nothing.
    let forged = sign(&keys(b"attacker-key-attacker-key-attack"), "d", 30);
    let e = store_one(&mut conn, &none, bounce_event(&forged, "d@example.org", true, "recipient"));
    assert!(!e.verified);
    assert_eq!(e.send_id, None);
    assert_eq!(e.verp, forged);
    assert_eq!(state(&conn, "d@example.org"), None);
    let e = store_one(&mut conn, &none, bounce_event(&sign(&k, "e", 0), "e@example.org", true, "recipient"));
    assert!(!e.verified);
    assert_eq!(e.send_id.as_deref(), Some("e"), "an expired token is genuine: linked, not trusted");
    assert_eq!(state(&conn, "e@example.org"), None);

    // No token at all.
    let e = store_one(&mut conn, &none, bounce_event("postmaster@bounce.example.com", "f@example.org", true, "recipient"));
    assert!(!e.verified);
    assert_eq!(state(&conn, "f@example.org"), None);

    // A genuine token replayed against another address is not trusted.
    let e = store_one(&mut conn, &none, bounce_event(&sign(&k, "S-1", 30), "victim@example.org", true, "recipient"));
    assert!(!e.verified);
    assert_eq!(state(&conn, "victim@example.org"), None);

    let rows: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 7, "every event is stored, verified or not");
}

#[test]
fn correlation_from_original_headers_and_classic() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rebound::store::open(&dir.path().join("t.db")).unwrap();
    let k = site_keys();
    // The DSN went to a plain mailbox: the token is in the returned original.
    let mut parsed = ParsedMessage::default();
    parsed.original.return_path = format!("<{}>", sign(&k, "g1", 30));
    let e = store_one(&mut conn, &parsed, bounce_event("bounces@example.com", "g@example.org", true, "recipient"));
    assert!(e.verified);
    assert_eq!(e.send_id.as_deref(), Some("g1"));
    assert_eq!(state(&conn, "g@example.org"), Some(State::Suppressed));

    let parsed = ParsedMessage { verp_candidates: vec!["someone@else.org".into(), sign(&k, "h1", 30)], ..Default::default() };
    let e = store_one(&mut conn, &parsed, bounce_event("", "h@example.org", true, "recipient"));
    assert!(e.verified);

    // Classic VERP: trusted only with a matching send.
    let classic = "bounce+i=example.org@bounce.example.com";
    let e = store_one(&mut conn, &ParsedMessage::default(), bounce_event(classic, "i@example.org", true, "recipient"));
    assert!(!e.verified);
    assert_eq!(state(&conn, "i@example.org"), None);
    put_send(&conn, &Send { id: "i-send".into(), recipient: "I@example.org".into(), sent_at: NOW - 60, ..Default::default() }).unwrap();
    let e = store_one(&mut conn, &ParsedMessage::default(), bounce_event(classic, "i@example.org", true, "recipient"));
    assert!(e.verified);
    assert_eq!(e.send_id.as_deref(), Some("i-send"));
    assert_eq!(state(&conn, "i@example.org"), Some(State::Suppressed));

    // An ARF complaint with a redacted recipient is about the address we mailed.
    put_send(&conn, &Send { id: "j1".into(), recipient: "j@example.org".into(), sent_at: NOW - 60, ..Default::default() }).unwrap();
    let mut c = bounce_event(&sign(&k, "j1", 30), "redacted@example.org", false, "none");
    c.kind = "complaint".into();
    c.feedback_type = "abuse".into();
    let e = store_one(&mut conn, &ParsedMessage::default(), c);
    assert!(e.verified);
    assert_eq!(state(&conn, "j@example.org"), Some(State::Complained));
}

// ---- commands -------------------------------------------------------------------

/// A temporary site: config (with its own key file) and database.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        Site::with_verp("")
    }

    /// A site with more `[verp]` settings (TOML lines).
    pub fn with_verp(extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "[store]\ndb = {:?}\n[verp]\ndomain = \"bounce.example.com\"\nkey_file = {:?}\n{extra}\n",
            dir.path().join("rebound.db"),
            dir.path().join("verp.key")
        );
        std::fs::write(dir.path().join("rebound.toml"), cfg).unwrap();
        Site { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("rebound.toml")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("rebound.db")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rebound"));
        c.arg("--config").arg(self.config()).arg("--log-format").arg("json");
        c
    }

    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = stdin.unwrap_or_default().to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        out
    }

    pub fn state(&self, addr: &str) -> Option<State> {
        let conn = rebound::store::open_current(&self.db()).unwrap();
        state(&conn, addr)
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn key_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn cli_verp_sign_and_check() {
    let site = Site::new();
    let out = site.run(&["verp", "sign", "--id", "abc-1"], None);
    assert!(out.status.success(), "{out:?}");
    let address = stdout(&out);
    assert!(address.starts_with("bounce+abc-1.") && address.ends_with("@bounce.example.com"), "{address}");
    assert_eq!(key_mode(&site.dir.path().join("verp.key")), 0o600);

    let ok = site.run(&["verp", "check", &address.to_uppercase(), "--format", "json"], None);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&ok)).unwrap();
    assert_eq!((v["valid"].as_bool(), v["id"].as_str()), (Some(true), Some("ABC-1")));

    let expired = stdout(&site.run(&["verp", "sign", "--id", "abc-1", "--expires", "0d"], None));
    let bad = site.run(&["verp", "check", &expired, "--format", "json"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains("\"error\":\"expired\""), "{}", stdout(&bad));

    let tampered = address.replacen("abc-1", "abc-2", 1);
    let bad = site.run(&["verp", "check", &tampered], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains("forged"), "{}", stdout(&bad));

    let other = site.run(&["verp", "sign", "--id", "x", "--domain", "b.example.net", "--prefix", "rb", "--expires", "12h"], None);
    assert!(stdout(&other).starts_with("rb+x.") && stdout(&other).ends_with("@b.example.net"), "{other:?}");
    assert_eq!(site.run(&["verp", "check", "not an address"], None).status.code(), Some(1));
    assert_eq!(site.run(&["verp", "sign", "--id", "bad id"], None).status.code(), Some(1));
    assert_eq!(site.run(&["verp", "sign", "--id", "x", "--expires", "soon"], None).status.code(), Some(2));
}

#[test]
fn cli_send_add_and_import() {
    let site = Site::new();
    let out = site.run(&["send", "add", "--id", "w-1", "--recipient", "w@example.org", "--campaign", "welcome"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(site.run(&["verp", "check", &stdout(&out)], None).status.code(), Some(0));

    let n = 20_000;
    let mut jsonl = String::new();
    for i in 0..n {
        jsonl.push_str(&format!("{{\"id\":\"imp-{i}\",\"recipient\":\"u{i}@example.org\",\"campaign\":\"c\",\"metadata\":{{\"n\":{i}}}}}\n"));
    }
    let out = site.run(&["send", "import"], Some(jsonl.as_bytes()));
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), n);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["id"], "imp-0");
    assert!(first["return_path"].as_str().unwrap().starts_with("bounce+imp-0."));
    // The rate is printed for people (speed belongs to benchmarks, not assertions).
    eprintln!("send import: {}", String::from_utf8_lossy(&out.stderr).trim());

    let bad = site.run(&["send", "import", "--quiet"], Some(b"{\"id\":\"ok-1\",\"recipient\":\"o@example.org\"}\nnot json\n"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("stdin:2:"), "{bad:?}");
    assert!(bad.stdout.is_empty());
    let conn = rebound::store::open_current(&site.db()).unwrap();
    let count: i64 = conn.query_row("SELECT count(*) FROM sends", [], |r| r.get(0)).unwrap();
    assert_eq!(count, n as i64 + 2, "good lines are kept");
}

#[test]
fn cli_reject_550_suppresses() {
    let site = Site::new();
    let out = site.run(
        &["reject", "--recipient", "gone@example.org", "--reply-code", "550", "--status", "5.1.1", "--text", "5.1.1 <gone@example.org>: user unknown", "--smtp-command", "RCPT"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(site.state("gone@example.org"), Some(State::Suppressed));
}

#[test]
fn cli_reject_421_does_not_suppress() {
    let site = Site::new();
    let line = br#"{"recipient":"busy@example.org","reply_code":421,"status":"4.7.0","text":"4.7.0 Try again later, closing connection","smtp_command":"MAIL","remote_mta":"mx.example.org","time":"2026-11-29T10:00:00Z"}"#;
    let out = site.run(&["reject", "--format", "json"], Some(line));
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["kind"], "delay");
    assert_eq!(v["verified"], true, "an app's own reject is trusted");
    assert_ne!(v["state"], "suppressed");
    assert_ne!(site.state("busy@example.org"), Some(State::Suppressed));
    let conn = rebound::store::open_current(&site.db()).unwrap();
    let (source, at): (String, i64) =
        conn.query_row("SELECT source, occurred_at FROM events", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((source.as_str(), at), ("reject", 1_795_946_400));

    // A send id that does not exist is not trusted.
    let out = site.run(&["reject", "--recipient", "x@example.org", "--reply-code", "550", "--send-id", "nope", "--format", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["verified"], false);
    // Bad input names the line at fault.
    let bad = site.run(&["reject"], Some(b"{\"recipient\":\"y@example.org\",\"colour\":1}\n"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("stdin:1:"), "{bad:?}");
}

// ---- end to end over LMTP ---------------------------------------------------------

/// A running `rebound serve` on 127.0.0.1:0; stopped (SIGTERM) on drop.
pub struct Served {
    child: std::process::Child,
    pub addr: String,
}

impl Served {
    /// Starts the server for `site` and waits for its "listening" log line.
    pub fn start(site: &Site) -> Served {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = site
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["fields"]["message"] == "listening" {
                        let _ = tx.send(v["fields"]["address"].as_str().unwrap_or_default().to_string());
                    }
                }
            }
        });
        let addr = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("serve never logged 'listening'");
        Served { child, addr }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process by its id.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A minimal LMTP client: one connection, several transactions.
pub struct Lmtp {
    r: std::io::BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
}

impl Lmtp {
    pub fn connect(addr: &str) -> Lmtp {
        let w = std::net::TcpStream::connect(addr).unwrap();
        let mut c = Lmtp { r: std::io::BufReader::new(w.try_clone().unwrap()), w };
        assert!(c.reply().starts_with("220"));
        c.send("LHLO test.example");
        assert!(c.reply().starts_with("250"));
        c
    }

    fn send(&mut self, line: &str) {
        use std::io::Write;
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// Reads one (possibly multi-line) reply.
    fn reply(&mut self) -> String {
        use std::io::BufRead;
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(self.r.read_line(&mut line).unwrap() > 0, "connection closed");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    /// Delivers one message to one recipient; returns the final reply.
    pub fn deliver(&mut self, rcpt: &str, message: &str) -> String {
        self.send("MAIL FROM:<>");
        assert!(self.reply().starts_with("250"));
        self.send(&format!("RCPT TO:<{rcpt}>"));
        let r = self.reply();
        if !r.starts_with("250") {
            self.send("RSET");
            self.reply();
            return r;
        }
        self.send("DATA");
        assert!(self.reply().starts_with("354"));
        for line in message.lines() {
            let line = if line.starts_with('.') { format!(".{line}") } else { line.to_string() };
            self.send(&line);
        }
        self.send(".");
        self.reply()
    }
}

/// An RFC 3464 delivery status notification for `recipient`, returned to `return_path`.
pub fn dsn(return_path: &str, recipient: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n\
         To: <{return_path}>\n\
         Subject: Undelivered Mail Returned to Sender\n\
         Date: Sun, 29 Nov 2026 10:00:00 +0000\n\
         Message-ID: <dsn-{recipient}@mx.example.net>\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"BOUNDARY\"\n\
         \n\
         --BOUNDARY\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         Your message could not be delivered to one or more recipients.\n\
         \n\
         --BOUNDARY\n\
         Content-Type: message/delivery-status\n\
         \n\
         Reporting-MTA: dns; mx.example.net\n\
         Arrival-Date: Sun, 29 Nov 2026 09:59:58 +0000\n\
         \n\
         Final-Recipient: rfc822; {recipient}\n\
         Original-Recipient: rfc822; {recipient}\n\
         Action: failed\n\
         Status: {status}\n\
         Remote-MTA: dns; mx.example.org\n\
         Diagnostic-Code: smtp; {diagnostic}\n\
         \n\
         --BOUNDARY\n\
         Content-Type: text/rfc822-headers\n\
         \n\
         Return-Path: <{return_path}>\n\
         From: News <news@example.com>\n\
         To: {recipient}\n\
         Subject: Our news\n\
         Message-ID: <orig-{recipient}@example.com>\n\
         \n\
         --BOUNDARY--\n"
    )
}

/// An RFC 3834 out-of-office reply from `from`.
pub fn out_of_office(return_path: &str, from: &str) -> String {
    format!(
        "From: <{from}>\n\
         To: <{return_path}>\n\
         Subject: Out of Office: Our news\n\
         Date: Sun, 29 Nov 2026 10:00:00 +0000\n\
         Message-ID: <ooo-{from}>\n\
         Auto-Submitted: auto-replied\n\
         X-Autoreply: yes\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         I am out of the office until Monday 7 December with limited access to email.\n"
    )
}

#[test]
fn lmtp_end_to_end_only_the_genuine_hard_bounce_suppresses() {
    let site = Site::new();
    let sign = |id: &str, exp: &str| stdout(&site.run(&["verp", "sign", "--id", id, "--expires", exp], None));
    let (t_a, t_b, t_c, t_d, t_e) = (sign("send-a", "30d"), sign("send-b", "30d"), sign("send-c", "30d"), sign("send-d", "30d"), sign("send-e", "0d"));
    // Tamper: change one MAC character of a genuine token.
    let at = t_d.find('@').unwrap();
    let mut d = t_d.into_bytes();
    d[at - 1] = if d[at - 1] == b'a' { b'b' } else { b'a' };
    let t_d = String::from_utf8(d).unwrap();

    let server = Served::start(&site);
    let mut c = Lmtp::connect(&server.addr);
    let user_unknown = |r: &str| format!("550 5.1.1 <{r}>: Recipient address rejected: User unknown in virtual mailbox table");
    for (rcpt, msg) in [
        (&t_a, dsn(&t_a, "a@example.org", "5.1.1", &user_unknown("a@example.org"))),
        (&t_b, out_of_office(&t_b, "b@example.org")),
        (&t_c, dsn(&t_c, "c@example.org", "5.7.1", "550 5.7.1 Service unavailable; client host [192.0.2.10] blocked using zen.spamhaus.org")),
        (&t_d, dsn(&t_d, "d@example.org", "5.1.1", &user_unknown("d@example.org"))),
        (&t_e, dsn(&t_e, "e@example.org", "5.1.1", &user_unknown("e@example.org"))),
    ] {
        let r = c.deliver(rcpt, &msg);
        assert!(r.starts_with("250"), "{rcpt}: {r}");
    }
    c.send("QUIT");
    drop(server);

    assert_eq!(site.state("a@example.org"), Some(State::Suppressed));
    for addr in ["b@example.org", "c@example.org", "d@example.org", "e@example.org"] {
        assert_ne!(site.state(addr), Some(State::Suppressed), "{addr}");
    }
    let conn = rebound::store::open_current(&site.db()).unwrap();
    let verified = |r: &str| -> Vec<bool> {
        let mut st = conn.prepare("SELECT verified FROM events WHERE recipient = ?1").unwrap();
        st.query_map([r], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(verified("a@example.org"), vec![true]);
    assert_eq!(verified("c@example.org"), vec![true]);
    assert_eq!(verified("d@example.org"), vec![false], "tampered");
    assert_eq!(verified("e@example.org"), vec![false], "expired");

    // Then synchronous rejects: 550 5.1.1 suppresses a fresh address, 421 4.7.0 does not.
    let r = site.run(&["reject", "--recipient", "f@example.org", "--reply-code", "550", "--status", "5.1.1", "--text", "user unknown"], None);
    assert!(r.status.success(), "{r:?}");
    assert_eq!(site.state("f@example.org"), Some(State::Suppressed));
    let r = site.run(&["reject", "--recipient", "g@example.org", "--reply-code", "421", "--status", "4.7.0", "--text", "rate limited, try again later"], None);
    assert!(r.status.success(), "{r:?}");
    assert_ne!(site.state("g@example.org"), Some(State::Suppressed));
}

#[test]
fn lmtp_reject_invalid_verp_refuses_bad_tokens_at_rcpt() {
    let site = Site::with_verp("reject_invalid_verp = true");
    let good = stdout(&site.run(&["verp", "sign", "--id", "ok-1"], None));
    let expired = stdout(&site.run(&["verp", "sign", "--id", "old-1", "--expires", "0d"], None));
    let forged = good.replacen("ok-1", "ok-2", 1);
    let server = Served::start(&site);
    let mut c = Lmtp::connect(&server.addr);
    let msg = dsn(&good, "r@example.org", "5.1.1", "550 5.1.1 user unknown");
    for (rcpt, want) in [
        (forged.as_str(), "550 5.7.1"),
        (expired.as_str(), "550 5.7.1"),
        ("bounce+garbage@bounce.example.com", "550 5.7.1"),
        (good.as_str(), "250"),
        ("postmaster@bounce.example.com", "250"),
        ("bounce+r=example.org@bounce.example.com", "250"),
    ] {
        let r = c.deliver(rcpt, &msg);
        assert!(r.starts_with(want), "{rcpt}: {r}");
    }
    // Off by default: the same forged token is accepted and stored unverified.
    let open_site = Site::new();
    let server2 = Served::start(&open_site);
    let mut c2 = Lmtp::connect(&server2.addr);
    assert!(c2.deliver(&forged, &msg).starts_with("250"));
}

#[test]
fn verp_config_section() {
    let c = rebound::config::Config::from_toml(
        "[verp]\ndomain = \"b.example.net\"\nprefix = \"rb\"\nkey_file = \"/etc/rebound/verp.key\"\n\
         verify_key_files = [\"/etc/rebound/verp-2025.key\"]\nexpiry_days = 45\nreject_invalid_verp = true\n",
    )
    .unwrap();
    assert_eq!((c.verp.domain.as_str(), c.verp.prefix.as_str(), c.verp.expiry_days), ("b.example.net", "rb", 45));
    assert!(c.verp.reject_invalid_verp);
    assert_eq!(c.verp.verify_key_files.len(), 1);
    let d = rebound::config::Config::default();
    assert_eq!((d.verp.prefix.as_str(), d.verp.expiry_days, d.verp.reject_invalid_verp), ("bounce", 30, false));
    assert!(rebound::config::Config::from_toml("[verp]\nkey = \"x\"\n").is_err(), "unknown keys are refused");

    // Key files: several keys, comments, bad lines named by number.
    let keys = rebound::verp_keys::parse_keys(Path::new("k"), "# new\n00112233445566778899aabbccddeeff\n\nFFEEDDCCBBAA99887766554433221100\n").unwrap();
    assert_eq!(keys.len(), 2);
    let err = rebound::verp_keys::parse_keys(Path::new("k"), "00112233445566778899aabbccddeeff\nnot hex\n").unwrap_err();
    assert!(err.to_string().contains("k:2"), "{err}");
}
