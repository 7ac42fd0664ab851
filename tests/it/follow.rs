//! Tests: follow. Rotation (rename, copytruncate) and restarts driven step by step on
//! files this test writes, dedup of the log line against the DSN, parser properties,
//! and (in `follow/postfix.rs`) the real Postfix of ../shared/postfix-harness.

mod postfix;

use proptest::prelude::*;
use rebound::classify::shared::SharedClassifier;
use rebound::classify::Classifier;
use rebound::maillog::{parse_line, FollowConfig, Follower, LogFormat, LogSource};
use rebound::store::event::{insert_event, NewEvent};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// (queue id, recipient, kind, status, occurred_at, envelope recipient), in id order.
pub type EventRow = (String, String, String, String, i64, String);

/// The non-duplicate events of a database, in insertion order.
pub fn events(db: &Path) -> Vec<EventRow> {
    let conn = rebound::store::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT queue_id, recipient, kind, status, occurred_at, envelope_recipient FROM events
             WHERE duplicate_of IS NULL ORDER BY id",
        )
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// The (recipient, kind) pairs of a database's events, in order.
fn recipients(db: &Path) -> Vec<(String, String)> {
    events(db).into_iter().map(|e| (e.1, e.2)).collect()
}

/// Two lines of Postfix for message `n`: its sender, then a 550 at RCPT for `u{n}`.
fn message(n: u32) -> String {
    format!(
        "Nov 29 17:36:40 mta postfix/qmgr[1]: Q{n:08}X: from=<bounces+s{n}@b.test>, size=1, nrcpt=1 (queue active)\n\
         Nov 29 17:36:40 mta postfix/smtp[2]: Q{n:08}X: to=<u{n}@remote.test>, relay=mx[192.0.2.1]:25, delay=0.1, \
         delays=0/0/0/0, dsn=5.1.1, status=bounced (host mx[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command))\n"
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

struct Fixture {
    dir: tempfile::TempDir,
    db: PathBuf,
    log: PathBuf,
}

impl Fixture {
    /// VERP settings whose key file lives in the test's directory.
    fn verp(&self) -> rebound::verp::VerpConfig {
        rebound::verp::VerpConfig { key_file: self.dir.path().join("verp.key"), ..Default::default() }
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture { db: dir.path().join("r.db"), log: dir.path().join("maillog"), dir }
}

fn follower(fx: &Fixture) -> Follower {
    let conn = rebound::store::open(&fx.db).unwrap();
    let classifier = Arc::new(SharedClassifier::new(Classifier::with_default_rules()));
    Follower::open(conn, &fx.log, LogFormat::Auto, classifier, fx.verp(), &FollowConfig::default(), false)
        .unwrap()
}

fn expect(fx: &Fixture, ns: std::ops::Range<u32>) {
    let want: Vec<_> = ns.map(|n| (format!("u{n}@remote.test"), "bounce".to_string())).collect();
    assert_eq!(recipients(&fx.db), want);
    assert!(events(&fx.db).iter().all(|e| e.5.starts_with("bounces+s")), "a result lost its sender");
}

fn drain(f: &mut Follower) {
    while f.poll_once().unwrap() {}
}

#[test]
fn rename_rotation_while_running() {
    let fx = fixture();
    append(&fx.log, &message(0));
    let mut f = follower(&fx);
    drain(&mut f);
    // Renamed; the MTA still writes to the old file until it reopens.
    let old = fx.log.with_extension("1");
    std::fs::rename(&fx.log, &old).unwrap();
    append(&old, &message(1));
    drain(&mut f);
    append(&old, &message(2));
    append(&fx.log, &message(3));
    drain(&mut f);
    append(&fx.log, &message(4));
    drain(&mut f);
    expect(&fx, 0..5);
    assert_eq!(f.stats.rotations, 1);
    // An old writer process still finishing into the renamed file, before and after a
    // restart of the follower.
    append(&old, &message(5));
    drain(&mut f);
    expect(&fx, 0..6);
    drop(f);
    append(&old, &message(6));
    append(&fx.log, &message(7));
    drain(&mut follower(&fx));
    expect(&fx, 0..8);
}

#[test]
fn copytruncate_while_running() {
    let fx = fixture();
    append(&fx.log, &message(0));
    let mut f = follower(&fx);
    drain(&mut f);
    // Lines written after the last read end up only in the copy.
    append(&fx.log, &message(1));
    std::fs::copy(&fx.log, fx.log.with_extension("1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&fx.log).unwrap().set_len(0).unwrap();
    append(&fx.log, &message(2));
    drain(&mut f);
    expect(&fx, 0..3);
    assert_eq!(f.stats.truncations, 1);
    // Truncated and regrown past the old offset before the next look.
    std::fs::copy(&fx.log, fx.log.with_extension("2")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&fx.log).unwrap().set_len(0).unwrap();
    append(&fx.log, &(3..8).map(message).collect::<String>());
    drain(&mut f);
    expect(&fx, 0..8);
}

#[test]
fn restart_resumes_exactly_and_after_rotation_while_stopped() {
    let fx = fixture();
    append(&fx.log, &message(0));
    append(&fx.log, "Nov 29 17:36:40 mta postfix/qmgr[1]: Q00000001X: from=<bounces+s1@b.test>, size=1, nrcpt=1 (queue active)\n");
    drain(&mut follower(&fx));
    // The sender line was read by the first run, its result by the second: the join
    // state is in the store too.
    append(&fx.log, message(1).lines().nth(1).map(|l| format!("{l}\n")).unwrap().as_str());
    // A half-written line is left for later.
    let third = message(2);
    let (head, tail) = third.split_at(40);
    append(&fx.log, head);
    drain(&mut follower(&fx));
    expect(&fx, 0..2);
    append(&fx.log, tail);
    drain(&mut follower(&fx));
    expect(&fx, 0..3);
    // Renamed while stopped, with lines the follower never saw in the old file.
    append(&fx.log, &message(3));
    std::fs::rename(&fx.log, fx.log.with_extension("1")).unwrap();
    append(&fx.log, &message(4));
    drain(&mut follower(&fx));
    expect(&fx, 0..5);
    // Copied and truncated while stopped.
    append(&fx.log, &message(5));
    std::fs::copy(&fx.log, fx.log.with_extension("2")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&fx.log).unwrap().set_len(0).unwrap();
    append(&fx.log, &message(6));
    let mut f = follower(&fx);
    f.read_to_end().unwrap();
    expect(&fx, 0..7);
    // Nothing new: nothing repeated.
    drain(&mut follower(&fx));
    expect(&fx, 0..7);
}

#[test]
fn log_then_dsn_counts_once() {
    let fx = fixture();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/maillog-postfix-harness.txt"), &fx.log).unwrap();
    follower(&fx).read_to_end().unwrap();
    let conn = rebound::store::open(&fx.db).unwrap();
    let log_id: i64 = conn
        .query_row("SELECT id FROM events WHERE recipient = 'user1@remote.example.test' AND source = 'log'", [], |r| r.get(0))
        .unwrap();
    // What the LMTP path stores for Postfix's DSN of the same failure
    // (tests/data/maillog-dsn-550.eml: Original Message-ID m1@app.example.test).
    let mut conn = conn;
    let tx = conn.transaction().unwrap();
    let dsn = NewEvent {
        source: "lmtp".into(),
        recipient: "user1@remote.example.test".into(),
        kind: "bounce".into(),
        status: "5.1.1".into(),
        original_message_id: "m1@app.example.test".into(),
        reason: "userunknown".into(),
        class: "invalid_recipient".into(),
        fault: "recipient".into(),
        hard: true,
        ..Default::default()
    };
    let dsn_id = insert_event(&tx, None, &dsn).unwrap();
    let dup: Option<i64> = tx.query_row("SELECT duplicate_of FROM events WHERE id = ?1", [dsn_id], |r| r.get(0)).unwrap();
    assert_eq!(dup, Some(log_id));
}

#[test]
fn real_dsn_after_log_is_duplicate() {
    let fx = fixture();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/maillog-postfix-harness.txt"), &fx.log).unwrap();
    follower(&fx).read_to_end().unwrap();
    // Postfix's DSN for the same 550, stored the way the LMTP path stores it.
    let raw = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/maillog-dsn-550.eml")).unwrap();
    let p = rebound::pipeline::process_message(&raw, &Classifier::with_default_rules());
    let env = rebound::pipeline::Envelope { source: "lmtp".into(), recipient: "bounces+s1.abc@bounces.example.test".into() };
    let mut rows = rebound::pipeline::event_rows(&p, &env, 0);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].original_message_id, "m1@app.example.test");
    let mut conn = rebound::store::open(&fx.db).unwrap();
    let tx = conn.transaction().unwrap();
    rebound::store::correlate::correlate_events(&tx, &fx.verp(), &p.parsed, &mut rows, 0).unwrap();
    let dsn_id = insert_event(&tx, None, &rows[0]).unwrap();
    tx.commit().unwrap();
    let (dup, log_source): (Option<i64>, String) = conn
        .query_row(
            "SELECT d.duplicate_of, l.source FROM events d JOIN events l ON l.id = d.duplicate_of WHERE d.id = ?1",
            [dsn_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(dup.is_some());
    assert_eq!(log_source, "log");
    let counted: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE recipient = 'user1@remote.example.test' AND duplicate_of IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted, 1);
}

#[test]
fn signed_sender_550_suppresses_once_with_its_dsn() {
    let fx = fixture();
    let verp = rebound::verp::VerpConfig { domain: "bounces.example.test".into(), prefix: "bounces".into(), ..fx.verp() };
    let keys = rebound::verp_keys::load_or_create(&verp).unwrap();
    let now = chrono::Utc::now().timestamp();
    let token = keys.sign("bounces", "bounces.example.test", "send1", rebound::verp::expiry_day_for(now, 30 * 86_400)).unwrap();
    append(
        &fx.log,
        &format!(
            "Nov 29 17:36:40 mta postfix/cleanup[1]: QSIGNED01: message-id=<sig1@app.example.test>\n\
             Nov 29 17:36:40 mta postfix/qmgr[1]: QSIGNED01: from=<{token}>, size=1, nrcpt=1 (queue active)\n\
             Nov 29 17:36:40 mta postfix/smtp[2]: QSIGNED01: to=<gone@remote.test>, relay=mx[192.0.2.1]:25, delay=0.1, \
             delays=0/0/0/0, dsn=5.1.1, status=bounced (host mx[192.0.2.1] said: 550 5.1.1 <gone@remote.test>: \
             Recipient address rejected: User unknown (in reply to RCPT TO command))\n"
        ),
    );
    let conn = rebound::store::open(&fx.db).unwrap();
    let classifier = Arc::new(SharedClassifier::new(Classifier::with_default_rules()));
    Follower::open(conn, &fx.log, LogFormat::Auto, classifier, verp.clone(), &FollowConfig::default(), false)
        .unwrap()
        .read_to_end()
        .unwrap();
    let status = |conn: &rusqlite::Connection| -> (String, i64) {
        conn.query_row("SELECT state, hard_count FROM address_status WHERE address = 'gone@remote.test'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    };
    let mut conn = rebound::store::open(&fx.db).unwrap();
    let verified: bool =
        conn.query_row("SELECT verified FROM events WHERE queue_id = 'QSIGNED01'", [], |r| r.get(0)).unwrap();
    assert!(verified, "the signed return path did not verify");
    assert_eq!(status(&conn), ("suppressed".to_string(), 1));
    // Postfix's DSN of the same failure arrives later over LMTP.
    let tx = conn.transaction().unwrap();
    let mut dsn = [NewEvent {
        occurred_at: now,
        source: "lmtp".into(),
        envelope_recipient: token.clone(),
        recipient: "gone@remote.test".into(),
        kind: "bounce".into(),
        status: "5.1.1".into(),
        original_message_id: "sig1@app.example.test".into(),
        reason: "userunknown".into(),
        class: "invalid_recipient".into(),
        fault: "recipient".into(),
        hard: true,
        ..Default::default()
    }];
    rebound::store::correlate::correlate_events(&tx, &verp, &Default::default(), &mut dsn, now).unwrap();
    assert!(dsn[0].verified);
    let id = insert_event(&tx, None, &dsn[0]).unwrap();
    tx.commit().unwrap();
    let dup: Option<i64> = conn.query_row("SELECT duplicate_of FROM events WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    assert!(dup.is_some());
    assert_eq!(status(&conn), ("suppressed".to_string(), 1), "the DSN was counted again");
}

#[test]
fn spawned_follower_records_and_stops() {
    let fx = fixture();
    append(&fx.log, &message(0));
    let cfg = FollowConfig {
        logs: vec![LogSource { path: fx.log.clone(), format: LogFormat::Postfix }],
        poll_interval_ms: 20,
        ..Default::default()
    };
    rebound::store::open(&fx.db).unwrap();
    let handles = rebound::maillog::spawn_followers(&cfg, &fx.verp(), &fx.db, Arc::new(SharedClassifier::new(Classifier::with_default_rules())));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while recipients(&fx.db).is_empty() {
        assert!(std::time::Instant::now() < deadline, "follower recorded nothing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for h in handles {
        h.stop();
    }
    expect(&fx, 0..1);
}

#[test]
fn cli_once_and_stdin() {
    let fx = fixture();
    append(&fx.log, &(0..3).map(message).collect::<String>());
    append(&fx.log, "garbage line\n\u{0}\u{0}odd: line\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(["follow", "--once", "--db"])
        .arg(&fx.db)
        .arg(&fx.log)
        .current_dir(fx.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("events 3 unknown 2"), "{text}");
    expect(&fx, 0..3);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(["follow", "--format", "postfix", "--db"])
        .arg(&fx.db)
        .arg("-")
        .current_dir(fx.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // journalctl -o cat: no syslog frame.
    let bare: String = message(3).lines().map(|l| format!("{}\n", l.split_once("]: ").unwrap().1)).collect();
    child.stdin.take().unwrap().write_all(bare.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    expect(&fx, 0..4);
}

proptest! {
    #[test]
    fn parse_line_never_panics(line in "\\PC{0,200}") {
        for format in [LogFormat::Auto, LogFormat::Postfix, LogFormat::Sendmail] {
            let _ = parse_line(&line, format, 1_795_974_000);
        }
    }

    #[test]
    fn mangled_real_lines_never_panic(cut in 0usize..400, insert in "[<>(),=: \\[\\]a-z0-9]{0,8}") {
        let log = include_str!("../data/maillog-postfix-harness.txt");
        for line in log.lines().step_by(7) {
            let at = line.char_indices().map(|(i, _)| i).nth(cut % line.chars().count().max(1)).unwrap_or(0);
            let mangled = format!("{}{}{}", &line[..at], insert, &line[at..]);
            let _ = parse_line(&mangled, LogFormat::Auto, 0);
            let _ = parse_line(&line[..at], LogFormat::Auto, 0);
        }
    }
}

/// Not a test: prints the parser's speed (run by bench/follow.sh).
#[test]
#[ignore = "benchmark"]
fn follow_parse_speed() {
    let log = include_str!("../data/maillog-postfix-harness.txt");
    let lines: Vec<&str> = log.lines().collect();
    let rounds = 4000;
    let start = std::time::Instant::now();
    let mut results = 0usize;
    for _ in 0..rounds {
        for l in &lines {
            if let rebound::maillog::LogEntry::Results(v) = parse_line(l, LogFormat::Auto, 1_795_974_000).entry {
                results += v.len();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = lines.len() * rounds;
    println!("parse_line: {n} lines ({results} results) in {secs:.2} s = {:.0} lines/s", n as f64 / secs);
}
