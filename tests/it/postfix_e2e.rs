//! End to end with a real Postfix: a private instance configured with the recipe in
//! packaging/postfix/ sends its own DSNs for a 550, an expired 450 and a nonexistent
//! domain to the bounce domain's LMTP target, over TCP and over a unix socket.
//! Needs root and the postfix package (.ci/run installs it); in CI (env CI set) a
//! missing Postfix fails the tests, elsewhere they print a notice and skip.

pub(crate) mod harness;
pub(crate) mod server;
mod sink;

use harness::{shared_tempdir, LmtpTargets, Postfix, BOUNCE_DOMAIN};
use harness::{DEFERRED, NO_SUCH_DOMAIN, REJECTED};
use server::{rebound, Rebound};
use std::path::Path;
use std::time::{Duration, Instant};

/// Each case: (return-path id, recipient, the DSN's Status, sent over the unix socket).
const CASES: [(&str, &str, &str, bool); 3] = [
    ("e2e-r550", REJECTED, "5.1.1", false),
    ("e2e-t450", DEFERRED, "4.2.0", false),
    ("e2e-nxdomain", NO_SUCH_DOMAIN, "5.4.4", true),
];

/// The whole run is bounded: Postfix bounces the 550 and the error(8) case at once and
/// expires the 450 after one retry (maximal_queue_lifetime = 1s).
const LIMIT: Duration = Duration::from_secs(90);

/// Checks that the maillog shows each DSN delivered by the recipe's rebound transport to
/// the expected LMTP target.
fn assert_delivered_via(pf: &Postfix, return_path: &str, unix: bool, port: u16, socket: &Path) {
    let lines = pf.lmtp_deliveries(return_path);
    let target = if unix { format!("[{}]", socket.display()) } else { format!("127.0.0.1[127.0.0.1]:{port}") };
    assert!(
        lines.iter().any(|l| l.contains("relay=") && l.contains(&target)),
        "maillog has no delivery of {return_path} to {target}: {lines:?}"
    );
}

#[test]
fn postfix_recipe_delivers_dsns_over_lmtp_tcp_and_unix() {
    if !harness::postfix_available("postfix_recipe_delivers_dsns_over_lmtp_tcp_and_unix") {
        return;
    }
    let tmp = shared_tempdir();
    let socket = tmp.path().join("lmtp.sock");
    let (port, feed) = sink::start(&socket);
    let rp = |id: &str| format!("bounce+{id}@{BOUNCE_DOMAIN}");
    let unix_rcpts: Vec<String> = CASES.iter().filter(|c| c.3).map(|c| rp(c.0)).collect();
    let pf = Postfix::start(
        &tmp.path().join("pf"),
        &LmtpTargets { port, socket: &socket, unix_rcpts: &unix_rcpts },
    );
    for (id, rcpt, _, _) in CASES {
        pf.inject(&rp(id), rcpt);
    }

    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < CASES.len() {
        assert!(start.elapsed() < LIMIT, "only {} DSNs in {LIMIT:?}; maillog:\n{}", got.len(), pf.maillog());
        match feed.recv_timeout(Duration::from_secs(2)) {
            Ok(d) => got.push(d),
            Err(_) => pf.flush(), // hurry the 450 case's retry
        }
    }
    // The sink has the DSNs; Postfix logs each delivery once it has read the 250.
    pf.wait_until(LIMIT, "Postfix to log the LMTP deliveries", || {
        CASES.iter().all(|c| !pf.lmtp_deliveries(&rp(c.0)).is_empty())
    });
    for (id, rcpt, status, unix) in CASES {
        let want = rp(id);
        let d = got.iter().find(|d| d.rcpts == [want.clone()]).unwrap_or_else(|| panic!("no DSN to {want}"));
        assert_eq!(d.mail_from, "", "a DSN has the null return path");
        assert_eq!(d.via, if unix { sink::Via::Unix } else { sink::Via::Tcp }, "{want} came in the wrong way");
        for field in [format!("Final-Recipient: rfc822; {rcpt}"), "Action: failed".into(), format!("Status: {status}")] {
            assert!(d.data.contains(&field), "DSN to {want} lacks {field:?}:\n{}", d.data);
        }
        assert_delivered_via(&pf, &want, unix, port, &socket);
    }
    assert!(pf.maillog().contains("status=expired, returned to sender"), "the 450 case did not expire");
}

/// `rebound verp sign --id ID --domain D`: the signed return path.
fn sign(dir: &Path, db: &Path, id: &str) -> String {
    let out = rebound(dir)
        .args(["verp", "sign", "--id", id, "--domain", BOUNCE_DOMAIN, "--db"])
        .arg(db)
        .output()
        .expect("run rebound verp sign");
    assert!(out.status.success(), "verp sign: {}", String::from_utf8_lossy(&out.stderr));
    let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(addr.ends_with(&format!("@{BOUNCE_DOMAIN}")), "verp sign printed {addr:?}");
    addr
}

#[test]
fn postfix_dsns_reach_rebound_and_set_address_status() {
    if harness::postfix_available("postfix_dsns_reach_rebound_and_set_address_status") {
        dsns_set_address_status(Rebound::with_listeners);
    }
}

/// The same, with serve started as rebound.service/rebound.socket would start it.
#[test]
fn postfix_dsns_reach_socket_activated_rebound() {
    if harness::postfix_available("postfix_dsns_reach_socket_activated_rebound") {
        dsns_set_address_status(Rebound::socket_activated);
    }
}

/// Signs a return path per case, starts serve with `start`, has a private Postfix bounce
/// each case to rebound (the unix-socket case over the socket), and checks the store.
fn dsns_set_address_status(start: fn(&Path, &Path) -> Rebound) {
    let tmp = shared_tempdir();
    let db = tmp.path().join("rebound.db");
    let paths: Vec<String> = CASES.iter().map(|c| sign(tmp.path(), &db, c.0)).collect();
    let mut server = start(tmp.path(), &db);
    let (port, socket) = (server.port, server.socket.clone());
    let unix_rcpts: Vec<String> = CASES.iter().zip(&paths).filter(|(c, _)| c.3).map(|(_, p)| p.clone()).collect();
    let pf = Postfix::start(
        &tmp.path().join("pf"),
        &LmtpTargets { port, socket: &socket, unix_rcpts: &unix_rcpts },
    );
    for ((_, rcpt, _, _), rp) in CASES.iter().zip(&paths) {
        pf.inject(rp, rcpt);
    }
    // An LMTP 250 means on disk: once Postfix logs status=sent, rebound has the message.
    pf.wait_until(LIMIT, "Postfix's DSNs delivered to rebound", || {
        paths.iter().all(|p| !pf.lmtp_deliveries(p).is_empty())
    });
    for ((_, _, _, unix), rp) in CASES.iter().zip(&paths) {
        assert_delivered_via(&pf, rp, *unix, port, &socket);
    }
    // With the intake spool a 250 means on disk and the rows follow: a drained stop
    // stores everything acknowledged.
    assert!(server.stop(), "serve did not exit cleanly: {}", server.log());

    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the store");
    let events = |rcpt: &str| -> Vec<(String, bool, bool)> {
        let mut st = conn
            .prepare("SELECT reason, hard, verified FROM events WHERE recipient = ?1 COLLATE NOCASE")
            .expect("prepare");
        st.query_map([rcpt], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query events")
            .collect::<Result<_, _>>()
            .expect("read events")
    };
    let state = |rcpt: &str| -> Option<String> {
        conn.query_row("SELECT state FROM address_status WHERE address = lower(?1)", [rcpt], |r| r.get(0)).ok()
    };
    let ctx = || format!("{}\nevents: {:?}", server.log(), [REJECTED, DEFERRED, NO_SUCH_DOMAIN].map(events));

    // 550 5.1.1: hard, verified, suppressed.
    let ev = events(REJECTED);
    assert!(ev.iter().any(|e| e.0 == "userunknown" && e.1 && e.2), "550 case: {}", ctx());
    assert_eq!(state(REJECTED).as_deref(), Some("suppressed"), "550 case: {}", ctx());
    // 450 expired: an event, never hard, never suppressed.
    let ev = events(DEFERRED);
    assert!(!ev.is_empty() && ev.iter().all(|e| !e.1), "expired 450 case: {}", ctx());
    assert_ne!(state(DEFERRED).as_deref(), Some("suppressed"), "expired 450 case: {}", ctx());
    // Nonexistent domain (5.4.4, host not found): hostunknown is hard, so suppressed.
    let ev = events(NO_SUCH_DOMAIN);
    assert!(ev.iter().any(|e| e.0 == "hostunknown" && e.1 && e.2), "no-such-domain case: {}", ctx());
    assert_eq!(state(NO_SUCH_DOMAIN).as_deref(), Some("suppressed"), "no-such-domain case: {}", ctx());
}
