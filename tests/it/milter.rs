//! Tests: milter. A raw-socket MTA drives whole conversations against the server on
//! port 0 (in process and as the `rebound milter` binary); `postfix` runs a real
//! Postfix smtpd with rebound as its milter.

mod client;
mod postfix;

use client::{cstrings, BrokenStore, MtaConn, Setup, TestServer, ALL_PROTOCOL};
use rebound::milter::OnEom;
use std::sync::Arc;

const NR_HDR: u32 = 0x80;
const NR_BODY: u32 = 0x8_0000;
const VALID: &str = "<bounce+ok42@bounces.example.test>";

/// MAIL <> .. EOM of a small DSN-like message to `rcpt`; returns the EOM reply code.
fn send_message(c: &mut MtaConn, rcpt: &str) -> u8 {
    c.send(b'D', b"Mi\0QID1\0");
    assert_eq!(c.ask(b'M', &cstrings(&["<>", "BODY=8BITMIME"])), b'c');
    assert_eq!(c.ask(b'R', &cstrings(&[rcpt])), b'c');
    assert_eq!(c.ask(b'T', b""), b'c');
    // NR_HDR and NR_BODY were negotiated: no replies to these.
    c.send(b'L', &cstrings(&["From", " Mail Delivery System <MAILER-DAEMON@mx.example.org>"]));
    c.send(b'L', &cstrings(&["Subject", " Undelivered Mail\n\tReturned to Sender"]));
    assert_eq!(c.ask(b'N', b""), b'c');
    c.send(b'B', b"The mail system\r\n\r\n<alice@example.org>: host said 550 5.1.1 unknown\r\n");
    c.ask(b'E', b"")
}

fn stored_messages(db: &std::path::Path) -> Vec<(String, String, String, Vec<u8>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let ids: Vec<i64> =
        conn.prepare("SELECT id FROM messages ORDER BY id").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    ids.into_iter()
        .map(|id| {
            let m = rebound::store::query::message_by_id(&conn, id).unwrap().unwrap();
            let raw = m.raw_bytes().expect("raw bytes decode");
            (m.source, m.envelope_sender, m.envelope_recipients, raw)
        })
        .collect()
}

#[test]
fn full_conversation_records_the_bounce_and_refuses_a_forged_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let srv = TestServer::start(Setup::with_db(&db));
    let mut c = MtaConn::connect(srv.addr);
    let (version, actions, protocol) = c.negotiate(ALL_PROTOCOL);
    assert_eq!((version, actions), (6, 0));
    assert_eq!(protocol & (NR_HDR | NR_BODY), NR_HDR | NR_BODY);
    c.send(b'D', b"Cj\0mx.example.test\0{daemon_name}\0smtpd\0");
    assert_eq!(c.ask(b'C', b"client.example.org\x004\x00\x19192.0.2.1\0"), b'c');
    assert_eq!(c.ask(b'H', b"client.example.org\0"), b'c');

    // Forged token: 550 5.7.1 at RCPT, before any data.
    assert_eq!(c.ask(b'M', &cstrings(&["<>"])), b'c');
    c.send(b'R', &cstrings(&["<bounce+forged1@bounces.example.test>"]));
    let (code, text) = c.recv().unwrap();
    assert_eq!(code, b'y');
    assert!(text.starts_with(b"550 5.7.1 ") && text.ends_with(b"\0"), "{}", String::from_utf8_lossy(&text));
    c.send(b'A', b"");

    // Valid token: recorded, then accepted (on_eom = accept).
    assert_eq!(send_message(&mut c, VALID), b'a');
    let rows = stored_messages(&db);
    assert_eq!(rows.len(), 1);
    let (source, sender, rcpts, raw) = &rows[0];
    assert_eq!((source.as_str(), sender.as_str()), ("milter", ""));
    assert_eq!(rcpts, r#"["bounce+ok42@bounces.example.test"]"#);
    let raw = String::from_utf8_lossy(raw);
    assert!(raw.starts_with("From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nSubject: Undelivered Mail\r\n\tReturned to Sender\r\n\r\nThe mail system\r\n"), "{raw}");

    // Mail for anyone else is accepted at DATA and never stored.
    assert_eq!(c.ask(b'M', &cstrings(&["<news@example.com>"])), b'c');
    assert_eq!(c.ask(b'R', &cstrings(&["<alice@example.com>"])), b'c');
    assert_eq!(c.ask(b'T', b""), b'a');
    c.send(b'Q', b"");
    assert!(c.closed());
    assert_eq!(stored_messages(&db).len(), 1);
}

#[test]
fn discard_mode_discards_after_recording() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let srv = TestServer::start(Setup { on_eom: OnEom::Discard, ..Setup::with_db(&db) });
    let mut c = MtaConn::connect(srv.addr);
    c.negotiate(ALL_PROTOCOL);
    assert_eq!(send_message(&mut c, VALID), b'd');
    assert_eq!(stored_messages(&db).len(), 1);
}

#[test]
fn store_failure_answers_tempfail() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup { on_eom: OnEom::Discard, recorder: Arc::new(BrokenStore), ..Setup::with_db(&dir.path().join("r.db")) };
    let srv = TestServer::start(setup);
    let mut c = MtaConn::connect(srv.addr);
    c.negotiate(ALL_PROTOCOL);
    assert_eq!(send_message(&mut c, VALID), b't');
}

#[test]
fn a_broken_packet_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(Setup::with_db(&dir.path().join("r.db")));
    let mut bad = MtaConn::connect(srv.addr);
    bad.send_raw(&[0xff, 0xff, 0xff, 0xff, b'B']);
    assert!(bad.closed());
    let mut early = MtaConn::connect(srv.addr);
    early.send(b'H', b"x\0");
    assert!(early.closed(), "a command before negotiation must close the connection");
    let mut good = MtaConn::connect(srv.addr);
    assert_eq!(good.negotiate(ALL_PROTOCOL).0, 6);
}

#[test]
fn connections_over_the_limit_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(Setup { max_connections: 1, ..Setup::with_db(&dir.path().join("r.db")) });
    let mut first = MtaConn::connect(srv.addr);
    first.negotiate(ALL_PROTOCOL);
    let mut second = MtaConn::connect(srv.addr);
    assert!(second.closed(), "second connection must be closed at once");
    assert_eq!(first.ask(b'H', b"still.here\0"), b'c');
}

#[test]
fn unix_socket_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("milter.sock");
    let srv = TestServer::start(Setup { socket: Some(sock.clone()), ..Setup::with_db(&dir.path().join("r.db")) });
    let mut c = MtaConn::connect_unix(&sock);
    c.negotiate(ALL_PROTOCOL);
    assert_eq!(send_message(&mut c, VALID), b'a');
    drop(srv);
    assert!(!sock.exists(), "socket file removed at shutdown");
}

#[test]
fn shutdown_finishes_the_message_in_progress_then_closes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let mut srv = TestServer::start(Setup::with_db(&db));
    let mut idle = MtaConn::connect(srv.addr);
    idle.negotiate(ALL_PROTOCOL);
    let mut busy = MtaConn::connect(srv.addr);
    busy.negotiate(ALL_PROTOCOL);
    assert_eq!(busy.ask(b'M', &cstrings(&["<>"])), b'c');
    srv.begin_shutdown();
    // The idle connection is closed; the busy one finishes its message first.
    assert!(idle.closed());
    assert_eq!(busy.ask(b'R', &cstrings(&[VALID])), b'c');
    assert_eq!(busy.ask(b'N', b""), b'c');
    busy.send(b'B', b"body\r\n");
    assert_eq!(busy.ask(b'E', b""), b'a');
    assert!(busy.closed());
    srv.stop();
    assert_eq!(stored_messages(&db).len(), 1);
}

#[test]
fn binary_serves_records_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let config = dir.path().join("rebound.toml");
    std::fs::write(&config, format!("[verp]\nkey_file = {:?}\n", dir.path().join("verp.key"))).unwrap();
    let global = ["--config", config.to_str().unwrap(), "--db", db.to_str().unwrap()];
    let mut reb = client::RunningRebound::start(&global, &["--bounce-domain", "bounces.example.test"]);
    let mut c = MtaConn::connect(reb.addr);
    assert_eq!(c.negotiate(ALL_PROTOCOL).0, 6);
    assert_eq!(send_message(&mut c, VALID), b'a');
    c.send(b'Q', b"");
    assert!(c.closed());
    assert!(reb.terminate().success());
    assert_eq!(stored_messages(&db).len(), 1);
}

#[test]
fn binary_without_a_bounce_domain_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let config = dir.path().join("rebound.toml");
    std::fs::write(&config, "[verp]\ndomain = \"\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(["--config", config.to_str().unwrap(), "--db", db.to_str().unwrap(), "milter", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bounce"));
}
