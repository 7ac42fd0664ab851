//! Bulk durability for ingest: the writer's commits skip the fsync (WAL with
//! `synchronous=NORMAL`, still consistent after a crash or power loss, since SQLite
//! syncs the WAL before each checkpoint), checkpoints run on the store's checkpoint
//! thread ([`crate::store::checkpoint`], as for serve's writer, WAL rewind included)
//! instead of stalling the writer after a commit, and [`BulkWrite::finish`] fsyncs the
//! WAL once at the end, so what ingest reports as stored is on disk. A run cut short
//! loses at most its last transactions, which a rerun stores (ingest is idempotent).

use crate::store::checkpoint::{self, Checkpointer};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// SQLite's default `wal_autocheckpoint` (pages), restored at the end.
const DEFAULT_AUTOCHECKPOINT_PAGES: i64 = 1000;

/// The writer connection in bulk mode, with its checkpoint thread.
pub(super) struct BulkWrite {
    db: PathBuf,
    wal: PathBuf,
    synchronous: i64,
    /// Whether anything was committed (a run that stores nothing syncs nothing).
    commits: u64,
    checkpointer: Option<(Checkpointer, JoinHandle<()>)>,
}

impl BulkWrite {
    /// Puts `conn` (the database at `db`) in bulk mode; a database not in WAL mode
    /// (in memory) is left as it is.
    pub(super) fn begin(conn: &Connection, db: &Path) -> rusqlite::Result<Option<BulkWrite>> {
        let Some(wal) = crate::store::durable::wal_path(conn) else { return Ok(None) };
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Some(BulkWrite { db: db.to_owned(), wal, synchronous, commits: 0, checkpointer: None }))
    }

    /// Called after each commit: lets the checkpoint thread (started by the first
    /// commit) copy what was committed, and rewinds the WAL when it asks.
    pub(super) fn committed(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.commits += 1;
        if self.commits == 1 {
            self.checkpointer = checkpoint::start_bulk(&self.db);
            if self.checkpointer.is_none() {
                // No second connection: the writer checkpoints as before.
                conn.pragma_update(None, "wal_autocheckpoint", DEFAULT_AUTOCHECKPOINT_PAGES)?;
            }
        }
        if let Some((c, _)) = &self.checkpointer {
            c.committed(conn);
        }
        Ok(())
    }

    /// Has the checkpoint thread copy what was committed now, not at its next tick.
    pub(super) fn checkpoint_soon(&self) {
        if let Some((c, _)) = &self.checkpointer {
            c.checkpoint_soon();
        }
    }

    /// Stops the checkpoint thread, restores the connection's settings and makes every
    /// commit durable (one fsync of the WAL).
    pub(super) fn finish(mut self, conn: &Connection) -> Result<(), super::IngestError> {
        self.stop();
        conn.pragma_update(None, "wal_autocheckpoint", DEFAULT_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "synchronous", self.synchronous)?;
        if self.commits == 0 {
            return Ok(());
        }
        // The commits since the last checkpoint are in the WAL, not yet synced; frames
        // checkpointed earlier were synced with the database file by the checkpoint.
        match std::fs::File::open(&self.wal) {
            Ok(f) => f.sync_all().map_err(|error| super::IngestError::Io { path: self.wal.clone(), error }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(super::IngestError::Io { path: self.wal.clone(), error }),
        }
    }

    fn stop(&mut self) {
        // Dropping the checkpointer ends its thread.
        if let Some((c, t)) = self.checkpointer.take() {
            drop(c);
            let _ = t.join();
        }
    }
}

impl Drop for BulkWrite {
    fn drop(&mut self) {
        self.stop();
    }
}
