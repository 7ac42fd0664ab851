//! Tests: ingest through the library. A run cut short (here by a panic in the progress
//! callback, between two commits) leaves a consistent store, and a second run finishes
//! the job: the store then holds exactly what one uninterrupted run stores.

use rebound::ingest::{ingest, IngestOptions, IngestSummary, LazyClassifier};
use rebound::verp::VerpConfig;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/sisimai")
}

/// An mbox of the first `n` corpus messages, `copies` times (each copy unique).
fn mbox(dir: &Path, n: usize, copies: usize) -> PathBuf {
    let mut names: Vec<_> = std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let mut out = Vec::new();
    for k in 0..copies {
        for p in names.iter().filter(|p| p.extension().is_some_and(|e| e == "eml")).take(n) {
            let raw = std::fs::read(p).unwrap();
            let body = if raw.starts_with(b"From ") { raw.splitn(2, |&b| b == b'\n').nth(1).unwrap_or_default().to_vec() } else { raw };
            out.extend_from_slice(format!("From x@example.org Mon Nov 23 10:00:00 2026\nX-Copy: {k}\n").as_bytes());
            out.extend_from_slice(&body);
            if !body.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
    }
    let path = dir.join("in.mbox");
    std::fs::write(&path, out).unwrap();
    path
}

/// Ingests `input` into the store `db`, its VERP key beside it.
fn run(db: &Path, input: &Path, progress: &mut dyn FnMut(&IngestSummary)) -> IngestSummary {
    let verp = VerpConfig { key_file: db.with_file_name("verp.key"), ..Default::default() };
    let mut conn = rebound::store::open(db).unwrap();
    let classifier = LazyClassifier::new(|| rebound::classify::Classifier::from_config(&Default::default()));
    // Every run into an empty store defers its indexes, however small the input.
    let opts = IngestOptions { workers: 2, batch_messages: 64, defer_indexes_from_bytes: 0, ..Default::default() };
    let summary = ingest(&mut conn, db, &[input.to_path_buf()], &classifier, &verp, &opts, progress).unwrap();
    // Bulk mode is over: the connection is back to durable commits.
    assert_eq!(conn.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0)).unwrap(), 2);
    summary
}

/// What a store holds, minus ids and times that differ between runs.
fn rows(db: &Path) -> (Vec<String>, Vec<String>) {
    let conn = Connection::open(db).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let collect = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let mut v: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        v.sort();
        v
    };
    let messages = collect("SELECT sha256 || '|' || kind || '|' || size_bytes || '|' || length(raw) FROM messages");
    let events = collect(
        "SELECT m.sha256 || '|' || e.kind || '|' || e.recipient || '|' || e.status || '|' || e.reason || '|' || e.rule
         FROM events e JOIN messages m ON m.id = e.message_id",
    );
    (messages, events)
}

#[test]
fn ingest_cut_short_then_rerun_stores_what_one_run_stores() {
    let dir = tempfile::tempdir().unwrap();
    let input = mbox(dir.path(), 60, 5);

    let whole = dir.path().join("whole.db");
    let once = run(&whole, &input, &mut |_| {});
    assert_eq!(once.messages, 300);
    assert!(once.stored > 200, "{once:?}");

    // Interrupted once the second chunk is written, before its commit: the first
    // chunk's transaction is committed, the second rolled back.
    let cut = dir.path().join("cut.db");
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&cut, &input, &mut |s| assert!(s.messages < 200, "interrupted"))
    }));
    assert!(interrupted.is_err());
    let (partial, _) = rows(&cut);
    assert!(!partial.is_empty() && partial.len() < once.stored as usize, "{} stored before the cut", partial.len());

    // The cut run had dropped two events indexes for its load, and stopped before it
    // built them again; the next open puts them back.
    assert_eq!(event_indexes(&cut).len(), event_indexes(&whole).len() - 2);
    let rest = run(&cut, &input, &mut |_| {});
    assert_eq!(rest.stored as usize + partial.len(), once.stored as usize, "{rest:?}");
    assert_eq!(rows(&cut), rows(&whole));
    assert_eq!(event_indexes(&cut), event_indexes(&whole));
}

/// The definitions of the indexes on `events`, sorted.
fn event_indexes(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name").unwrap();
    let v: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    v
}

#[test]
fn a_new_store_is_created_in_wal_mode_with_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let conn = rebound::store::open(&db).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(conn.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0)).unwrap(), 2);
    assert_eq!(rebound::store::schema_version(&conn).unwrap(), rebound::store::MIGRATIONS.len() as i64);
    drop(conn);
    // Reopened (not new any more): nothing to apply, same schema.
    let conn = rebound::store::open(&db).unwrap();
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'events'", [], |r| r.get(0)).unwrap();
    assert_eq!(tables, 1);
}

#[test]
fn stored_raw_bytes_decode_in_the_new_and_the_old_encoding() {
    use rebound::store::event::{insert_message, NewMessage};
    use rebound::store::query::message_by_id;
    let dir = tempfile::tempdir().unwrap();
    let input = mbox(dir.path(), 20, 1);
    let db = dir.path().join("r.db");
    let summary = run(&db, &input, &mut |_| {});
    assert!(summary.stored >= 15, "{summary:?}");

    // A row from before ingest wrote LZ4: deflate, with the column's default.
    let old = b"From: MAILER-DAEMON@mx.example.org\nSubject: old row\n\nbody\n";
    let mut conn = rebound::store::open(&db).unwrap();
    let tx = conn.transaction().unwrap();
    let old_id = insert_message(
        &tx,
        &NewMessage {
            source: "lmtp".into(),
            sha256: rebound::ingest::hex_sha256(old),
            size_bytes: old.len() as i64,
            raw: Some(rebound::store::raw::StoredRaw::deflate(old)),
            ..Default::default()
        },
    )
    .unwrap();
    tx.commit().unwrap();

    let ids: Vec<i64> = conn.prepare("SELECT id FROM messages").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(ids.len() as u64, summary.stored + 1);
    for id in ids {
        let m = message_by_id(&conn, id).unwrap().unwrap();
        assert_eq!(m.raw_encoding, if id == old_id { "deflate" } else { "lz4" }, "message {id}");
        let raw = m.raw_bytes().unwrap_or_else(|| panic!("message {id} does not decode"));
        assert_eq!((raw.len() as i64, rebound::ingest::hex_sha256(&raw)), (m.size_bytes, m.sha256), "message {id}");
    }
    // An encoding this rebound does not know reads as unreadable, not as garbage.
    conn.execute("UPDATE messages SET raw_encoding = 'zstd' WHERE id = ?1", [old_id]).unwrap();
    assert!(message_by_id(&conn, old_id).unwrap().unwrap().raw_bytes().is_none());
}
