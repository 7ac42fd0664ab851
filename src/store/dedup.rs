//! One failure, two witnesses: the MTA's log line (source `log`) and the MTA's own DSN
//! (LMTP, milter, ingest) report the same result. The second one to arrive is marked
//! `duplicate_of` the first, so it changes no address status and counts once.

use super::event::NewEvent;
use super::StoreError;
use rusqlite::{params, Transaction};

// The duplicate check's SQL, spelled out per key column and side (no string is built
// per event).
macro_rules! by_queue_id {
    () => {
        "SELECT id FROM events WHERE queue_id = ?1 AND queue_id <> '' AND recipient = ?2 COLLATE NOCASE AND "
    };
}
macro_rules! by_original {
    () => {
        "SELECT id FROM events WHERE original_message_id = ?1 AND original_message_id <> '' AND recipient = ?2 COLLATE NOCASE AND "
    };
}
macro_rules! rest {
    () => {
        " AND id <> ?3 AND kind = ?4 AND duplicate_of IS NULL"
    };
}

/// Marks event `id` as a duplicate of an earlier event from the other side (log vs
/// message) about the same message (queue id or original Message-ID), recipient and
/// kind; true if it is one.
pub fn is_duplicate(tx: &Transaction<'_>, id: i64, e: &NewEvent) -> Result<bool, StoreError> {
    if e.recipient.is_empty() || !matches!(e.kind.as_str(), "bounce" | "delay" | "delivered") {
        return Ok(false);
    }
    let is_log = e.source == "log";
    let mut first = None;
    for (column, key) in [("queue_id", &e.queue_id), ("original_message_id", &e.original_message_id)] {
        if key.is_empty() || first.is_some() {
            continue;
        }
        // Repeated log lines (each retry of a deferral) are separate attempts, so only an
        // event from the other side, not itself a duplicate, counts as the first witness.
        // The source test is written so the (key, recipient, source) index answers it:
        // a stream of DSNs for one original must not rescan all its earlier events.
        // The earliest is taken here rather than with ORDER BY id LIMIT 1: with that
        // clause SQLite marks the statement to be re-planned whenever a parameter is
        // rebound, and the statement cache rebinds on every use, so each call re-parsed
        // the SQL (a tenth of ingest's CPU). Matches are few (retries of one message).
        // `{column} <> ''` lets SQLite use the partial index (schema 006).
        let sql = match (column, is_log) {
            ("queue_id", true) => concat!(by_queue_id!(), "source IN ('lmtp', 'milter', 'ingest')", rest!()),
            ("queue_id", false) => concat!(by_queue_id!(), "source = 'log'", rest!()),
            (_, true) => concat!(by_original!(), "source IN ('lmtp', 'milter', 'ingest')", rest!()),
            (_, false) => concat!(by_original!(), "source = 'log'", rest!()),
        };
        let mut stmt = tx.prepare_cached(sql)?;
        let mut rows = stmt.query(params![key, e.recipient, id, e.kind])?;
        while let Some(r) = rows.next()? {
            let found: i64 = r.get(0)?;
            first = Some(first.map_or(found, |f: i64| f.min(found)));
        }
    }
    let Some(first) = first else { return Ok(false) };
    tx.prepare_cached("UPDATE events SET duplicate_of = ?1 WHERE id = ?2")?.execute(params![first, id])?;
    tracing::debug!(event = id, duplicate_of = first, "same result already recorded from the other source");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::insert_event;

    fn ev(source: &str, kind: &str, queue_id: &str, mid: &str) -> NewEvent {
        NewEvent {
            source: source.into(),
            recipient: "User1@remote.example.test".into(),
            kind: kind.into(),
            queue_id: queue_id.into(),
            original_message_id: mid.into(),
            reason: "userunknown".into(),
            class: "invalid_recipient".into(),
            fault: "recipient".into(),
            ..Default::default()
        }
    }

    fn dup_of(tx: &Transaction<'_>, id: i64) -> Option<i64> {
        tx.query_row("SELECT duplicate_of FROM events WHERE id = ?1", [id], |r| r.get(0)).unwrap()
    }

    #[test]
    fn log_then_dsn_and_dsn_then_log() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        let log = insert_event(&tx, None, &ev("log", "bounce", "1593898E0AC", "m1@app")).unwrap();
        let dsn = insert_event(&tx, None, &ev("lmtp", "bounce", "", "m1@app")).unwrap();
        assert_eq!(dup_of(&tx, log), None);
        assert_eq!(dup_of(&tx, dsn), Some(log));
        // DSN first, by queue id only.
        let dsn2 = insert_event(&tx, None, &ev("lmtp", "bounce", "AAAAA2", "")).unwrap();
        let log2 = insert_event(&tx, None, &ev("log", "bounce", "AAAAA2", "m2@app")).unwrap();
        assert_eq!((dup_of(&tx, dsn2), dup_of(&tx, log2)), (None, Some(dsn2)));
        // Other kind, other message, or the same side again: not duplicates.
        let delay = insert_event(&tx, None, &ev("lmtp", "delay", "", "m1@app")).unwrap();
        let other = insert_event(&tx, None, &ev("lmtp", "bounce", "", "m9@app")).unwrap();
        let retry1 = insert_event(&tx, None, &ev("log", "delay", "BBBBB3", "")).unwrap();
        let retry2 = insert_event(&tx, None, &ev("log", "delay", "BBBBB3", "")).unwrap();
        for id in [delay, other, retry1, retry2] {
            assert_eq!(dup_of(&tx, id), None, "event {id}");
        }
    }

    #[test]
    fn reports_count_a_failure_seen_twice_once() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        insert_event(&tx, None, &ev("log", "bounce", "1593898E0AC", "m1@app")).unwrap();
        insert_event(&tx, None, &ev("lmtp", "bounce", "", "m1@app")).unwrap();
        let rows = crate::store::query::event_aggregates(&tx, i64::MIN, i64::MAX).unwrap();
        assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), 1);
    }
}
