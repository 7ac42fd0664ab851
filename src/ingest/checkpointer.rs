//! Bulk durability for ingest: the writer's commits skip the fsync (WAL with
//! `synchronous=NORMAL`, still consistent after a crash or power loss, since SQLite
//! syncs the WAL before each checkpoint), checkpoints run on a thread of their own
//! instead of stalling the writer after a commit, and [`BulkWrite::finish`] fsyncs the
//! WAL once at the end, so what ingest reports as stored is on disk. A run cut short
//! loses at most its last transactions, which a rerun stores (ingest is idempotent).

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
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
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BulkWrite {
    /// Puts `conn` (the database at `db`) in bulk mode; a database not in WAL mode
    /// (in memory) is left as it is.
    pub(super) fn begin(conn: &Connection, db: &Path) -> rusqlite::Result<Option<BulkWrite>> {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(None);
        }
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Some(BulkWrite { db: db.to_owned(), wal: wal.into(), synchronous, commits: 0, wake: None, thread: None }))
    }

    /// Called after each commit: lets the checkpoint thread (started by the first
    /// commit) copy what was committed.
    pub(super) fn committed(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.commits += 1;
        if self.commits == 1 {
            match checkpointer(&self.db) {
                Some((w, t)) => (self.wake, self.thread) = (Some(w), Some(t)),
                // No second connection: the writer checkpoints as before.
                None => conn.pragma_update(None, "wal_autocheckpoint", DEFAULT_AUTOCHECKPOINT_PAGES)?,
            }
        }
        if let Some(w) = &self.wake {
            // Full: a checkpoint is already due, which will take these pages too.
            let _ = w.try_send(());
        }
        Ok(())
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
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BulkWrite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A thread with its own connection that runs a passive checkpoint (never waits for
/// readers or the writer) each time it is woken; it ends when the sender is dropped.
fn checkpointer(db: &Path) -> Option<(SyncSender<()>, JoinHandle<()>)> {
    let conn = Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).ok()?;
    let (wake, rx) = sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("ingest-checkpoint".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                // Busy (another checkpoint, e.g. serve's) or failed: the next wake, or
                // the last connection's close, checkpoints instead.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "ingest checkpoint");
                }
            }
        })
        .ok()?;
    Some((wake, thread))
}
