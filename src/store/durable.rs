//! Making commits durable off the writer thread. In WAL mode the writer connection runs
//! with `synchronous=NORMAL`: COMMIT only appends the transaction's frames to the `-wal`
//! file. This thread then calls `fdatasync` on that file and only after it returns are
//! the transaction's waiters answered, so every `Ok` reply is as durable as
//! `synchronous=FULL` would make it. Two things are gained: the writer builds and
//! commits the next transaction while the disk flushes the previous ones (one flush
//! covers every transaction committed before it started), and `fdatasync` skips the
//! inode timestamp journal commit that SQLite's own `fsync` pays on every COMMIT.
//!
//! A failed flush is final: Linux may drop the unwritten pages and report success on a
//! later call, so from then on every waiter is told the write failed (LMTP 451) until
//! the process restarts.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

/// Committed but not yet flushed work: called with the outcome once flushed.
pub(super) type Pending = Box<dyn FnOnce(Result<(), String>, &SyncInfo) + Send>;

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
pub(super) fn wal_path(conn: &rusqlite::Connection) -> Option<PathBuf> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).ok()?;
    let db = conn.path().filter(|p| !p.is_empty())?;
    mode.eq_ignore_ascii_case("wal").then(|| PathBuf::from(format!("{db}-wal")))
}

/// Starts the flushing thread for `wal`; committed work is sent to the returned sender.
pub(super) fn start(wal: PathBuf) -> std::io::Result<(Sender<Pending>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel::<Pending>();
    let handle = std::thread::Builder::new().name("rebound-fsync".into()).spawn(move || sync_loop(wal, rx))?;
    Ok((tx, handle))
}

fn sync_loop(wal: PathBuf, rx: Receiver<Pending>) {
    let mut file = WalFile::new(wal);
    let mut seq = 0u64;
    let mut group: Vec<Pending> = Vec::new();
    while let Ok(first) = rx.recv() {
        group.push(first);
        // Everything already committed rides on the same flush.
        group.extend(rx.try_iter());
        let start = Instant::now();
        let outcome = file.flush();
        seq += 1;
        let info = SyncInfo { seq, transactions: group.len(), sync_time: start.elapsed() };
        for done in group.drain(..) {
            done(outcome.clone(), &info);
        }
    }
}

/// The `-wal` file, flushed with `fdatasync`; a failed flush fails every later one.
struct WalFile {
    path: PathBuf,
    file: Option<File>,
    failed: Option<String>,
}

impl WalFile {
    /// The WAL file at `path` (opened at the first flush).
    fn new(path: PathBuf) -> WalFile {
        WalFile { path, file: None, failed: None }
    }

    /// Makes everything written to the WAL so far durable.
    fn flush(&mut self) -> Result<(), String> {
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
        let same = match self.file.as_ref().map(File::metadata) {
            Some(Ok(held)) => held.ino() == current.ino() && held.dev() == current.dev(),
            _ => false,
        };
        if !same {
            self.file = Some(File::options().read(true).write(true).open(&self.path)?);
        }
        match &self.file {
            Some(f) => f.sync_data(),
            None => Err(std::io::Error::other("WAL file not open")),
        }
    }
}
