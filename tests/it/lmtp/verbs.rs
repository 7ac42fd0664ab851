//! Every verb, pipelining, multi-recipient replies, dot-unstuffing, unix sockets,
//! metrics.

use super::support::{http_get, TestServer, BODY};
use rebound::lmtp::LmtpConfig;

#[test]
fn every_verb() {
    let server = TestServer::start(LmtpConfig::default());
    let mut c = server.client();
    assert!(c.cmd("MAIL FROM:<>").starts_with("503 5.5.1"), "MAIL before LHLO");
    assert!(c.cmd("EHLO client").starts_with("500 5.5.1"));
    let lhlo = c.cmd("LHLO client.example");
    for cap in ["PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "SIZE 52428800"] {
        assert!(lhlo.lines().any(|l| &l[4..] == cap), "LHLO lacks {cap}: {lhlo}");
    }
    assert!(lhlo.lines().all(|l| l.starts_with("250")));
    assert!(c.cmd("NOOP").starts_with("250 2.0.0"));
    assert!(c.cmd("VRFY postmaster").starts_with("252 "));
    assert!(c.cmd("XYZZY").starts_with("500 5.5.1"));
    assert!(c.cmd("RCPT TO:<a@example.test>").starts_with("503 5.5.1"), "RCPT before MAIL");
    assert!(c.cmd("DATA").starts_with("503 5.5.1"), "DATA before MAIL");
    assert!(c.cmd("MAIL FROM:<> BODY=8BITMIME SIZE=100 SMTPUTF8").starts_with("250 2.1.0"));
    assert!(c.cmd("MAIL FROM:<>").starts_with("503 5.5.1"), "nested MAIL");
    assert!(c.cmd("DATA").starts_with("503 5.5.1"), "DATA without recipients");
    assert!(c.cmd("RCPT TO:<jürgen@example.test>").starts_with("250 2.1.5"));
    assert!(c.cmd("RSET").starts_with("250 2.0.0"));
    assert!(c.cmd("RCPT TO:<a@example.test>").starts_with("503 5.5.1"), "RSET ended the transaction");
    assert!(c.cmd("MAIL FROM:<bounce@example.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bounces+x@example.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(BODY);
    assert!(c.cmd(".").starts_with("250 2.0.0"));
    assert!(c.cmd("QUIT").starts_with("221 2.0.0"));
    assert!(c.closed());
    let (sender, rcpts, kind): (String, String, String) = server
        .db()
        .query_row("SELECT envelope_sender, envelope_recipients, kind FROM messages", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(sender, "bounce@example.test");
    assert_eq!(rcpts, r#"["bounces+x@example.test"]"#);
    assert_eq!(kind, "unknown", "a message with no record is still stored");
}

#[test]
fn pipelined_transactions_get_every_reply_in_order() {
    let server = TestServer::start(LmtpConfig::default());
    let mut c = server.client();
    let mut script = b"LHLO client\r\n".to_vec();
    for i in 0..3 {
        script.extend_from_slice(b"MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n");
        script.extend_from_slice(format!("Subject: {i}\r\n\r\nbody\r\n.\r\n").as_bytes());
    }
    script.extend_from_slice(b"QUIT\r\n");
    // One write: everything, data included, arrives before any reply is read.
    c.send(&script);
    let lhlo = c.reply();
    assert!(lhlo.contains("PIPELINING"));
    for _ in 0..3 {
        // MAIL, 3 x RCPT, DATA, then one reply per recipient.
        let r = c.replies(8);
        let codes: Vec<&str> = r.iter().map(|l| &l[..3]).collect();
        assert_eq!(codes, ["250", "250", "250", "250", "354", "250", "250", "250"], "{r:?}");
    }
    assert!(c.reply().starts_with("221"));
    assert_eq!(server.count("messages"), 3);
}

#[test]
fn one_reply_per_recipient_after_data() {
    let server = TestServer::start(LmtpConfig::default());
    let mut c = server.client();
    c.cmd("LHLO client");
    let replies = c.deliver(&["a@x.test", "b@x.test", "c@x.test", "d@x.test"], BODY);
    assert_eq!(replies.len(), 4);
    assert!(replies.iter().all(|r| r.starts_with("250 2.0.0")), "{replies:?}");
    assert!(c.cmd("NOOP").starts_with("250"), "no extra reply was queued");
    let rcpts: String = server.db().query_row("SELECT envelope_recipients FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(rcpts, r#"["a@x.test","b@x.test","c@x.test","d@x.test"]"#);
}

#[test]
fn dot_unstuffing_and_raw_evidence() {
    let server = TestServer::start(LmtpConfig::default());
    let mut c = server.client();
    c.cmd("LHLO client");
    let stuffed = b"Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\r\n";
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<r@x.test>\r\nDATA\r\n");
    c.replies(3);
    c.send(&stuffed[..]);
    assert!(c.reply().starts_with("250"));
    let db = server.db();
    let id: i64 = db.query_row("SELECT id FROM messages", [], |r| r.get(0)).unwrap();
    let m = rebound::store::query::message_by_id(&db, id).unwrap().unwrap();
    let expected: &[u8] = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n";
    assert_eq!(m.raw_encoding, "lz4", "new rows are LZ4");
    assert_eq!(m.raw_bytes().unwrap(), expected);
    assert_eq!(m.size_bytes, expected.len() as i64);
    use sha2::Digest;
    assert_eq!(m.sha256, data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(expected)));
}

#[test]
fn unix_socket_replaces_a_stale_file_and_sets_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lmtp.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // leaves a stale socket file
    let config = LmtpConfig { socket_mode: "0600".into(), ..Default::default() };
    let server = TestServer::start_with(config, Vec::new(), vec![path.clone()]);
    assert_eq!(server.addrs, vec![format!("unix:{}", path.display())]);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert!(line.starts_with("220 "), "{line}");
    std::io::Write::write_all(&mut &s, b"QUIT\r\n").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert!(line.starts_with("221 "), "{line}");
    drop(server);
    assert!(!path.exists(), "socket file removed at shutdown");
}

#[test]
fn metrics_endpoint_serves_prometheus_text_on_loopback_only() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert!(rt.block_on(rebound::metrics::bind("0.0.0.0:0")).is_err(), "non-loopback refused");
    let listener = rt.block_on(rebound::metrics::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let _serving = std::thread::spawn(move || rt.block_on(rebound::metrics::serve(listener)));
    let server = TestServer::start(LmtpConfig::default());
    let mut c = server.client();
    c.cmd("LHLO client");
    c.deliver(&["r@x.test"], BODY);
    // Messages are counted as stored, which with the spool follows the 250.
    assert_eq!(server.count("messages"), 1);
    let text = http_get(&addr.to_string(), "/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for name in ["rebound_messages_total{kind=\"unknown\"}", "rebound_lmtp_replies_total{code=\"250\"}", "rebound_store_commit_seconds_bucket", "rebound_store_batch_jobs_count", "rebound_spool_flush_seconds_bucket", "rebound_spool_backlog_bytes"] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
}
