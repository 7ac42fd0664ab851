//! Tests: hostile clients against the real `rebound serve` binary. Each attack gets
//! its reply code, the server's peak RSS stays bounded, and a normal client is served
//! while the attack is in progress.

use crate::crash::proc::{fresh_dir, ServeProc};
use crate::lmtp::support::{Client, BODY};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// A normal client: LHLO and one delivery, all 250.
fn normal_delivery(addr: &str, rcpt: &str) {
    let mut c = Client::connect(addr);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("LHLO normal.test").starts_with("250"));
    for r in c.deliver(&[rcpt], BODY) {
        assert!(r.starts_with("250 "), "{r}");
    }
    assert!(c.cmd("QUIT").starts_with("221"));
}

/// A client after LHLO.
fn greeted(addr: &str) -> Client {
    let mut c = Client::connect(addr);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("LHLO hostile.test").starts_with("250"));
    c
}

/// Writes `total` bytes of `fill` in 64 KiB chunks from a thread (stops on error).
fn flood(addr: &str, prefix: &[u8], total: usize, fill: u8) -> (Client, std::thread::JoinHandle<usize>) {
    let c = greeted(addr);
    let mut w: TcpStream = c.stream().try_clone().unwrap();
    let prefix = prefix.to_vec();
    let t = std::thread::spawn(move || {
        if w.write_all(&prefix).is_err() {
            return 0;
        }
        let chunk = vec![fill; 64 << 10];
        let mut sent = 0;
        while sent < total {
            if w.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    (c, t)
}

const MIB: u64 = 1024;

#[test]
fn slowloris_times_out_and_trickler_completes() {
    let (dir, db) = fresh_dir();
    let server = ServeProc::start(dir.path(), &db, "[lmtp]\nidle_timeout_secs = 2\n");
    // A client that stops mid-command is cut off with 421 4.4.2.
    let mut stalled = Client::connect(&server.addr);
    assert!(stalled.reply().starts_with("220 "));
    stalled.send(b"LHL");
    normal_delivery(&server.addr, "normal-1@bounces.example.test");
    let r = stalled.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(stalled.closed());
    // A client sending one byte every 200 ms (well within the idle timeout) completes;
    // the pauses are the client's speed, not synchronisation.
    let mut slow = Client::connect(&server.addr);
    assert!(slow.reply().starts_with("220 "));
    for b in b"LHLO slow.test\r\n" {
        slow.send(&[*b]);
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = slow.reply();
    assert!(r.starts_with("250"), "{r}");
}

#[test]
fn endless_line_is_refused_without_buffering() {
    let (dir, db) = fresh_dir();
    let server = ServeProc::start(dir.path(), &db, "");
    // 64 MiB without a line end, far over max_line_bytes (64 KiB).
    let (mut c, t) = flood(&server.addr, b"MAIL FROM:<", 64 << 20, b'a');
    let r = c.reply();
    assert!(r.starts_with("500 5.5.2"), "{r}");
    normal_delivery(&server.addr, "normal-2@bounces.example.test");
    drop(c);
    t.join().unwrap();
    let hwm = server.vm_hwm_kib();
    assert!(hwm < 128 * MIB, "server peak RSS {hwm} KiB");
}

#[test]
fn ten_thousand_recipients_get_452_past_the_limit() {
    let (dir, db) = fresh_dir();
    let server = ServeProc::start(dir.path(), &db, "");
    let mut c = greeted(&server.addr);
    let mut w = c.stream().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut cmds = b"MAIL FROM:<>\r\n".to_vec();
        for i in 0..10_000 {
            cmds.extend_from_slice(format!("RCPT TO:<r{i}@bounces.example.test>\r\n").as_bytes());
        }
        w.write_all(&cmds).unwrap();
    });
    assert!(c.reply().starts_with("250"));
    let replies = c.replies(10_000);
    writer.join().unwrap();
    let accepted = replies.iter().take_while(|r| r.starts_with("250 ")).count();
    assert_eq!(accepted, 1000, "default max_recipients");
    assert!(replies[accepted..].iter().all(|r| r.starts_with("452 4.5.3")), "{:?}", &replies[accepted]);
    normal_delivery(&server.addr, "normal-3@bounces.example.test");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(BODY);
    c.send(b".\r\n");
    let done = c.replies(accepted);
    assert!(done.iter().all(|r| r.starts_with("250 ")), "{:?}", done.first());
}

#[test]
fn bare_lf_and_nul_bytes_have_defined_replies() {
    let (dir, db) = fresh_dir();
    let server = ServeProc::start(dir.path(), &db, "[lmtp]\nspool = false\n"); // read back at once
    let mut c = Client::connect(&server.addr);
    assert!(c.reply().starts_with("220 "));
    // Bare LF line ends are accepted for commands and DATA.
    c.send(b"LHLO lf.test\n");
    assert!(c.reply().starts_with("250"));
    c.send(b"MAIL FROM:<>\nRCPT TO:<lf@bounces.example.test>\nDATA\n");
    let r = c.replies(3);
    assert!(r[0].starts_with("250") && r[1].starts_with("250") && r[2].starts_with("354"), "{r:?}");
    c.send(b"Subject: lf\n\nbody with a NUL \0 byte\n.\n");
    let r = c.reply();
    assert!(r.starts_with("250 "), "{r}");
    // A NUL in a command is a syntax error, not a crash; the session goes on.
    c.send(b"MAIL FROM:<a\0b@example.test>\r\n");
    let r = c.reply();
    assert!(r.starts_with("5"), "{r}");
    c.send(b"NOOP\r\n");
    assert!(c.reply().starts_with("250"));
    normal_delivery(&server.addr, "normal-4@bounces.example.test");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM messages WHERE envelope_recipients LIKE '%lf@bounces.example.test%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the bare-LF message is stored");
}

#[test]
fn hundred_megabyte_data_is_refused_in_bounded_memory() {
    let (dir, db) = fresh_dir();
    let server = ServeProc::start(dir.path(), &db, "");
    // 100 MiB of 100-byte lines, over the default max_message_bytes (50 MiB).
    let c = greeted(&server.addr);
    let mut w = c.stream().try_clone().unwrap();
    let mut c = c;
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<big@bounces.example.test>\r\nDATA\r\n");
    let r = c.replies(3);
    assert!(r[2].starts_with("354"), "{r:?}");
    let t = std::thread::spawn(move || {
        let mut line = vec![b'x'; 98];
        line.extend_from_slice(b"\r\n");
        let chunk: Vec<u8> = line.iter().copied().cycle().take(100 * 655).collect();
        for _ in 0..(100 << 20) / chunk.len() {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = w.write_all(b".\r\n");
    });
    normal_delivery(&server.addr, "normal-5@bounces.example.test");
    let r = c.reply();
    assert!(r.starts_with("552 5.3.4"), "{r}");
    t.join().unwrap();
    let hwm = server.vm_hwm_kib();
    assert!(hwm < 256 * MIB, "server peak RSS {hwm} KiB");
}

/// Raises this process's open-file limit to `n` (children inherit it).
fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n && lim.rlim_max >= n {
            lim.rlim_cur = n;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

#[test]
fn thousand_idle_connections_over_the_limit_get_421() {
    raise_nofile(4096);
    let (dir, db) = fresh_dir();
    let server = ServeProc::start(dir.path(), &db, "[lmtp]\nmax_connections = 900\n");
    // 899 idle connections are greeted; the 900th slot is the normal client's.
    let mut idle: Vec<Client> = (0..899).map(|_| Client::connect(&server.addr)).collect();
    for c in &mut idle {
        assert!(c.reply().starts_with("220 "));
    }
    let mut normal = Client::connect(&server.addr);
    assert!(normal.reply().starts_with("220 "));
    // 101 more (1,000 idle in all) are over the limit: 421 4.3.2 and closed.
    for _ in 0..101 {
        let mut c = Client::connect(&server.addr);
        let r = c.reply();
        assert!(r.starts_with("421 4.3.2"), "{r}");
        assert!(c.closed());
    }
    assert!(normal.cmd("LHLO normal.test").starts_with("250"));
    for r in normal.deliver(&["normal-6@bounces.example.test"], BODY) {
        assert!(r.starts_with("250 "), "{r}");
    }
    let hwm = server.vm_hwm_kib();
    assert!(hwm < 128 * MIB, "server peak RSS {hwm} KiB with 900 sessions");
    drop(idle);
}

#[test]
fn a_store_locked_by_another_process_costs_disk_not_memory() {
    let (dir, db) = fresh_dir();
    let mut server = ServeProc::start(dir.path(), &db, "[lmtp]\nspool_memory_bytes = 1048576\n");
    // Another process's write transaction: the store takes nothing while it is open.
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    // 800 messages of 50 KB (40 MB, under the 64 MiB backlog): all acknowledged.
    let line = format!("{}\r\n", "y".repeat(98));
    let body = format!("Subject: lagging store\r\n\r\n{}", line.repeat(500));
    let mut c = greeted(&server.addr);
    for i in 0..800 {
        for r in c.deliver(&[&format!("lag-{i}@bounces.example.test")], body.as_bytes()) {
            assert!(r.starts_with("250 "), "message {i}: {r}");
        }
    }
    let hwm = server.vm_hwm_kib();
    assert!(hwm < 40 * MIB, "server peak RSS {hwm} KiB with 40 MB waiting for the store");
    // Killed with all of it waiting: the next start stores it, a spool file at a time.
    server.kill();
    drop(c);
    lock.execute_batch("COMMIT").unwrap();
    let mut server = ServeProc::start(dir.path(), &db, "");
    assert_eq!(server.recovered, 800);
    let hwm = server.vm_hwm_kib();
    assert!(hwm < 72 * MIB, "restart peak RSS {hwm} KiB storing 40 MB from the spool");
    assert!(server.stop(), "serve did not exit cleanly on SIGTERM");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 800, "every acknowledged message stored once the lock is gone");
}
