//! Every limit answered with its code, and the store-failure path (451 4.3.0, then
//! recovery on the same connection).

use super::support::{Client, TestServer, BODY};
use rebound::lmtp::LmtpConfig;

#[test]
fn message_size_limit() {
    let server = TestServer::start(LmtpConfig { max_message_bytes: 1000, ..Default::default() });
    let mut c = server.client();
    assert!(c.cmd("LHLO client").contains("SIZE 1000"));
    assert!(c.cmd("MAIL FROM:<> SIZE=1001").starts_with("552 5.3.4"), "declared SIZE over the limit");
    // Undeclared size: the whole message is read, then refused once per recipient.
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n");
    c.replies(4);
    let big = "x".repeat(80) + "\r\n";
    c.send(big.repeat(20).as_bytes());
    let r = c.cmd(".");
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(c.reply().starts_with("552 5.3.4"));
    assert!(c.cmd("NOOP").starts_with("250"), "connection still in sync");
    assert_eq!(server.count("messages"), 0);
    assert!(c.deliver(&["a@x.test"], BODY)[0].starts_with("250"), "a small one still passes");
}

#[test]
fn recipient_limit() {
    let server = TestServer::start(LmtpConfig { max_recipients: 2, ..Default::default() });
    let mut c = server.client();
    c.cmd("LHLO client");
    c.cmd("MAIL FROM:<>");
    assert!(c.cmd("RCPT TO:<a@x.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<b@x.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<c@x.test>").starts_with("452 4.5.3"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(BODY);
    assert_eq!(c.cmd(".").get(..3), Some("250"));
    assert_eq!(c.reply().get(..3), Some("250"));
    assert!(c.cmd("NOOP").starts_with("250"), "exactly two replies for two accepted recipients");
}

#[test]
fn line_length_limit_for_commands_and_data() {
    let server = TestServer::start(LmtpConfig { max_line_bytes: 100, ..Default::default() });
    let mut c = server.client();
    c.cmd("LHLO client");
    let long = format!("NOOP {}", "y".repeat(300));
    assert!(c.cmd(&long).starts_with("500 5.5.2"));
    assert!(c.cmd("NOOP").starts_with("250"), "connection still in sync");
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n");
    c.replies(3);
    c.send(format!("Subject: x\r\n\r\n{}\r\n", "z".repeat(200)).as_bytes());
    assert!(c.cmd(".").starts_with("500 5.5.2"));
    assert!(c.cmd("NOOP").starts_with("250"));
    assert_eq!(server.count("messages"), 0);
}

#[test]
fn idle_timeout_closes_with_421() {
    let server = TestServer::start(LmtpConfig { idle_timeout_secs: 1, ..Default::default() });
    let mut c = server.client();
    c.cmd("LHLO client");
    // Say nothing: the server must speak first, then close.
    assert!(c.reply().starts_with("421 4.4.2"));
    assert!(c.closed());
}

#[test]
fn connection_limit_answers_421() {
    let server = TestServer::start(LmtpConfig { max_connections: 1, ..Default::default() });
    let mut first = server.client();
    assert!(first.cmd("LHLO client").starts_with("250"), "the first session is being served");
    let mut second = Client::connect(&server.addrs[0]);
    assert!(second.reply().starts_with("421 4.3.2"));
    assert!(second.closed());
    assert!(first.cmd("QUIT").starts_with("221"));
    assert!(first.closed());
    // The slot is free again once the first session has ended.
    let mut third = Client::connect(&server.addrs[0]);
    let greeting = third.reply();
    assert!(greeting.starts_with("220"), "{greeting}");
}

#[test]
fn store_failure_gives_451_per_recipient_then_recovers() {
    // Without the spool a 250 waits for the commit, so a full store answers 451.
    let server = TestServer::start(LmtpConfig { spool: false, ..LmtpConfig::default() });
    let mut c = server.client();
    c.cmd("LHLO client");
    assert!(c.deliver(&["a@x.test"], BODY)[0].starts_with("250"));
    // Cap the database at its current size: the next message cannot be written.
    assert!(cap_store(&server, true) > 0);
    let body = incompressible_body();
    let replies = c.deliver(&["a@x.test", "b@x.test"], &body);
    assert_eq!(replies.len(), 2);
    assert!(replies.iter().all(|r| r.starts_with("451 4.3.0")), "{replies:?}");
    assert_eq!(server.count("messages"), 1, "nothing of the failed message was kept");
    // Space comes back: the same connection stores again.
    cap_store(&server, false);
    let replies = c.deliver(&["a@x.test", "b@x.test"], &body);
    assert!(replies.iter().all(|r| r.starts_with("250")), "{replies:?}");
    assert_eq!(server.count("messages"), 2);
}

/// A message of 200 KB that does not compress (so it cannot fit in a capped store).
fn incompressible_body() -> Vec<u8> {
    let incompressible: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 % 94 + 33).collect();
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    for chunk in incompressible.chunks(76) {
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.into_iter().map(|b| if b == b'.' { b'-' } else { b }).collect()
}

/// Caps the store at its current size (true) or lifts the cap (false); returns the
/// store's page limit now.
fn cap_store(server: &TestServer, cap: bool) -> i64 {
    server
        .writer()
        .submit_blocking(move |tx| {
            let n: i64 = if cap { tx.query_row("PRAGMA page_count", [], |r| r.get(0))? } else { 1073741823 };
            Ok(tx.query_row(&format!("PRAGMA max_page_count = {n}"), [], |r| r.get::<_, i64>(0))?)
        })
        .unwrap()
}

#[test]
fn with_the_spool_a_full_store_still_acknowledges_and_stores_once_it_has_room() {
    let server = TestServer::start(LmtpConfig::default());
    let mut c = server.client();
    c.cmd("LHLO client");
    assert!(c.deliver(&["a@x.test"], BODY)[0].starts_with("250"));
    assert_eq!(server.count("messages"), 1);
    assert!(cap_store(&server, true) > 0);
    // The message is durable in the spool: 250, although the store cannot take it yet.
    let replies = c.deliver(&["a@x.test", "b@x.test"], &incompressible_body());
    assert!(replies.iter().all(|r| r.starts_with("250 ")), "{replies:?}");
    let spool = server.spool().expect("the spool is on by default");
    assert!(!spool.wait_applied(std::time::Duration::from_millis(300)), "a full store cannot have taken it");
    cap_store(&server, false);
    assert_eq!(server.count("messages"), 2, "stored once the store had room");
    let rcpts: String = server.db().query_row("SELECT envelope_recipients FROM messages ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert!(rcpts.contains("b@x.test"), "{rcpts}");
}
