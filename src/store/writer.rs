//! The single writer: one thread owns the write connection. Callers send jobs over a
//! bounded channel and await a oneshot reply. Group commit is a two-stage pipeline:
//! the writer thread runs each job as it arrives inside one open transaction, and
//! commits it the moment the flusher thread is free; the flusher makes the commit
//! durable (one `fdatasync` of the WAL, [`super::durable`]) and answers every waiter,
//! while the writer already runs the jobs of the next batch. So a flush covers
//! everything that arrived during the previous one, and the inserts never wait for the
//! disk. If a job fails, the open transaction is rolled back and each of its jobs is
//! retried in its own transaction, so a failing job fails only itself. A reply of `Ok`
//! means committed and on disk.

use super::checkpoint;
use super::durable::{self, SyncInfo};
use super::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Why a write did not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The job or the commit failed (text of the database error).
    #[error("store write failed: {0}")]
    Failed(String),
    /// The writer thread has stopped.
    #[error("store writer stopped")]
    Stopped,
}

/// One unit of work run inside the batch transaction; it may be run twice (batch, then
/// alone), so it must not consume what it needs to run again.
trait Job: Send {
    fn run(&mut self, tx: &Transaction<'_>) -> Result<(), StoreError>;
    fn finish(self: Box<Self>, outcome: Result<(), WriteError>);
}

struct FnJob<T, F> {
    f: F,
    out: Option<T>,
    reply: oneshot::Sender<Result<T, WriteError>>,
}

impl<T, F> Job for FnJob<T, F>
where
    T: Send + 'static,
    F: FnMut(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        self.out = Some((self.f)(tx)?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<(), WriteError>) {
        let FnJob { out, reply, .. } = *self;
        let result = outcome.and_then(|()| out.ok_or_else(|| WriteError::Failed("job produced no result".into())));
        let _ = reply.send(result);
    }
}

/// Group-commit statistics of one transaction, reported to an observer just before
/// its waiters are answered.
#[derive(Debug, Clone, Copy)]
pub struct BatchStats {
    /// Jobs in the transaction.
    pub jobs: usize,
    /// Time from BEGIN to the end of COMMIT.
    pub commit_time: Duration,
    /// Time from BEGIN until the commit was on disk (what the waiters waited).
    pub durable_time: Duration,
    /// True if the batch committed as one transaction.
    pub grouped: bool,
    /// The flush that made it durable (shared by every transaction it covered).
    pub sync: SyncInfo,
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Jobs that may wait in the channel.
    pub queue: usize,
    /// Most jobs in one transaction.
    pub max_batch: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { queue: 4096, max_batch: 512 }
    }
}

/// A cloneable handle to submit work to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    pacing: Arc<Pacing>,
}

/// Counts an open session while it lives; see [`Writer::producer`].
pub struct ProducerGuard(Arc<Pacing>);

impl Drop for ProducerGuard {
    fn drop(&mut self) {
        self.0.producers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The running writer thread; join it after dropping every [`Writer`].
pub struct WriterThread {
    handle: std::thread::JoinHandle<()>,
    helpers: Vec<std::thread::JoinHandle<()>>,
}

impl WriterThread {
    /// Waits until the writer has drained its queue, made it durable and stopped.
    pub fn join(self) {
        let _ = self.handle.join();
        for h in self.helpers {
            let _ = h.join();
        }
    }
}

type Observer = Arc<Mutex<Box<dyn FnMut(&BatchStats) + Send>>>;

impl Writer {
    /// Starts the writer and flusher threads on `conn`; `observe` sees each batch
    /// (metrics, logs). A file database in WAL mode gets its commits flushed with
    /// `fdatasync` of the WAL (see [`super::durable`]); anything else keeps the
    /// connection's own `synchronous`.
    pub fn start(
        conn: Connection,
        options: WriterOptions,
        observe: impl FnMut(&BatchStats) + Send + 'static,
    ) -> std::io::Result<(Writer, WriterThread)> {
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let observe: Observer = Arc::new(Mutex::new(Box::new(observe)));
        let _ = conn.set_prepared_statement_cache_capacity(64);
        let mut helpers = Vec::new();
        let mut checkpointer = None;
        let flush = match durable::wal_path(&conn) {
            Some(wal) => {
                conn.pragma_update(None, "synchronous", "NORMAL").map_err(std::io::Error::other)?;
                if let Some((c, handle)) = conn.path().and_then(|db| checkpoint::start(std::path::Path::new(db))) {
                    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(std::io::Error::other)?;
                    checkpointer = Some(c);
                    helpers.push(handle);
                }
                Flush::Wal(durable::WalFile::new(wal))
            }
            None => Flush::InCommit,
        };
        let max_batch = options.max_batch.max(1);
        let pacing = Arc::new(Pacing::default());
        let mut done = Committed { observe, flush, syncs: 0 };
        let (to_flusher, from_writer) = std::sync::mpsc::channel::<Vec<Ran>>();
        let flusher_pacing = pacing.clone();
        helpers.push(std::thread::Builder::new().name("rebound-flush".into()).spawn(move || {
            while let Ok(mut ran) = from_writer.recv() {
                let (flushed, sync) = done.flush(&ran);
                flusher_pacing.last_flush_us.store(sync.sync_time.as_micros() as u64, Ordering::Relaxed);
                // On disk: the next batch may commit while these waiters are answered.
                flusher_pacing.flushed();
                done.answer(&mut ran, flushed, sync);
            }
        })?);
        let shared = pacing.clone();
        let handle = std::thread::Builder::new()
            .name("rebound-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, to_flusher, checkpointer, &shared))?;
        let _ = pacing.writer.set(handle.thread().clone());
        Ok((Writer { tx, pacing }, WriterThread { handle, helpers }))
    }

    /// Counts a connection that may submit work while the guard lives (see
    /// [`Writer::producers`]).
    pub fn producer(&self) -> ProducerGuard {
        self.pacing.producers.fetch_add(1, Ordering::Relaxed);
        ProducerGuard(self.pacing.clone())
    }

    /// Connections that hold a [`ProducerGuard`].
    pub fn producers(&self) -> usize {
        self.pacing.producers.load(Ordering::Relaxed)
    }

    /// Jobs waiting in the channel (not yet taken by the writer).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Runs `f` in the next group-commit transaction; resolves once it committed.
    pub async fn submit<T, F>(&self, f: F) -> Result<T, WriteError>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, wait) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(FnJob { f, out: None, reply });
        self.tx.send(job).await.map_err(|_| WriteError::Stopped)?;
        self.pacing.arrived();
        wait.await.map_err(|_| WriteError::Stopped)?
    }

    /// Like [`Writer::submit`], for callers outside the async runtime (blocks).
    pub fn submit_blocking<T, F>(&self, f: F) -> Result<T, WriteError>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, wait) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(FnJob { f, out: None, reply });
        self.tx.blocking_send(job).map_err(|_| WriteError::Stopped)?;
        self.pacing.arrived();
        wait.blocking_recv().map_err(|_| WriteError::Stopped)?
    }
}

/// The transaction the writer keeps open while the flusher works.
struct Open<'c> {
    tx: Transaction<'c>,
    jobs: Vec<Box<dyn Job>>,
    start: Instant,
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    flusher: std::sync::mpsc::Sender<Vec<Ran>>,
    checkpointer: Option<checkpoint::Checkpointer>,
    pacing: &Pacing,
) {
    let mut arrived: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut open: Option<Open<'_>> = None;
    let mut closed = false;
    // End of the commit delay under way.
    let mut delay_until: Option<Instant> = None;
    loop {
        let held = open.as_ref().map_or(0, |o| o.jobs.len());
        if held == 0 && !closed {
            match rx.blocking_recv() {
                Some(job) => arrived.push(job),
                None => closed = true,
            }
        }
        closed |= drain(&mut rx, &mut arrived, max_batch.saturating_sub(held));
        if open.is_none() && !arrived.is_empty() {
            let start = Instant::now();
            match Transaction::new_unchecked(&conn, TransactionBehavior::Immediate) {
                Ok(tx) => open = Some(Open { tx, jobs: Vec::with_capacity(max_batch), start }),
                Err(e) => {
                    // BEGIN failed: each job gets its own try (and, most likely, the error).
                    tracing::warn!(error = %e, "BEGIN failed; trying each job alone");
                    let ran = retry_alone(&conn, std::mem::take(&mut arrived));
                    wait_for_flusher(pacing);
                    hand_over(&flusher, pacing, ran);
                }
            }
        }
        if let Some(o) = open.as_mut() {
            let mut failed = false;
            for mut job in arrived.drain(..) {
                failed = failed || job.run(&o.tx).is_err();
                o.jobs.push(job);
            }
            if failed {
                // Roll back and isolate the failing job: everything held runs again alone.
                if let Some(o) = open.take() {
                    let jobs = o.jobs.len();
                    let _ = o.tx.rollback();
                    tracing::warn!(jobs, "a job in the group commit failed; retrying each job alone");
                    let ran = retry_alone(&conn, o.jobs);
                    wait_for_flusher(pacing);
                    hand_over(&flusher, pacing, ran);
                    commit_done(&conn, &checkpointer);
                }
                continue;
            }
        }
        let held = open.as_ref().map_or(0, |o| o.jobs.len());
        if held == 0 {
            if closed {
                break;
            }
            continue;
        }
        if pacing.flusher_busy() && !closed && held < max_batch {
            // The flusher still works on the last batch: keep running what arrives.
            pacing.wait_for(None, || rx.is_empty());
            continue;
        }
        wait_for_flusher(pacing);
        // Commit delay: when flushes are slow (a real disk under load) and fewer jobs
        // are held than sessions are open, the others are most likely a round trip
        // away. Waiting a fraction of a flush for them makes one batch of two
        // half-size ones: sessions then stay in step and one flush answers them all.
        let slow = Duration::from_micros(pacing.last_flush_us.load(Ordering::Relaxed));
        if !closed && held < pacing.producers().min(max_batch) && slow >= COMMIT_DELAY_FROM {
            let now = Instant::now();
            let until = *delay_until.get_or_insert(now + (slow / 2).min(MAX_COMMIT_DELAY));
            if now < until {
                pacing.wait_for(Some(until), || rx.is_empty());
                continue;
            }
        }
        delay_until = None;
        if let Some(o) = open.take() {
            let result = o.tx.commit().map_err(StoreError::from);
            let jobs = o.jobs;
            let ran = match result {
                Ok(()) => vec![Ran::new(jobs, o.start, Ok(()), true)],
                Err(e) if jobs.len() == 1 => vec![Ran::new(jobs, o.start, Err(e), false)],
                Err(e) => {
                    tracing::warn!(jobs = jobs.len(), error = %e, "group commit failed; retrying each job alone");
                    retry_alone(&conn, jobs)
                }
            };
            hand_over(&flusher, pacing, ran);
            commit_done(&conn, &checkpointer);
        }
    }
    // Dropping `flusher` lets the flusher thread settle what it holds and stop.
}

/// After a commit, between two transactions: lets the checkpointer count it (and
/// rewind the WAL when it asked to).
fn commit_done(conn: &Connection, checkpointer: &Option<checkpoint::Checkpointer>) {
    if let Some(c) = checkpointer {
        c.committed(conn);
    }
}

/// Runs each job in its own transaction (after a batch failed).
fn retry_alone(conn: &Connection, jobs: Vec<Box<dyn Job>>) -> Vec<Ran> {
    jobs.into_iter()
        .map(|mut job| {
            let one = Instant::now();
            let result = run_batch(conn, std::slice::from_mut(&mut job));
            Ran::new(vec![job], one, result, false)
        })
        .collect()
}

/// Blocks until the flusher has answered the last batch it was given.
fn wait_for_flusher(pacing: &Pacing) {
    while pacing.flusher_busy() {
        std::thread::park_timeout(PARK_LIMIT);
    }
}

/// Gives committed (or failed) transactions to the flusher.
fn hand_over(flusher: &std::sync::mpsc::Sender<Vec<Ran>>, pacing: &Pacing, ran: Vec<Ran>) {
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

/// Flushes slower than this (a disk under load) make the writer wait for stragglers.
const COMMIT_DELAY_FROM: Duration = Duration::from_micros(500);
/// The longest a batch waits for stragglers.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(2);

/// The longest the writer sleeps before looking again (a safety net: every wait is
/// ended by an unpark from a submitter or the flusher).
const PARK_LIMIT: Duration = Duration::from_millis(10);

/// How the writer, the flusher and the submitters wake each other.
#[derive(Default)]
struct Pacing {
    producers: AtomicUsize,
    /// Set while the writer sleeps with a transaction open: submitters then wake it.
    waiting: AtomicBool,
    /// Set from a hand-over until the flusher has answered that batch.
    busy: AtomicBool,
    /// The writer thread, to unpark.
    writer: OnceLock<std::thread::Thread>,
    /// How long the last flush took (or 0 without a WAL), in microseconds.
    last_flush_us: AtomicU64,
}

impl Pacing {
    fn flusher_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    fn unpark_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    /// The flusher answered its batch: the writer may commit the next.
    fn flushed(&self) {
        self.busy.store(false, Ordering::SeqCst);
        self.unpark_writer();
    }

    /// A job was queued: wakes the writer if it sleeps with a transaction open. (The
    /// writer sets `waiting` before it looks at the queue, so a job it missed sees
    /// the flag set.)
    fn arrived(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.unpark_writer();
        }
    }

    fn producers(&self) -> usize {
        self.producers.load(Ordering::Relaxed)
    }

    /// Sleeps until a job arrives, or `until` when given, else until the flusher is
    /// free (returns at once if that already happened).
    fn wait_for(&self, until: Option<Instant>, queue_empty: impl Fn() -> bool) {
        self.waiting.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if queue_empty() {
            match until {
                Some(t) => std::thread::park_timeout(t.saturating_duration_since(Instant::now()).min(PARK_LIMIT)),
                None if self.flusher_busy() => std::thread::park_timeout(PARK_LIMIT),
                None => {}
            }
        }
        self.waiting.store(false, Ordering::SeqCst);
    }
}

/// How a commit becomes durable.
enum Flush {
    /// SQLite syncs inside COMMIT (not WAL, or no file).
    InCommit,
    /// `fdatasync` of the WAL by the flusher, after COMMIT.
    Wal(durable::WalFile),
}

/// One transaction's jobs and how it ended, waiting to be answered.
struct Ran {
    jobs: Vec<Box<dyn Job>>,
    start: Instant,
    commit_time: Duration,
    result: Result<(), StoreError>,
    grouped: bool,
}

impl Ran {
    fn new(jobs: Vec<Box<dyn Job>>, start: Instant, result: Result<(), StoreError>, grouped: bool) -> Ran {
        Ran { jobs, start, commit_time: start.elapsed(), result, grouped }
    }
}

/// Makes committed transactions durable and answers their jobs (the flusher thread).
struct Committed {
    observe: Observer,
    flush: Flush,
    syncs: u64,
}

impl Committed {
    /// Flushes once for every transaction in `ran` that committed.
    fn flush(&mut self, ran: &[Ran]) -> (Result<(), String>, SyncInfo) {
        let committed = ran.iter().filter(|r| r.result.is_ok()).count();
        if committed == 0 {
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
    fn answer(&mut self, ran: &mut Vec<Ran>, flushed: Result<(), String>, sync: SyncInfo) {
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

/// Moves queued jobs into `batch`, at most `room`; true once every sender is gone.
fn drain(rx: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>, room: usize) -> bool {
    let mut taken = 0;
    while taken < room {
        match rx.try_recv() {
            Ok(job) => {
                batch.push(job);
                taken += 1;
            }
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
    false
}

/// Runs the jobs in one IMMEDIATE transaction and commits; rolls back on any error.
fn run_batch(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    for job in jobs.iter_mut() {
        job.run(&tx)?;
    }
    tx.commit()?;
    Ok(())
}
