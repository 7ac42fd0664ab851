//! The spool's applier thread: it hands the store batches of durable records in
//! sequence order, gathered for up to [`GATHER`], retried until stored. Batches are
//! committed without waiting for the store's WAL flush (the spool holds them
//! durably); about once a second, and before it stops, the applier asks for a flushed
//! commit, after which the spool may delete what it covered.

use super::{record, Record, Shared, SpoolOptions};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Payloads made durable, with their sequence numbers, in order.
pub(super) type Durable = Vec<(u64, Vec<u8>)>;

/// How long the applier waits for records before it looks again (idle).
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Pause before the applier offers a failed batch again (doubling up to the cap).
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_secs(5);

/// How long the applier gathers records before it stores them (unless it has a full batch).
const GATHER: Duration = Duration::from_millis(10);

/// How often the applier asks the store for a flushed commit while it applies.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// The applier thread's loop, until every sender of `from_writer` is gone.
pub(super) fn apply_loop<A>(shared: &Shared, from_writer: mpsc::Receiver<Durable>, options: &SpoolOptions, mut apply: A)
where
    A: FnMut(&[Record], bool) -> Result<(), String>,
{
    shared.priority.enlist();
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
        shared.settle(bytes);
        shared.priority.stored(shared.publish_backlog(), shared.max_backlog_bytes);
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
