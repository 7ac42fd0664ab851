//! The intake spool: a write-ahead log of accepted LMTP transactions in front of the
//! store. A session's message is appended here and made durable (one synchronous write
//! shared by every message that arrived meanwhile) before its 250; the applier then
//! parses it and writes its rows to the store in large batches, in spool order, off
//! the session's path, exactly as a restart would from the segment files. A
//! store that is slow, busy or failing no longer holds up the MTA, and a crash loses
//! nothing acknowledged: at the next start [`recover`] finds every record the store
//! has not applied, and the caller applies them ([`Recovered::replay`]) before serving.
//!
//! - `record`: the framed, checksummed record format (pure).
//! - `segment`: the directory, its lock and its zero-filled segment files.
//! - `direct`: durable appends to a segment that bypass the page cache.
//! - `flush`: the flusher thread (one durable write per group, answers).
//! - `apply`: the applier thread (ordered batches to the store).
//! - `spill`: records the applier reads back from disk while much waits for the store.
//! - `threads`: starting and closing them.
//! - `priority`: the CPU priority of the threads that store (idle while they keep up).

mod apply;
mod direct;
mod flush;
mod priority;
pub mod record;
pub mod segment;
mod spill;
mod threads;

#[cfg(test)]
mod tests;

pub use record::Record;
pub use segment::dir_for;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::oneshot;

/// Why a message was not spooled (LMTP answers 451 4.3.0).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpoolError {
    /// Writing or syncing the spool failed.
    #[error("spool write failed: {0}")]
    Failed(String),
    /// Too much is waiting for the store: the MTA should retry later.
    #[error("spool backlog full ({0} bytes waiting for the store)")]
    Backlog(usize),
    /// The spool is shutting down.
    #[error("spool closed")]
    Closed,
    /// The spool directory could not be opened, locked or read.
    #[error("spool {path}: {source}")]
    Open {
        /// The spool directory.
        path: PathBuf,
        /// The I/O error behind it (in an `Arc` so that the error stays `Clone`).
        source: Arc<std::io::Error>,
    },
}

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// Message bytes that may wait for the store before new messages get 451.
    pub max_backlog_bytes: usize,
    /// Payload bytes the applier may hold in memory; groups made durable beyond it are
    /// read back from the segment files when their turn comes (a store that falls
    /// behind costs disk, not memory). At 32 sessions over a unix socket the backlog
    /// reached 32 MB, peak RSS 68-75 MiB, when all of it was held.
    pub max_held_bytes: usize,
    /// Most records the applier hands the store in one batch (all of them are parsed
    /// and held at once: 1,024 took peak RSS at 32 sessions to 45-50 MiB, 256 to 35-38,
    /// at the same rate).
    pub max_apply_batch: usize,
    /// Most payload bytes in one batch (a batch holds at least one record): without it,
    /// 256 messages of 50 KB would be parsed and held together.
    pub max_apply_bytes: usize,
    /// After close, how long a failing store is retried before the rest is left to
    /// the next start.
    pub close_patience: std::time::Duration,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            max_backlog_bytes: 64 << 20,
            max_held_bytes: 8 << 20,
            max_apply_batch: 256,
            max_apply_bytes: 4 << 20,
            close_patience: std::time::Duration::from_secs(30),
        }
    }
}

/// Running totals, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpoolStats {
    /// Durable writes (one per group of records).
    pub flushes: u64,
    /// Records made durable.
    pub records: u64,
    /// Time spent in those writes, microseconds.
    pub flush_micros: u64,
    /// True if the last write went to the disk directly (`O_DIRECT | O_DSYNC`), false if
    /// through the page cache and `fdatasync`.
    pub direct: bool,
    /// Batches the store applied.
    pub applies: u64,
    /// Records applied to the store.
    pub applied_records: u64,
    /// Records handed to the applier on disk rather than in memory (read back).
    pub spilled_records: u64,
}

/// What [`recover`] found: how many records the store lacks, and the locked directory.
pub struct Recovered {
    dir: PathBuf,
    lock: File,
    segments: Vec<u64>,
    next_seq: u64,
    /// The store's watermark: records up to it are stored.
    applied: u64,
    pending: usize,
}

/// Locks the spool at `dir` and counts the records with a sequence number above
/// `applied` (the store's watermark); [`Recovered::replay`] hands them over.
pub fn recover(dir: &Path, applied: u64) -> Result<Recovered, SpoolError> {
    let lock = segment::lock(dir).map_err(|e| open_error(dir, e))?;
    let segments = segment::list(dir).map_err(|e| open_error(dir, e))?;
    let (mut pending, mut last) = (0, applied);
    let mut bytes = segment_buffer(dir, &segments);
    for &n in &segments {
        read_segment(dir, n, &mut bytes)?;
        for r in record::Records::new(&bytes) {
            last = last.max(r.seq);
            pending += usize::from(r.seq > applied);
        }
    }
    Ok(Recovered {
        dir: dir.to_owned(),
        lock,
        segments,
        next_seq: last + 1,
        applied,
        pending,
    })
}

/// A buffer that holds the largest of `segments` (one allocation for all of them).
fn segment_buffer(dir: &Path, segments: &[u64]) -> Vec<u8> {
    let largest = segments.iter().filter_map(|&n| std::fs::metadata(segment::path(dir, n)).ok()).map(|m| m.len()).max();
    Vec::with_capacity(largest.unwrap_or(0) as usize)
}

/// Reads segment `n` into `buf`, reusing its memory: the allocator keeps freed blocks of
/// this size for a while, and a fresh one per segment took a restart from 55 to 128 MiB.
fn read_segment(dir: &Path, n: u64, buf: &mut Vec<u8>) -> Result<(), SpoolError> {
    use std::io::Read;
    buf.clear();
    std::fs::File::open(segment::path(dir, n))
        .and_then(|mut f| f.read_to_end(buf))
        .map(drop)
        .map_err(|e| open_error(dir, e))
}

fn open_error(dir: &Path, source: std::io::Error) -> SpoolError {
    SpoolError::Open {
        path: dir.to_owned(),
        source: Arc::new(source),
    }
}

impl Recovered {
    /// Records the store lacks.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Hands the records the store lacks to `apply`, in order, in batches of at most
    /// `max_records` and `max_bytes` of messages (at least one record), reading one
    /// segment at a time (memory: a segment and a batch, not the whole backlog).
    pub fn replay<E: From<SpoolError>>(
        &self,
        max_records: usize,
        max_bytes: usize,
        mut apply: impl FnMut(&[Record]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut out: Vec<Record> = Vec::new();
        let mut held = 0;
        let mut last = self.applied;
        let mut bytes = segment_buffer(&self.dir, &self.segments);
        for &n in &self.segments {
            read_segment(&self.dir, n, &mut bytes)?;
            // Segments are numbered in the order they were written: later ones hold
            // later records. Skipping what is not past `last` keeps each stored once.
            for r in record::Records::new(&bytes) {
                if r.seq <= last {
                    continue;
                }
                last = r.seq;
                // A full batch goes before the record that would not fit in it.
                if !out.is_empty() && (out.len() >= max_records || held + r.message.len() > max_bytes) {
                    apply(&out)?;
                    (out, held) = (Vec::new(), 0);
                }
                held += r.message.len();
                out.push(r);
            }
        }
        if !out.is_empty() {
            apply(&out)?;
        }
        Ok(())
    }

    /// Starts the spool once the recovered records are durably applied: deletes the old
    /// segments and starts the writer and applier threads. `apply(batch, flush)` writes
    /// a batch to the store (with the watermark; it may be empty) and returns once it
    /// is committed, and with `flush` once it and every earlier commit is durable; on
    /// an error the same batch is offered again after a pause.
    pub fn start<A>(self, options: SpoolOptions, apply: A) -> Result<(Spool, SpoolThreads), SpoolError>
    where
        A: FnMut(&[Record], bool) -> Result<(), String> + Send + 'static,
    {
        let err = |source| open_error(&self.dir, source);
        for &n in &self.segments {
            segment::remove(&self.dir, n).map_err(err)?;
        }
        let number = self.segments.last().map_or(1, |n| n + 1);
        let first = segment::Segment::create(&self.dir, number, segment::FIRST_SEGMENT_BYTES)
            .map_err(err)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Vec::new(),
                closed: false,
                flusher_waits: false,
            }),
            wake: Condvar::new(),
            backlog_bytes: AtomicUsize::new(0),
            held_bytes: AtomicUsize::new(0),
            max_backlog_bytes: options.max_backlog_bytes,
            applied: AtomicU64::new(self.next_seq - 1),
            stats: Mutex::new(SpoolStats::default()),
            stored: (Mutex::new(()), Condvar::new()),
            priority: priority::StorePriority::new(),
        });
        let threads = threads::spawn(
            shared.clone(),
            self.dir.clone(),
            self.lock,
            first,
            self.next_seq,
            options,
            apply,
        )
        .map_err(err)?;
        Ok((Spool { shared }, threads))
    }
}

/// A cloneable handle that sessions append to.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Payload bytes accepted and not yet applied to the store.
    backlog_bytes: AtomicUsize,
    /// Of those, payload bytes handed to the applier in memory.
    held_bytes: AtomicUsize,
    max_backlog_bytes: usize,
    /// Highest sequence number the store holds durably (all below it too).
    applied: AtomicU64,
    stats: Mutex<SpoolStats>,
    /// Signalled after each batch the applier stored (for [`Spool::wait_applied`]).
    stored: (Mutex<()>, Condvar),
    /// The CPU priority of the applier and the store's writer.
    priority: priority::StorePriority,
}

impl Shared {
    /// Takes `bytes` off the backlog (stored, or refused) and wakes [`Spool::wait_applied`].
    fn settle(&self, bytes: usize) {
        {
            let _guard = self.stored.0.lock().unwrap_or_else(|e| e.into_inner());
            self.backlog_bytes.fetch_sub(bytes, Ordering::SeqCst);
        }
        self.stored.1.notify_all();
    }

    /// Publishes the backlog to the metrics gauge; returns it.
    fn publish_backlog(&self) -> usize {
        let backlog = self.backlog_bytes.load(Ordering::Relaxed);
        crate::metrics::global().spool_backlog_bytes.store(backlog as u64, Ordering::Relaxed);
        backlog
    }
}

struct State {
    queue: Vec<Entry>,
    closed: bool,
    /// The flusher sleeps on `wake` (else it takes the queue when its write is done, and
    /// a session need not pay a futex call to wake it).
    flusher_waits: bool,
}

struct Entry {
    payload: Vec<u8>,
    reply: oneshot::Sender<Result<(), SpoolError>>,
}

impl Spool {
    /// Appends one transaction (`payload` from [`record::encode_payload`]) and resolves
    /// once it is durable; the applier then stores it.
    pub async fn append(&self, payload: Vec<u8>) -> Result<(), SpoolError> {
        let s = &self.shared;
        let len = payload.len();
        let before = s.backlog_bytes.fetch_add(len, Ordering::SeqCst);
        s.priority.appended(before, s.max_backlog_bytes);
        // One message is always taken when nothing waits, however large.
        if before > 0 && before + len > s.max_backlog_bytes {
            s.settle(len);
            return Err(SpoolError::Backlog(before));
        }
        let (reply, wait) = oneshot::channel();
        let wake = {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.closed {
                drop(st);
                s.settle(len);
                return Err(SpoolError::Closed);
            }
            st.queue.push(Entry { payload, reply });
            st.flusher_waits
        };
        if wake {
            s.wake.notify_one();
        }
        wait.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// Makes the calling thread one of the store's threads (the applier is one): idle
    /// CPU priority while the store keeps up, normal while it falls behind.
    pub fn enlist_store_thread(&self) {
        self.shared.priority.enlist();
    }

    /// Totals so far.
    pub fn stats(&self) -> SpoolStats {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Highest sequence number applied to the store.
    pub fn applied(&self) -> u64 {
        self.shared.applied.load(Ordering::SeqCst)
    }

    /// Waits until every message acknowledged so far is in the store (true), or
    /// `timeout` passed (false).
    pub fn wait_applied(&self, timeout: std::time::Duration) -> bool {
        let s = &self.shared;
        if s.backlog_bytes.load(Ordering::SeqCst) > 0 {
            s.priority.hurry();
        }
        let deadline = std::time::Instant::now() + timeout;
        let (lock, signal) = &s.stored;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        while s.backlog_bytes.load(Ordering::SeqCst) > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = signal
                .wait_timeout(guard, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }
}

/// The spool's threads; [`SpoolThreads::close`] drains and stops them.
pub struct SpoolThreads {
    close: Box<dyn FnOnce() -> bool + Send>,
}

impl SpoolThreads {
    /// Refuses new records, waits until everything accepted is applied and durable,
    /// stops the threads and deletes the segments; true if the spool was left empty
    /// (false: a store failure left records for the next start to apply).
    pub fn close(self) -> bool {
        (self.close)()
    }
}
