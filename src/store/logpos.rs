//! Follower state kept in the store (`log_positions`, `log_pending`), written in the same
//! transaction as the events of the lines read, so a restart neither skips nor repeats.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Where a followed log was read to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPosition {
    /// Device of the file read.
    pub device: u64,
    /// Inode of the file read.
    pub inode: u64,
    /// Bytes consumed (at a line end).
    pub offset: u64,
    /// Hex hash of the file's first line ("" while it has none).
    pub first_line_hash: String,
    /// Lines read so far, all files.
    pub lines: i64,
    /// Results recorded so far.
    pub results: i64,
    /// Lines not understood so far.
    pub unknown_lines: i64,
}

/// The saved position of a log, if any.
pub fn load_position(conn: &Connection, path: &str) -> Result<Option<LogPosition>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT device, inode, offset, first_line_hash, lines, results, unknown_lines
             FROM log_positions WHERE path = ?1",
            [path],
            |r| {
                Ok(LogPosition {
                    device: r.get::<_, i64>(0)? as u64,
                    inode: r.get::<_, i64>(1)? as u64,
                    offset: r.get::<_, i64>(2)? as u64,
                    first_line_hash: r.get(3)?,
                    lines: r.get(4)?,
                    results: r.get(5)?,
                    unknown_lines: r.get(6)?,
                })
            },
        )
        .optional()?)
}

/// Saves the position of a log.
pub fn save_position(tx: &Transaction<'_>, path: &str, p: &LogPosition, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO log_positions (path, device, inode, offset, first_line_hash, lines, results, unknown_lines, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (path) DO UPDATE SET device = ?2, inode = ?3, offset = ?4, first_line_hash = ?5,
             lines = ?6, results = ?7, unknown_lines = ?8, updated_at = ?9",
    )?
    .execute(params![
        path,
        p.device as i64,
        p.inode as i64,
        p.offset as i64,
        p.first_line_hash,
        p.lines,
        p.results,
        p.unknown_lines,
        now
    ])?;
    Ok(())
}

/// The saved queue-id join entries of a log: (queue id, JSON state).
pub fn load_pending(conn: &Connection, path: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT queue_id, state FROM log_pending WHERE path = ?1")?;
    let rows = stmt.query_map([path], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Writes changed join entries (None: the queue id is gone).
pub fn save_pending(tx: &Transaction<'_>, path: &str, changes: &[(String, Option<String>)]) -> Result<(), StoreError> {
    for (queue_id, state) in changes {
        match state {
            Some(json) => tx
                .prepare_cached("INSERT OR REPLACE INTO log_pending (path, queue_id, state) VALUES (?1, ?2, ?3)")?
                .execute(params![path, queue_id, json])?,
            None => tx
                .prepare_cached("DELETE FROM log_pending WHERE path = ?1 AND queue_id = ?2")?
                .execute(params![path, queue_id])?,
        };
    }
    Ok(())
}
