//! Making commits durable with `fdatasync` of the WAL. In WAL mode the writer connection
//! runs with `synchronous=NORMAL`: COMMIT only appends the transaction's frames to the
//! `-wal` file. The flusher then calls `WalFile::flush` on that file and only after it
//! returns are the transaction's waiters answered, so every `Ok` reply is as durable as
//! `synchronous=FULL` would make it, with `fdatasync` instead of the `fsync` SQLite pays
//! on every COMMIT (which also journals the inode's timestamps). The flush runs on the
//! writer's flusher thread ([`super::writer`]): while it waits on the disk the writer
//! gathers the next batch, so a flush may cover more than one committed transaction.
//!
//! A failed flush is final: Linux may drop the unwritten pages and report success on a
//! later call, so from then on every waiter is told the write failed (LMTP 451) until
//! the process restarts.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// What one flush covered, for the observer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncInfo {
    /// Sequence number of the flush (1, 2, ...).
    pub seq: u64,
    /// Transactions the flush made durable.
    pub transactions: usize,
    /// How long `fdatasync` took.
    pub sync_time: std::time::Duration,
}

/// The `-wal` file of a connection in WAL mode on a file database, else `None`.
pub(crate) fn wal_path(conn: &rusqlite::Connection) -> Option<PathBuf> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).ok()?;
    let db = conn.path().filter(|p| !p.is_empty())?;
    mode.eq_ignore_ascii_case("wal").then(|| PathBuf::from(format!("{db}-wal")))
}

/// The `-wal` file, flushed with `fdatasync`; a failed flush fails every later one.
pub(super) struct WalFile {
    path: PathBuf,
    file: Option<File>,
    /// Device and inode of the file held, to notice a WAL replaced under us.
    id: (u64, u64),
    failed: Option<String>,
}

impl WalFile {
    /// The WAL file at `path` (opened at the first flush).
    pub(super) fn new(path: PathBuf) -> WalFile {
        WalFile { path, file: None, id: (0, 0), failed: None }
    }

    /// Makes everything written to the WAL so far durable.
    pub(super) fn flush(&mut self) -> Result<(), String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.sync().map_err(|e| {
            let text = format!("fdatasync {}: {e}", self.path.display());
            tracing::error!(error = %text, "WAL flush failed; refusing further writes until restart");
            self.failed = Some(text.clone());
            text
        })
    }

    /// (Re)opens the file when the path names another file than the one held (it is
    /// created on the first write and only replaced when every connection closed, which
    /// the writer's never does while it runs; checked anyway), then syncs it.
    fn sync(&mut self) -> std::io::Result<()> {
        let current = std::fs::metadata(&self.path)?;
        if self.file.is_none() || self.id != (current.dev(), current.ino()) {
            let file = File::options().read(true).write(true).open(&self.path)?;
            let held = file.metadata()?;
            self.id = (held.dev(), held.ino());
            self.file = Some(file);
        }
        match &self.file {
            Some(f) => f.sync_data(),
            None => Err(std::io::Error::other("WAL file not open")),
        }
    }
}
