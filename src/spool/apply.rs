//! The spool's applier thread: it hands the store batches of durable records in
//! sequence order, gathered for up to [`GATHER`], retried until stored. Batches are
//! committed without waiting for the store's WAL flush (the spool holds them
//! durably); about once a second, and before it stops, the applier asks for a flushed
//! commit, after which the spool may delete what it covered. Groups the flusher left
//! on disk (`spill`) are read back when their turn comes.

use super::spill::{self, Span};
use super::{record, Record, Shared, SpoolOptions};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A group made durable, as the flusher hands it over (groups come in order).
pub(super) enum Durable {
    /// The payloads, with their sequence numbers.
    Held(Vec<(u64, Vec<u8>)>),
    /// Where the group lies in a segment.
    OnDisk(Span),
}

/// How long the applier waits for records before it looks again (idle).
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Pause before the applier offers a failed batch again (doubling up to the cap).
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_secs(5);

/// How long the applier gathers records before it stores them (unless it has a full batch).
const GATHER: Duration = Duration::from_millis(10);

/// How often the applier asks the store for a flushed commit while it applies.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// The applier thread's loop, until every sender of `from_writer` is gone; `dir` is the
/// spool directory (for groups left on disk).
pub(super) fn apply_loop<A>(shared: &Shared, from_writer: mpsc::Receiver<Durable>, dir: &Path, options: &SpoolOptions, mut apply: A)
where
    A: FnMut(&[Record], bool) -> Result<(), String>,
{
    shared.priority.enlist();
    let max_batch = options.max_apply_batch.max(1);
    let max_bytes = options.max_apply_bytes;
    let patience = options.close_patience;
    let mut waiting = Waiting::default();
    let mut reader = spill::Reader::default();
    let mut unreadable = Retry::new();
    let mut committed = shared.applied.load(Ordering::SeqCst);
    let mut flushed_at = Instant::now();
    let mut open = true;
    // When the oldest record waiting arrived.
    let mut since: Option<Instant> = None;
    while open || waiting.records > 0 {
        let unflushed = committed > shared.applied.load(Ordering::SeqCst);
        match since {
            // Gather a while: one transaction of many messages costs the store far less
            // than many of a few, and nobody waits on it (the sessions got their 250).
            // Sleep out the window and take what came in it at once, rather than being
            // woken by each group (a futex call of the flusher's every flush).
            Some(t) if open && waiting.records < max_batch => {
                if let Some(left) = GATHER.checked_sub(t.elapsed()) {
                    std::thread::sleep(left);
                }
            }
            Some(_) => {}
            None => {
                let wait = if unflushed { DURABLE_EVERY.saturating_sub(flushed_at.elapsed()) } else { IDLE_WAKE };
                match from_writer.recv_timeout(wait) {
                    Ok(group) => {
                        since = Some(Instant::now());
                        waiting.push(group, max_batch, max_bytes);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
                }
            }
        }
        loop {
            match from_writer.try_recv() {
                Ok(group) => waiting.push(group, max_batch, max_bytes),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let taken = match waiting.take(max_batch, max_bytes, dir, &mut reader) {
            Ok(taken) => {
                unreadable = Retry::new();
                taken
            }
            Err(e) => {
                tracing::error!(error = %e, "spooled messages not read back yet; retrying");
                if !unreadable.pause(shared, patience) {
                    return;
                }
                continue;
            }
        };
        let batch = taken.records;
        since = (waiting.records > 0).then(Instant::now);
        if waiting.records == 0 {
            // Nothing left to read: do not keep a segment the flusher may delete open.
            reader.close();
        }
        let flush = unflushed && flushed_at.elapsed() >= DURABLE_EVERY;
        if taken.bytes == 0 && !flush {
            continue;
        }
        let count = batch.len() as u64;
        if !store(shared, &mut apply, &batch, flush, patience) {
            return;
        }
        committed = committed.max(taken.last.unwrap_or(committed));
        if flush {
            shared.applied.fetch_max(committed, Ordering::SeqCst);
            flushed_at = Instant::now();
        }
        shared.held_bytes.fetch_sub(taken.held_bytes, Ordering::SeqCst);
        shared.settle(taken.bytes);
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
    let mut retry = Retry::new();
    loop {
        match apply(batch, flush) {
            Ok(()) => return true,
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "spooled messages not stored yet; retrying");
                if !retry.pause(shared, patience) {
                    return false;
                }
            }
        }
    }
}

/// The pauses between attempts at a step that failed (doubling up to a cap).
struct Retry {
    pause: Duration,
    closing_since: Option<Instant>,
}

impl Retry {
    fn new() -> Retry {
        Retry { pause: RETRY_FIRST, closing_since: None }
    }

    /// Sleeps before the next attempt; false instead once the spool is closing and
    /// attempts kept failing for `patience` (the rest is left to the next start).
    fn pause(&mut self, shared: &Shared, patience: Duration) -> bool {
        let closed = shared.state.lock().map(|s| s.closed).unwrap_or(true);
        if closed {
            if self.closing_since.get_or_insert_with(Instant::now).elapsed() >= patience {
                return false;
            }
        } else {
            self.closing_since = None;
        }
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(RETRY_CAP);
        true
    }
}

/// Records handed over and not yet stored, in order.
#[derive(Default)]
struct Waiting {
    groups: VecDeque<Durable>,
    /// Records in `groups`.
    records: usize,
}

/// A batch taken off [`Waiting`].
struct Taken {
    records: Vec<Record>,
    /// Payload bytes taken (what the backlog counts).
    bytes: usize,
    /// Of those, bytes that were held in memory.
    held_bytes: usize,
    /// Sequence number of the last record taken.
    last: Option<u64>,
}

impl Waiting {
    /// Adds a group; one on disk that follows the last one on disk joins it (one read)
    /// while the two fit in a batch.
    fn push(&mut self, group: Durable, max_batch: usize, max_bytes: usize) {
        match group {
            Durable::Held(items) => {
                self.records += items.len();
                self.groups.push_back(Durable::Held(items));
            }
            Durable::OnDisk(span) => {
                self.records += span.count;
                if let Some(Durable::OnDisk(last)) = self.groups.back_mut() {
                    if last.join(&span, max_batch, max_bytes) {
                        return;
                    }
                }
                self.groups.push_back(Durable::OnDisk(span));
            }
        }
    }

    /// Takes up to `max` records and about `max_bytes` of payload off the front (at
    /// least one record; a group on disk whole, read back from `dir`). A read error
    /// takes nothing unless something was taken before it.
    fn take(&mut self, max: usize, max_bytes: usize, dir: &Path, reader: &mut spill::Reader) -> std::io::Result<Taken> {
        let mut out = Taken { records: Vec::new(), bytes: 0, held_bytes: 0, last: None };
        let mut taken = 0;
        while taken < max {
            match self.groups.front_mut() {
                None => break,
                Some(Durable::Held(items)) => {
                    let mut n = 0;
                    for (seq, payload) in items.iter() {
                        if taken + n >= max || (taken + n > 0 && out.bytes + payload.len() > max_bytes) {
                            break;
                        }
                        out.bytes += payload.len();
                        out.held_bytes += payload.len();
                        out.last = Some(*seq);
                        // It was encoded by this process a moment ago: decoding cannot fail.
                        out.records.extend(record::decode_payload(*seq, payload));
                        n += 1;
                    }
                    items.drain(..n);
                    taken += n;
                    if !items.is_empty() {
                        break;
                    }
                    self.groups.pop_front();
                }
                Some(Durable::OnDisk(span)) => {
                    if taken > 0 && (taken + span.count > max || out.bytes + span.payload_bytes > max_bytes) {
                        break;
                    }
                    let read = match reader.read(dir, span) {
                        Ok(read) => read,
                        Err(_) if taken > 0 => break,
                        Err(e) => return Err(e),
                    };
                    out.bytes += span.payload_bytes;
                    out.last = Some(span.last());
                    taken += span.count;
                    out.records.extend(read);
                    self.groups.pop_front();
                }
            }
        }
        self.records -= taken;
        Ok(out)
    }
}
