//! The spool's two threads. The writer takes whatever sessions queued, frames it
//! with sequence numbers, writes it with one `fdatasync` and answers the sessions,
//! then passes the items on; it rotates to the next zero-filled segment (prepared in
//! the background) and deletes segments the store has applied. The applier hands
//! the store batches in sequence order and records how far it got. A failed
//! `fdatasync` is final (the kernel may have dropped the pages): every later append
//! fails until the process restarts, as for the store's own WAL.

use super::segment::{self, Segment};
use super::{record, Entry, Record, Shared, SpoolError, SpoolOptions, SpoolThreads};
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Payloads made durable, with their sequence numbers.
type Durable = Vec<(u64, Vec<u8>)>;

/// How long the writer sleeps with nothing queued before looking for segments to delete.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Pause before the applier offers a failed batch again (doubling up to the cap).
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_secs(5);

/// How long the applier gathers records before it stores them (unless it has a full batch).
const GATHER: Duration = Duration::from_millis(10);

/// How often the applier asks the store for a flushed commit while it applies.
const DURABLE_EVERY: Duration = Duration::from_secs(1);


pub(super) fn spawn<A>(
    shared: Arc<Shared>,
    dir: PathBuf,
    lock: File,
    first: Segment,
    next_seq: u64,
    options: SpoolOptions,
    apply: A,
) -> std::io::Result<SpoolThreads>
where
    A: FnMut(&[Record], bool) -> Result<(), String> + Send + 'static,
{
    let (to_applier, from_writer) = mpsc::channel::<Durable>();
    let applier_shared = shared.clone();
    let applier = std::thread::Builder::new()
        .name("rebound-apply".into())
        .spawn(move || {
            apply_loop(&applier_shared, from_writer, &options, apply)
        })?;
    let writer_shared = shared.clone();
    let writer_dir = dir.clone();
    let writer = std::thread::Builder::new()
        .name("rebound-spool".into())
        .spawn(move || write_loop(&writer_shared, &writer_dir, first, next_seq, to_applier))?;
    let close = move || {
        {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.closed = true;
        }
        shared.wake.notify_all();
        let (segments, last_seq) = writer.join().unwrap_or_default();
        let _ = applier.join();
        let empty = shared.applied.load(Ordering::SeqCst) >= last_seq;
        if empty {
            for n in segments {
                if let Err(e) = segment::remove(&dir, n) {
                    tracing::warn!(error = %e, "spool segment not removed");
                }
            }
        } else {
            tracing::error!(dir = %dir.display(), "spool closed with records the store lacks; the next start applies them");
        }
        drop(lock);
        empty
    };
    Ok(SpoolThreads {
        close: Box::new(close),
    })
}

/// The writer thread; returns the segments still on disk and the last sequence
/// number written.
fn write_loop(
    shared: &Shared,
    dir: &Path,
    first: Segment,
    mut next_seq: u64,
    to_applier: mpsc::Sender<Durable>,
) -> (Vec<u64>, u64) {
    let mut current = first;
    let mut spare = Some(prepare(
        dir,
        current.number + 1,
        segment::next_size(current.capacity),
    ));
    let mut full: VecDeque<(u64, u64)> = VecDeque::new();
    let mut failed: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        let batch = {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while st.queue.is_empty() && !st.closed {
                st = shared
                    .wake
                    .wait_timeout(st, IDLE_WAKE)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
                release(shared, dir, &mut full);
            }
            if st.queue.is_empty() {
                break;
            }
            std::mem::take(&mut st.queue)
        };
        if let Some(e) = &failed {
            refuse(shared, batch, SpoolError::Failed(e.clone()));
            continue;
        }
        buf.clear();
        let first_seq = next_seq;
        for e in &batch {
            record::frame(&mut buf, next_seq, &e.payload);
            next_seq += 1;
        }
        if current.would_overflow(buf.len()) {
            match rotate(dir, &mut current, &mut spare) {
                Ok(done) => full.push_back(done),
                Err(e) => {
                    // No room for a new segment (disk full?): refuse this batch, try again with the next.
                    tracing::error!(error = %e, "spool segment not created; answering 451");
                    next_seq = first_seq;
                    refuse(shared, batch, SpoolError::Failed(e.to_string()));
                    continue;
                }
            }
        }
        let started = Instant::now();
        match current.append(&buf) {
            Ok(()) => {
                current.last_seq = next_seq - 1;
                if let Ok(mut s) = shared.stats.lock() {
                    s.flushes += 1;
                    s.records += batch.len() as u64;
                    s.flush_micros += started.elapsed().as_micros() as u64;
                }
                let mut items = Vec::with_capacity(batch.len());
                for (i, e) in batch.into_iter().enumerate() {
                    let _ = e.reply.send(Ok(()));
                    items.push((first_seq + i as u64, e.payload));
                }
                if to_applier.send(items).is_err() {
                    tracing::error!("spool applier stopped; records stay for the next start");
                }
            }
            Err(e) => {
                let text = format!("spool segment {}: {e}", current.number);
                tracing::error!(error = %text, "spool flush failed; refusing further messages until restart");
                failed = Some(text.clone());
                refuse(shared, batch, SpoolError::Failed(text));
            }
        }
        release(shared, dir, &mut full);
    }
    drop(to_applier);
    let mut segments: Vec<u64> = full.iter().map(|(n, _)| *n).collect();
    segments.push(current.number);
    if let Some(Ok(s)) = spare.map(|h| {
        h.join()
            .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
    }) {
        segments.push(s.number);
    }
    (segments, next_seq - 1)
}

/// Answers every entry of `batch` with `error` (nothing of it was made durable).
fn refuse(shared: &Shared, batch: Vec<Entry>, error: SpoolError) {
    for e in batch {
        {
            let _guard = shared.stored.0.lock().unwrap_or_else(|e| e.into_inner());
            shared
                .backlog_bytes
                .fetch_sub(e.payload.len(), Ordering::SeqCst);
        }
        shared.stored.1.notify_all();
        let _ = e.reply.send(Err(error.clone()));
    }
}

/// Creates segment `number` in the background.
fn prepare(dir: &Path, number: u64, capacity: u64) -> JoinHandle<std::io::Result<Segment>> {
    let dir = dir.to_owned();
    let spawned = std::thread::Builder::new()
        .name("rebound-segment".into())
        .spawn(move || Segment::create(&dir, number, capacity));
    spawned.unwrap_or_else(|e| std::thread::spawn(move || Err(e)))
}

/// Moves to the spare segment (made now if it is not ready or failed) and starts the
/// next spare; returns the number and last sequence of the segment left.
fn rotate(
    dir: &Path,
    current: &mut Segment,
    spare: &mut Option<JoinHandle<std::io::Result<Segment>>>,
) -> std::io::Result<(u64, u64)> {
    let number = current.number + 1;
    let size = segment::next_size(current.capacity);
    let ready = spare
        .take()
        .and_then(|h| h.join().ok())
        .and_then(Result::ok);
    let next = match ready {
        Some(s) => s,
        // The spare failed: a leftover of it may exist; use a fresh number.
        None => Segment::create(dir, number + 1, size)
            .or_else(|_| Segment::create(dir, number + 2, size))?,
    };
    let left = std::mem::replace(current, next);
    *spare = Some(prepare(
        dir,
        current.number + 1,
        segment::next_size(current.capacity),
    ));
    Ok((left.number, left.last_seq))
}

/// Deletes the full segments whose every record the store holds.
fn release(shared: &Shared, dir: &Path, full: &mut VecDeque<(u64, u64)>) {
    let applied = shared.applied.load(Ordering::SeqCst);
    while let Some(&(number, last_seq)) = full.front() {
        if last_seq > applied {
            break;
        }
        if let Err(e) = segment::remove(dir, number) {
            tracing::warn!(error = %e, "spool segment not removed");
            break;
        }
        full.pop_front();
    }
}

/// The applier thread: batches in sequence order to `apply`, retried until stored.
/// Batches are committed without waiting for the store's WAL flush (the spool holds
/// them durably); about once a second, and before it stops, the applier asks for a
/// flushed commit, after which the spool may delete what it covered.
fn apply_loop<A>(shared: &Shared, from_writer: mpsc::Receiver<Durable>, options: &SpoolOptions, mut apply: A)
where
    A: FnMut(&[Record], bool) -> Result<(), String>,
{
    let max_batch = options.max_apply_batch.max(1);
    let patience = options.close_patience;
    let mut waiting: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut committed = shared.applied.load(Ordering::SeqCst);
    let mut flushed_at = Instant::now();
    let mut open = true;
    // When the oldest record waiting arrived.
    let mut since: Option<Instant> = None;
    while open || !waiting.is_empty() {
        let unflushed = committed > shared.applied.load(Ordering::SeqCst);
        // Gather a while: one transaction of many messages costs the store far less
        // than many of a few, and nobody waits on it (the sessions got their 250).
        let wait = match since {
            Some(t) if open && waiting.len() < max_batch => GATHER.checked_sub(t.elapsed()),
            Some(_) => None,
            None if unflushed => Some(DURABLE_EVERY.saturating_sub(flushed_at.elapsed())),
            None => Some(IDLE_WAKE),
        };
        if let Some(wait) = wait {
            match from_writer.recv_timeout(wait) {
                Ok(items) => {
                    since.get_or_insert_with(Instant::now);
                    waiting.extend(items);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        }
        while let Ok(items) = from_writer.try_recv() {
            waiting.extend(items);
        }
        let take = waiting.len().min(max_batch);
        let mut bytes = 0;
        let mut last = committed;
        let batch: Vec<Record> = waiting
            .drain(..take)
            .filter_map(|(seq, payload)| {
                bytes += payload.len();
                last = seq;
                // It was encoded by this process a moment ago: decoding cannot fail.
                record::decode_payload(seq, &payload)
            })
            .collect();
        since = (!waiting.is_empty()).then(Instant::now);
        let flush = unflushed && flushed_at.elapsed() >= DURABLE_EVERY;
        if bytes == 0 && !flush {
            continue;
        }
        let count = batch.len() as u64;
        if !store(shared, &mut apply, &batch, flush, patience) {
            return;
        }
        committed = committed.max(last);
        if flush {
            shared.applied.fetch_max(committed, Ordering::SeqCst);
            flushed_at = Instant::now();
        }
        {
            let _guard = shared.stored.0.lock().unwrap_or_else(|e| e.into_inner());
            shared.backlog_bytes.fetch_sub(bytes, Ordering::SeqCst);
        }
        shared.stored.1.notify_all();
        if let Ok(mut s) = shared.stats.lock() {
            s.applies += u64::from(count > 0);
            s.applied_records += count;
        }
    }
    // Stopping: make everything committed durable, so the spool can be emptied.
    if committed > shared.applied.load(Ordering::SeqCst)
        && store(shared, &mut apply, &[], true, patience)
    {
        shared.applied.fetch_max(committed, Ordering::SeqCst);
    }
}

/// Offers `batch` to the store until it is taken; false if the spool is closing and
/// the store kept failing for `patience` (the rest is left to the next start).
fn store<A>(shared: &Shared, apply: &mut A, batch: &[Record], flush: bool, patience: Duration) -> bool
where
    A: FnMut(&[Record], bool) -> Result<(), String>,
{
    let mut pause = RETRY_FIRST;
    let mut closing_since: Option<Instant> = None;
    loop {
        match apply(batch, flush) {
            Ok(()) => return true,
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "spooled messages not stored yet; retrying");
                let closed = shared.state.lock().map(|s| s.closed).unwrap_or(true);
                if closed {
                    if closing_since.get_or_insert_with(Instant::now).elapsed() >= patience {
                        return false;
                    }
                } else {
                    closing_since = None;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(RETRY_CAP);
            }
        }
    }
}
