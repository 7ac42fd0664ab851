//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs inside the
//! COMMIT that crosses 1000 frames: it copies the WAL into the database and syncs both
//! files on the writer thread, stalling every waiting session for milliseconds. The
//! writer therefore turns it off and this thread, with its own connection, copies what
//! was committed (`PRAGMA wal_checkpoint(PASSIVE)`: never blocks the writer) a few
//! times a second.
//!
//! A passive checkpoint racing a busy writer never sees the WAL fully copied, and only
//! then may SQLite start the WAL over; so once the WAL has grown past a bound the
//! writer is asked to run one checkpoint itself between two batches (little is left to
//! copy by then) and the next transaction rewinds the WAL.

use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the checkpointer looks for committed work. Each checkpoint syncs both
/// files and copies every page changed since the last, once: the hot pages (the right
/// edge of each index) are copied once per checkpoint however often they changed, so
/// fewer checkpoints cost less (at 50 ms this thread took 10-18 us of CPU per LMTP
/// message at 8 sessions, at 200 ms 5-8 us).
const EVERY: Duration = Duration::from_millis(200);
/// WAL frames (pages) past which the writer rewinds the WAL (~16 MiB at 4 KiB pages).
/// Once rewound, commits overwrite the file instead of growing it, and `fdatasync` of
/// a file whose size did not change skips the inode write (about a quarter less CPU per
/// flush on the build VM's ext4).
const REWIND_FRAMES: i64 = 4_096;

/// What the writer and the checkpointer share.
#[derive(Default)]
pub(crate) struct CheckpointState {
    /// Transactions the writer committed (the checkpointer runs only when it moved).
    pub commits: AtomicU64,
    /// Set by the checkpointer when the WAL should be rewound by the writer.
    pub rewind: AtomicBool,
}

/// The running checkpointer: dropping it stops the thread (join it after).
pub(crate) struct Checkpointer {
    /// Shared with the writer.
    pub state: Arc<CheckpointState>,
    /// A message wakes the thread to checkpoint at once; dropped (with the writer) to
    /// stop it.
    pub wake: Sender<()>,
}

/// Starts the checkpointer on a second connection to the writer's database (None when
/// it cannot be opened: SQLite's automatic checkpoints then stay on).
pub(crate) fn start(db: &Path) -> Option<(Checkpointer, std::thread::JoinHandle<()>)> {
    start_every(db, EVERY, REWIND_FRAMES)
}

/// WAL frames past which a bulk writer rewinds the WAL (~64 MiB). A rewind makes the
/// writer copy its last transaction itself, since only a WAL copied to its end starts
/// over: with ingest's transactions of several MiB, a stall every 16 MiB.
const BULK_REWIND_FRAMES: i64 = 16_384;

/// [`start`] for a bulk writer (ingest): rewinds the WAL less often.
pub(crate) fn start_bulk(db: &Path) -> Option<(Checkpointer, std::thread::JoinHandle<()>)> {
    start_every(db, EVERY, BULK_REWIND_FRAMES)
}

fn start_every(db: &Path, every: Duration, rewind_frames: i64) -> Option<(Checkpointer, std::thread::JoinHandle<()>)> {
    let conn = match rusqlite::Connection::open(db).map_err(super::StoreError::from).and_then(|c| {
        super::configure(&c)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint connection failed; checkpoints stay in the writer's commits");
            return None;
        }
    };
    let state = Arc::new(CheckpointState::default());
    let (stop, rx) = std::sync::mpsc::channel::<()>();
    let shared = state.clone();
    let handle = std::thread::Builder::new()
        .name("rebound-checkpoint".into())
        .spawn(move || run(conn, shared, rx, every, rewind_frames))
        .map_err(|e| tracing::warn!(error = %e, "checkpoint thread not started"))
        .ok()?;
    Some((Checkpointer { state, wake: stop }, handle))
}

impl Checkpointer {
    /// Called by the writer after each commit, between two transactions: counts the
    /// commit and, when the checkpointer asked for it, rewinds the WAL.
    pub(crate) fn committed(&self, conn: &Connection) {
        self.state.commits.fetch_add(1, Ordering::Relaxed);
        if self.state.rewind.swap(false, Ordering::Relaxed) {
            rewind(conn);
        }
    }

    /// Asks for a checkpoint now rather than at the next tick.
    pub(crate) fn checkpoint_soon(&self) {
        let _ = self.wake.send(());
    }
}

/// Checkpoints everything on the writer's connection between batches, so the next
/// transaction starts the WAL over.
fn rewind(conn: &Connection) {
    let start = Instant::now();
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
        Ok(frames) => tracing::debug!(frames, ms = start.elapsed().as_millis() as u64, "WAL checkpointed for rewind"),
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
    }
}

fn run(conn: rusqlite::Connection, state: Arc<CheckpointState>, stop: Receiver<()>, every: Duration, rewind_frames: i64) {
    let mut seen = 0;
    loop {
        match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) | Ok(()) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let commits = state.commits.load(Ordering::Relaxed);
        if commits == seen {
            continue;
        }
        seen = commits;
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))) {
            Ok((log, _copied)) if log > rewind_frames => state.rewind.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_copies_the_commits_before_the_next_tick() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let conn = crate::store::open(&db).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB); INSERT INTO t VALUES (zeroblob(200000));").unwrap();
        let before = std::fs::metadata(&db).unwrap().len();
        let (c, thread) = start_every(&db, Duration::from_secs(3600), REWIND_FRAMES).unwrap();
        c.committed(&conn);
        c.checkpoint_soon();
        // The wake is received before the disconnection: joining waits for its checkpoint.
        drop(c);
        thread.join().unwrap();
        let after = std::fs::metadata(&db).unwrap().len();
        assert!(after >= before + 200_000, "{before} -> {after}: the blob's pages are in the database file");
    }
}
