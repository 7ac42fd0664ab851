//! The single writer: one thread owns the write connection. Callers send jobs over a
//! bounded channel and await a oneshot reply. The thread drains whatever is queued,
//! runs it as ONE transaction (group commit: one WAL fsync for the batch), then answers
//! every waiter. If the batch fails, each job is retried in its own transaction so a
//! failing job fails only itself. A reply of `Ok` means committed.

use super::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// Group-commit statistics of one batch, reported to an observer.
#[derive(Debug, Clone, Copy)]
pub struct BatchStats {
    /// Jobs in the batch.
    pub jobs: usize,
    /// Time from BEGIN to the end of COMMIT.
    pub commit_time: Duration,
    /// True if the batch committed as one transaction.
    pub grouped: bool,
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
    producers: Arc<AtomicUsize>,
}

/// Registers a steady producer (an LMTP session) while it lives; see [`Writer::producer`].
pub struct ProducerGuard(Arc<AtomicUsize>);

impl Drop for ProducerGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The running writer thread; join it after dropping every [`Writer`].
pub struct WriterThread {
    handle: std::thread::JoinHandle<()>,
}

impl WriterThread {
    /// Waits until the writer has drained its queue and stopped.
    pub fn join(self) {
        let _ = self.handle.join();
    }
}

type Observer = Box<dyn FnMut(&BatchStats) + Send>;

impl Writer {
    /// Starts the writer thread on `conn`; `observe` sees each batch (metrics, logs).
    pub fn start(
        conn: Connection,
        options: WriterOptions,
        observe: impl FnMut(&BatchStats) + Send + 'static,
    ) -> std::io::Result<(Writer, WriterThread)> {
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let observe: Observer = Box::new(observe);
        let producers = Arc::new(AtomicUsize::new(0));
        let hint = producers.clone();
        let handle = std::thread::Builder::new()
            .name("rebound-writer".into())
            .spawn(move || writer_loop(conn, rx, options.max_batch.max(1), hint, observe))?;
        Ok((Writer { tx, producers }, WriterThread { handle }))
    }

    /// Counts a connection that may submit work while the guard lives. The writer uses
    /// the count to wait briefly for stragglers when a batch is smaller than it.
    pub fn producer(&self) -> ProducerGuard {
        self.producers.fetch_add(1, Ordering::Relaxed);
        ProducerGuard(self.producers.clone())
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
        wait.blocking_recv().map_err(|_| WriteError::Stopped)?
    }
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    producers: Arc<AtomicUsize>,
    mut observe: Observer,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut last_commit = Duration::ZERO;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain(&mut rx, &mut batch, max_batch);
        // Commit delay: when commits are slow (a real fsync) and fewer jobs are queued
        // than connections are open, the others are most likely a round trip away.
        // Waiting a fraction of a commit for them merges two half-size batches into
        // one, which nearly doubles throughput for the same number of sessions.
        let expected = producers.load(Ordering::Relaxed).min(max_batch);
        if batch.len() < expected && last_commit >= COMMIT_DELAY_FROM {
            let deadline = Instant::now() + (last_commit / 2).min(MAX_COMMIT_DELAY);
            while batch.len() < expected && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(50));
                drain(&mut rx, &mut batch, max_batch);
            }
        }
        let start = Instant::now();
        let jobs = batch.len();
        match run_batch(&mut conn, &mut batch) {
            Ok(()) => {
                last_commit = start.elapsed();
                observe(&BatchStats { jobs, commit_time: last_commit, grouped: true });
                for job in batch.drain(..) {
                    job.finish(Ok(()));
                }
            }
            Err(e) if jobs == 1 => {
                tracing::error!(error = %e, "store write failed");
                observe(&BatchStats { jobs, commit_time: start.elapsed(), grouped: false });
                for job in batch.drain(..) {
                    job.finish(Err(WriteError::Failed(e.to_string())));
                }
            }
            Err(e) => {
                tracing::warn!(jobs, error = %e, "group commit failed; retrying each job alone");
                for mut job in batch.drain(..) {
                    let one = Instant::now();
                    let outcome = run_batch(&mut conn, std::slice::from_mut(&mut job));
                    observe(&BatchStats { jobs: 1, commit_time: one.elapsed(), grouped: false });
                    if let Err(e) = &outcome {
                        tracing::error!(error = %e, "store write failed");
                    }
                    job.finish(outcome.map_err(|e| WriteError::Failed(e.to_string())));
                }
            }
        }
    }
}

/// Commits faster than this (no real fsync) never wait for stragglers.
const COMMIT_DELAY_FROM: Duration = Duration::from_micros(500);
/// The longest a batch waits for stragglers.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(2);

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
