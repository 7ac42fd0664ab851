//! The single writer: one thread owns the write connection. Callers send jobs over a
//! bounded channel and await a oneshot reply. The thread drains whatever is queued,
//! runs it as ONE transaction (group commit), makes it durable (one `fdatasync` of the
//! WAL, [`super::durable`]), then answers every waiter; what arrived meanwhile is the
//! next batch. If the batch fails, each job is retried in its own transaction so a
//! failing job fails only itself. A reply of `Ok` means committed and on disk.

use super::checkpoint;
use super::durable::{self, SyncInfo};
use super::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

type Observer = Arc<Mutex<Box<dyn FnMut(&BatchStats) + Send>>>;

impl Writer {
    /// Starts the writer thread on `conn`; `observe` sees each batch (metrics, logs).
    /// A file database in WAL mode gets its commits flushed by a second thread (see
    /// [`super::durable`]); anything else keeps the connection's own `synchronous`.
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
        let shared = pacing.clone();
        let handle = std::thread::Builder::new()
            .name("rebound-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, observe, flush, checkpointer, &shared))?;
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

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    observe: Observer,
    flush: Flush,
    checkpointer: Option<checkpoint::Checkpointer>,
    pacing: &Pacing,
) {
    let mut done = Committed { observe, flush, syncs: 0, last_sync: Duration::ZERO };
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut ran: Vec<Ran> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain(&mut rx, &mut batch, max_batch);
        // Commit delay: when flushes are slow (a real disk under load) and fewer jobs
        // are queued than sessions are open, the others are most likely a round trip
        // away. Waiting a fraction of a flush for them makes one batch of two
        // half-size ones: sessions then stay in step and one flush answers them all.
        let slow = done.last_sync;
        let expected = pacing.expected().min(max_batch);
        if batch.len() < expected && slow >= COMMIT_DELAY_FROM {
            let deadline = Instant::now() + (slow / 2).min(MAX_COMMIT_DELAY);
            // Woken by each job that arrives (see `Pacing::arrived`), not by polling.
            pacing.waiting.store(true, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            loop {
                drain(&mut rx, &mut batch, max_batch);
                let now = Instant::now();
                if batch.len() >= pacing.expected().min(max_batch) || now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
            pacing.waiting.store(false, Ordering::SeqCst);
        }
        let start = Instant::now();
        let jobs = batch.len();
        match run_batch(&mut conn, &mut batch) {
            Ok(()) => ran.push(Ran::new(std::mem::take(&mut batch), start, Ok(()), true)),
            Err(e) if jobs == 1 => ran.push(Ran::new(std::mem::take(&mut batch), start, Err(e), false)),
            Err(e) => {
                tracing::warn!(jobs, error = %e, "group commit failed; retrying each job alone");
                for mut job in batch.drain(..) {
                    let one = Instant::now();
                    let result = run_batch(&mut conn, std::slice::from_mut(&mut job));
                    ran.push(Ran::new(vec![job], one, result, false));
                }
            }
        }
        done.settle(&mut ran);
        if batch.capacity() < max_batch {
            batch.reserve(max_batch);
        }
        if let Some(c) = &checkpointer {
            c.committed(&conn);
        }
    }
}

/// Flushes slower than this (a disk under load) make the writer wait for stragglers.
const COMMIT_DELAY_FROM: Duration = Duration::from_micros(500);
/// The longest a batch waits for stragglers.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(2);

/// What the commit delay looks at (open sessions) and how it is woken.
#[derive(Default)]
struct Pacing {
    producers: AtomicUsize,
    /// Set while the writer waits for stragglers: submitters then wake it.
    waiting: AtomicBool,
    /// The writer thread, to unpark.
    writer: OnceLock<std::thread::Thread>,
}

impl Pacing {
    /// Jobs worth waiting for: every open session.
    fn expected(&self) -> usize {
        self.producers.load(Ordering::Relaxed)
    }

    /// A job was queued: wakes the writer if it waits for stragglers. (The writer sets
    /// `waiting` before it drains the queue, so a job it missed sees the flag set; a
    /// wake-up lost anyway would only make it wait until its deadline.)
    fn arrived(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            if let Some(t) = self.writer.get() {
                t.unpark();
            }
        }
    }
}

/// How a commit becomes durable.
enum Flush {
    /// SQLite syncs inside COMMIT (not WAL, or no file).
    InCommit,
    /// `fdatasync` of the WAL by the writer, after COMMIT.
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

/// Makes committed transactions durable and answers their jobs.
struct Committed {
    observe: Observer,
    flush: Flush,
    syncs: u64,
    /// How long the last flush (or COMMIT, without a WAL) took.
    last_sync: Duration,
}

impl Committed {
    /// Flushes once for every transaction in `ran` that committed, then answers them
    /// all in commit order (failures too, so observers see batches as they ran).
    fn settle(&mut self, ran: &mut Vec<Ran>) {
        let committed = ran.iter().filter(|r| r.result.is_ok()).count();
        let (flushed, sync) = if committed == 0 {
            (Ok(()), SyncInfo::default())
        } else {
            self.syncs += 1;
            match &mut self.flush {
                Flush::Wal(file) => {
                    let t = Instant::now();
                    let outcome = file.flush();
                    let sync_time = t.elapsed();
                    self.last_sync = sync_time;
                    (outcome, SyncInfo { seq: self.syncs, transactions: committed, sync_time })
                }
                Flush::InCommit => {
                    // The COMMIT itself synced (synchronous=FULL, or no file).
                    self.last_sync = ran.iter().map(|r| r.commit_time).max().unwrap_or_default();
                    (Ok(()), SyncInfo { seq: self.syncs, transactions: committed, sync_time: Duration::ZERO })
                }
            }
        };
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

/// Moves queued jobs into the batch, up to `max`.
fn drain(rx: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Runs the jobs in one IMMEDIATE transaction and commits; rolls back on any error.
fn run_batch(conn: &mut Connection, jobs: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in jobs.iter_mut() {
        job.run(&tx)?;
    }
    tx.commit()?;
    Ok(())
}
