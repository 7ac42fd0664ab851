//! Schema migrations: the numbered files in `schema/`, applied in order, the last one
//! applied recorded in `PRAGMA user_version`.

use super::StoreError;
use rusqlite::Connection;

/// The migrations, in order; migration N (1-based) brings user_version to N.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_messages_events", include_str!("../../schema/001_messages_events.sql")),
    ("002_sends_address_status", include_str!("../../schema/002_sends_address_status.sql")),
    ("003_follow", include_str!("../../schema/003_follow.sql")),
    // No file is numbered 004 (a change that did not land); versions count entries.
    ("005_export", include_str!("../../schema/005_export.sql")),
    ("006_partial_event_indexes", include_str!("../../schema/006_partial_event_indexes.sql")),
    ("007_spool", include_str!("../../schema/007_spool.sql")),
];

/// The schema version recorded in the database (0 for a new one).
pub fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Applies every migration the database lacks, all in one transaction (one commit, and
/// a failure leaves the database as it was); refuses a database newer than this binary.
/// Returns the versions applied.
pub fn migrate(conn: &mut Connection) -> Result<Vec<i64>, StoreError> {
    let known = MIGRATIONS.len() as i64;
    let found = schema_version(conn)?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    if found == known {
        return Ok(Vec::new());
    }
    let mut applied = Vec::new();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let found = schema_version(&tx)?;
    for (i, (_name, sql)) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        applied.push(version);
    }
    tx.commit()?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_from_empty_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        let applied = migrate(&mut conn).unwrap();
        assert_eq!(applied.len(), MIGRATIONS.len());
        assert!(migrate(&mut conn).unwrap().is_empty());
        assert_eq!(schema_version(&conn).unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn refuses_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 999, .. }), "{err}");
    }
}
