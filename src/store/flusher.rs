//! The flusher half of the store writer ([`super::writer`]): the thread that makes
//! committed transactions durable (one `fdatasync` of the WAL) and answers their jobs,
//! and the pacing by which the writer, the flusher and the submitters wake each other.

use super::durable::{self, SyncInfo};
use super::writer::{BatchStats, Job, Observer, WriteError};
use super::StoreError;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Blocks until the flusher has made the last batch it was given durable.
pub(super) fn wait_for_flusher(pacing: &Pacing) {
    while pacing.flusher_busy() {
        std::thread::park_timeout(PARK_LIMIT);
    }
}

/// Gives committed (or failed) transactions to the flusher.
pub(super) fn hand_over(flusher: &std::sync::mpsc::Sender<Vec<Ran>>, pacing: &Pacing, ran: Vec<Ran>) {
    pacing.busy.store(true, Ordering::SeqCst);
    if let Err(std::sync::mpsc::SendError(lost)) = flusher.send(ran) {
        // The flusher is gone (it panicked): nothing committed can be made durable.
        pacing.busy.store(false, Ordering::SeqCst);
        for r in lost {
            for job in r.jobs {
                job.finish(Err(WriteError::Stopped));
            }
        }
    }
}

/// Frees the writer when the flusher thread ends.
pub(super) struct FlusherGone(pub(super) Arc<Pacing>);

impl Drop for FlusherGone {
    fn drop(&mut self) {
        self.0.flushed();
    }
}

/// The longest the writer sleeps before looking again (a safety net: every wait is
/// ended by an unpark from a submitter or the flusher).
pub(super) const PARK_LIMIT: Duration = Duration::from_millis(10);

/// How the writer, the flusher and the submitters wake each other.
#[derive(Default)]
pub(super) struct Pacing {
    pub(super) producers: AtomicUsize,
    /// Set while the writer waits for stragglers (the commit delay): submitters then wake it.
    pub(super) waiting: AtomicBool,
    /// Set from a hand-over until the flusher has answered that batch.
    pub(super) busy: AtomicBool,
    /// The writer thread, to unpark.
    pub(super) writer: OnceLock<std::thread::Thread>,
    /// How long the last flush took (or 0 without a WAL), in microseconds.
    pub(super) last_flush_us: AtomicU64,
}

impl Pacing {
    pub(super) fn flusher_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    fn unpark_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    /// The flusher answered its batch: the writer may commit the next.
    pub(super) fn flushed(&self) {
        self.busy.store(false, Ordering::SeqCst);
        self.unpark_writer();
    }

    /// A job was queued: wakes the writer if it waits for stragglers. (The
    /// writer sets `waiting` before it looks at the queue, so a job it missed sees
    /// the flag set.)
    pub(super) fn arrived(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.unpark_writer();
        }
    }

    pub(super) fn producers(&self) -> usize {
        self.producers.load(Ordering::Relaxed)
    }

    /// Sleeps until a job arrives or `until` (returns at once if one is queued).
    pub(super) fn wait_for_job(&self, until: Instant, queue_empty: impl Fn() -> bool) {
        self.waiting.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if queue_empty() {
            std::thread::park_timeout(until.saturating_duration_since(Instant::now()).min(PARK_LIMIT));
        }
        self.waiting.store(false, Ordering::SeqCst);
    }
}

/// How a commit becomes durable.
pub(super) enum Flush {
    /// SQLite syncs inside COMMIT (not WAL, or no file).
    InCommit,
    /// `fdatasync` of the WAL by the flusher, after COMMIT.
    Wal(durable::WalFile),
}

/// One transaction's jobs and how it ended, waiting to be answered.
pub(super) struct Ran {
    pub(super) jobs: Vec<Box<dyn Job>>,
    pub(super) start: Instant,
    pub(super) commit_time: Duration,
    pub(super) result: Result<(), StoreError>,
    pub(super) grouped: bool,
}

impl Ran {
    pub(super) fn new(jobs: Vec<Box<dyn Job>>, start: Instant, result: Result<(), StoreError>, grouped: bool) -> Ran {
        Ran { jobs, start, commit_time: start.elapsed(), result, grouped }
    }
}

/// Makes committed transactions durable and answers their jobs (the flusher thread).
pub(super) struct Committed {
    pub(super) observe: Observer,
    pub(super) flush: Flush,
    pub(super) syncs: u64,
}

impl Committed {
    /// Flushes once for every transaction in `ran` that committed.
    pub(super) fn flush(&mut self, ran: &[Ran]) -> (Result<(), String>, SyncInfo) {
        let committed = ran.iter().filter(|r| r.result.is_ok()).count();
        // Only a committed job that waits for the disk needs a flush: jobs that keep
        // their own durable copy are covered by a later flush (or checkpoint).
        let waited_for = ran.iter().any(|r| r.result.is_ok() && r.jobs.iter().any(|j| j.wants_flush()));
        if !waited_for {
            (Ok(()), SyncInfo::default())
        } else {
            self.syncs += 1;
            match &mut self.flush {
                Flush::Wal(file) => {
                    let t = Instant::now();
                    let outcome = file.flush();
                    (outcome, SyncInfo { seq: self.syncs, transactions: committed, sync_time: t.elapsed() })
                }
                // The COMMIT itself synced (synchronous=FULL, or no file).
                Flush::InCommit => {
                    (Ok(()), SyncInfo { seq: self.syncs, transactions: committed, sync_time: Duration::ZERO })
                }
            }
        }
    }

    /// Answers every job of `ran` in commit order (failures too, so observers see
    /// batches as they ran), given how the flush ended.
    pub(super) fn answer(&mut self, ran: &mut Vec<Ran>, flushed: Result<(), String>, sync: SyncInfo) {
        for r in ran.drain(..) {
            let outcome = match &r.result {
                Ok(()) => flushed.clone().map_err(WriteError::Failed),
                Err(e) => {
                    tracing::error!(error = %e, "store write failed");
                    Err(WriteError::Failed(e.to_string()))
                }
            };
            let ok = r.result.is_ok();
            let stats = BatchStats {
                jobs: r.jobs.len(),
                commit_time: r.commit_time,
                durable_time: r.start.elapsed(),
                grouped: r.grouped,
                sync: if ok { sync } else { SyncInfo::default() },
            };
            if let Ok(mut f) = self.observe.lock() {
                f(&stats);
            }
            for job in r.jobs {
                job.finish(outcome.clone());
            }
        }
    }
}
