//! Indexes a bulk load into an empty `events` table builds once at the end instead of
//! row by row. `events_recipient` (status reads) and `events_occurred_at` (report and
//! prune reads) take each event at a random place in their B-trees; no insert looks
//! them up (the duplicate check and the policy use other indexes). Dropped for the
//! load and created again from the rows (a sort), they took ingest's writer thread
//! ~25 % less CPU (corpus x30). Readers meanwhile are correct, only slower. The load
//! holds a lock on `<db>-bulkload` while they are dropped; a load that stops before it
//! rebuilds them leaves them to the next [`super::open`], which creates any that is
//! missing once no load holds that lock (a command run during a load leaves them to it).

use super::StoreError;
use rusqlite::{Connection, TransactionBehavior};
use std::path::PathBuf;

/// Held by a bulk load while the deferred indexes are dropped.
pub struct Deferral {
    _lock: Option<std::fs::File>,
}

/// The lock file of a database's bulk loads (None for an in-memory database).
fn lock_path(conn: &Connection) -> Option<PathBuf> {
    conn.path().filter(|p| !p.is_empty()).map(|p| PathBuf::from(format!("{p}-bulkload")))
}

/// Takes the bulk-load lock: Ok(None) if a load holds it.
fn take_lock(conn: &Connection) -> Result<Option<Option<std::fs::File>>, StoreError> {
    let Some(path) = lock_path(conn) else { return Ok(Some(None)) };
    match super::lockfile::try_exclusive(&path) {
        Ok(Some(f)) => Ok(Some(Some(f))),
        Ok(None) => Ok(None),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

/// The deferred indexes as schema 001 defines them (SQLite stores this text in
/// `sqlite_master`, so a rebuilt index reads as the original).
const EVENT_INDEXES: &[(&str, &str)] = &[
    ("events_recipient", "CREATE INDEX IF NOT EXISTS events_recipient ON events (recipient COLLATE NOCASE, occurred_at)"),
    ("events_occurred_at", "CREATE INDEX IF NOT EXISTS events_occurred_at ON events (occurred_at)"),
];

/// Drops the deferred indexes if `events` is empty (checked under the write lock) and
/// no other load has them dropped; while the returned deferral lives, [`super::open`]
/// leaves them alone, and [`restore`] must follow the load.
pub fn defer_if_empty(conn: &mut Connection) -> Result<Option<Deferral>, StoreError> {
    let Some(lock) = take_lock(conn)? else { return Ok(None) };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let empty = !tx.query_row("SELECT EXISTS (SELECT 1 FROM events)", [], |r| r.get::<_, bool>(0))?;
    if empty {
        for (name, _) in EVENT_INDEXES {
            tx.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
        }
    }
    tx.commit()?;
    Ok(empty.then_some(Deferral { _lock: lock }))
}

/// Creates the deferred indexes a stopped load left dropped; nothing while a load
/// holds them dropped (it rebuilds them itself).
pub fn restore_if_abandoned(conn: &mut Connection) -> Result<(), StoreError> {
    if missing(conn)? == 0 {
        return Ok(());
    }
    match take_lock(conn)? {
        Some(_lock) => restore(conn),
        None => Ok(()),
    }
}

/// Creates whichever deferred index is missing (one transaction; nothing is written
/// when both exist).
pub fn restore(conn: &mut Connection) -> Result<(), StoreError> {
    if missing(conn)? == 0 {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (_, sql) in EVENT_INDEXES {
        tx.execute_batch(sql)?;
    }
    tx.commit()?;
    Ok(())
}

/// How many of the deferred indexes the database lacks.
fn missing(conn: &Connection) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)")?;
    let mut n = 0;
    for (name, _) in EVENT_INDEXES {
        if !stmt.query_row([name], |r| r.get::<_, bool>(0))? {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_sql(conn: &Connection) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn dropped_only_when_empty_and_restored_as_defined() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let before = index_sql(&conn);
        assert!(defer_if_empty(&mut conn).unwrap().is_some());
        assert_eq!(missing(&conn).unwrap(), 2);
        conn.execute(
            "INSERT INTO events (occurred_at, source, recipient, domain, kind, reason, class, fault) VALUES (1, 'ingest', 'a@b.example', 'b.example', 'bounce', 'userunknown', 'invalid_recipient', 'recipient')",
            [],
        )
        .unwrap();
        restore(&mut conn).unwrap();
        assert_eq!(index_sql(&conn), before);
        // A table with rows keeps its indexes.
        assert!(defer_if_empty(&mut conn).unwrap().is_none());
        assert_eq!(index_sql(&conn), before);
    }

    #[test]
    fn open_restores_indexes_a_stopped_load_left_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let mut conn = crate::store::open(&db).unwrap();
        let before = index_sql(&conn);
        let load = defer_if_empty(&mut conn).unwrap().expect("an empty store defers");
        // A command that opens the store during the load leaves the indexes to it.
        let other = crate::store::open(&db).unwrap();
        assert_eq!(missing(&other).unwrap(), 2, "restored under a running load");
        assert!(defer_if_empty(&mut crate::store::open(&db).unwrap()).unwrap().is_none(), "one load defers at a time");
        drop((other, conn, load));
        // The load stopped without rebuilding them: the next open does.
        let conn = crate::store::open(&db).unwrap();
        assert_eq!(index_sql(&conn), before);
    }
}
