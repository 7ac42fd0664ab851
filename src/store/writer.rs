//! The single writer: one thread owns the write connection. Callers send jobs over a
//! bounded channel and await a oneshot reply. Group commit is a two-stage pipeline:
//! the writer thread runs what is queued as ONE transaction and hands the commit to
//! the flusher thread (`store::flusher`), which makes it durable (one `fdatasync` of the WAL,
//! [`super::durable`]) and answers every waiter. While the flusher works, the writer
//! gathers the next batch (holding no lock: other connections may write) and commits it
//! just before the flusher frees up, so COMMIT and `fdatasync` overlap and a flush
//! covers everything that arrived during the previous one. If a batch fails, each job
//! is retried in its own transaction so a failing job fails only itself. A reply of
//! `Ok` means committed and on disk.

use super::checkpoint;
use super::durable::{self, SyncInfo};
use super::flusher::{hand_over, wait_for_flusher, Committed, Flush, FlusherGone, Pacing, Ran, PARK_LIMIT};
use super::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
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
pub(super) trait Job: Send {
    fn run(&mut self, tx: &Transaction<'_>) -> Result<(), StoreError>;
    fn finish(self: Box<Self>, outcome: Result<(), WriteError>);
    /// False if the job's caller keeps its own durable copy and does not wait for the
    /// WAL flush (a transaction of such jobs only is answered without one).
    fn wants_flush(&self) -> bool {
        true
    }
}

struct FnJob<T, F> {
    f: F,
    out: Option<T>,
    reply: oneshot::Sender<Result<T, WriteError>>,
    flush: bool,
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

    fn wants_flush(&self) -> bool {
        self.flush
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

/// Registers a steady producer (an LMTP session) while it lives; see [`Writer::producer`].
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

pub(super) type Observer = Arc<Mutex<Box<dyn FnMut(&BatchStats) + Send>>>;

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
        conn.set_prepared_statement_cache_capacity(64);
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
            // However this thread ends (a panic in an observer included), the writer
            // must not wait for it: its next hand-over then fails and says so.
            let _free = FlusherGone(flusher_pacing.clone());
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

    /// Counts a connection that may submit work while the guard lives. The writer uses
    /// the count to wait briefly for stragglers when a batch is smaller than it.
    pub fn producer(&self) -> ProducerGuard {
        self.pacing.producers.fetch_add(1, Ordering::Relaxed);
        ProducerGuard(self.pacing.clone())
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
        let job: Box<dyn Job> = Box::new(FnJob { f, out: None, reply, flush: true });
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
        self.submit_blocking_with(f, true)
    }

    /// Like [`Writer::submit_blocking`], but returns once committed, before the WAL is
    /// flushed: for writes the caller holds a durable copy of (the intake spool), which
    /// a later flushed write or checkpoint makes durable in the store.
    pub fn submit_blocking_unflushed<T, F>(&self, f: F) -> Result<T, WriteError>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_blocking_with(f, false)
    }

    fn submit_blocking_with<T, F>(&self, f: F, flush: bool) -> Result<T, WriteError>
    where
        T: Send + 'static,
        F: FnMut(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, wait) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(FnJob { f, out: None, reply, flush });
        self.tx.blocking_send(job).map_err(|_| WriteError::Stopped)?;
        self.pacing.arrived();
        wait.blocking_recv().map_err(|_| WriteError::Stopped)?
    }
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    flusher: std::sync::mpsc::Sender<Vec<Ran>>,
    checkpointer: Option<checkpoint::Checkpointer>,
    pacing: &Pacing,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut closed = false;
    // End of the commit delay under way.
    let mut delay_until: Option<Instant> = None;
    // When the last batch went to the flusher, and how long it took from BEGIN to COMMIT.
    let mut handed_at = Instant::now();
    let mut last_commit = Duration::ZERO;
    loop {
        if batch.is_empty() {
            if closed {
                break;
            }
            match rx.blocking_recv() {
                Some(job) => batch.push(job),
                None => {
                    closed = true;
                    continue;
                }
            }
        }
        let room = max_batch.saturating_sub(batch.len());
        closed |= drain(&mut rx, &mut batch, room);
        let slow = Duration::from_micros(pacing.last_flush_us.load(Ordering::Relaxed));
        let now = Instant::now();
        if pacing.flusher_busy() && !closed && batch.len() < max_batch {
            // The flusher still works on the last batch, which it should finish about
            // `slow` after it got it; this one cannot be flushed before. Gather what
            // arrives (without holding the write lock, so other connections such as
            // the log follower can write) and commit so as to be done as it frees up.
            let ready = handed_at + slow.saturating_sub(last_commit);
            if now < ready {
                std::thread::park_timeout((ready - now).min(PARK_LIMIT));
                continue;
            }
        } else if !pacing.flusher_busy()
            && !closed
            && batch.len() < pacing.producers().min(max_batch)
            && slow >= COMMIT_DELAY_FROM
        {
            // Commit delay: when flushes are slow (a real disk under load) and fewer
            // jobs are queued than sessions are open, the others are most likely a round
            // trip away. Waiting a fraction of a flush for them makes one batch of two
            // half-size ones: sessions then stay in step and one flush answers them all.
            let until = *delay_until.get_or_insert(now + (slow / 2).min(MAX_COMMIT_DELAY));
            if now < until {
                pacing.wait_for_job(until, || rx.is_empty());
                continue;
            }
        }
        delay_until = None;
        let start = Instant::now();
        let jobs = batch.len();
        let ran = match run_batch(&conn, &mut batch) {
            Ok(()) => vec![Ran::new(std::mem::take(&mut batch), start, Ok(()), true)],
            Err(e) if jobs == 1 => vec![Ran::new(std::mem::take(&mut batch), start, Err(e), false)],
            Err(e) => {
                tracing::warn!(jobs, error = %e, "group commit failed; retrying each job alone");
                retry_alone(&conn, std::mem::take(&mut batch))
            }
        };
        last_commit = start.elapsed();
        wait_for_flusher(pacing);
        hand_over(&flusher, pacing, ran);
        handed_at = Instant::now();
        commit_done(&conn, &checkpointer);
        if batch.capacity() < max_batch {
            batch.reserve(max_batch);
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

/// Flushes slower than this (a disk under load) make the writer wait for stragglers.
const COMMIT_DELAY_FROM: Duration = Duration::from_micros(500);
/// The longest a batch waits for stragglers.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(2);

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
