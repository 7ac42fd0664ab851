//! The spool's flusher thread. It takes whatever sessions queued, frames it with
//! sequence numbers, writes it at the end of the current segment with one durable write,
//! answers the sessions and hands the group to the applier (in memory, or where it lies
//! once much waits: `spill`). It rotates to the next zero-filled segment (made in the
//! background) and deletes segments the store holds.
//!
//! One thread: the disk takes several flushes at a time (5,500 flushes/s from one
//! thread, 8,100 from two, 12,100 from four on the build VM), but with two or three
//! flushers each flush was slower (0.20-0.24 -> 0.29-0.32 ms), groups smaller, and
//! LMTP at 8 sessions did not gain (docs/performance.md).
//!
//! A failed write or sync is final (the kernel may have dropped the pages):
//! every later append fails until the process restarts, as for the WAL. Recovery
//! ([`super::record::read_all`]) finds every intact record even past a damaged one.

use super::apply::Durable;
use super::segment::{self, Segment};
use super::spill::Span;
use super::{record, Entry, Shared, SpoolError};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a flusher sleeps with nothing queued before looking for segments to delete.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Largest write buffer kept between groups.
const BUFFER_KEEP_BYTES: usize = 4 << 20;

/// The end of the spool: the segment written to and what comes next, owned by the
/// flusher thread and handed back when it ends.
pub(super) struct Writing {
    pub(super) dir: PathBuf,
    current: Segment,
    spare: Option<JoinHandle<std::io::Result<Segment>>>,
    /// Segments written to the end, oldest first: (number, last sequence number).
    full: VecDeque<(u64, u64)>,
    pub(super) next_seq: u64,
    failed: Option<String>,
    buf: Vec<u8>,
}

impl Writing {
    /// Writing starts in `first` with sequence number `next_seq`.
    pub(super) fn new(dir: PathBuf, first: Segment, next_seq: u64) -> Writing {
        let spare = Some(prepare(&dir, first.number + 1, segment::next_size(first.capacity)));
        Writing { dir, current: first, spare, full: VecDeque::new(), next_seq, failed: None, buf: Vec::new() }
    }

    /// Every segment on disk (the spare once it is made): to delete at a clean close.
    pub(super) fn segments(&mut self) -> Vec<u64> {
        let mut out: Vec<u64> = self.full.iter().map(|(n, _)| *n).collect();
        out.push(self.current.number);
        if let Some(Ok(s)) = self.spare.take().map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("panicked")))) {
            out.push(s.number);
        }
        out
    }
}

/// The flusher thread's loop, until the spool is closed and nothing is queued; gives
/// back the writing state (for the close).
pub(super) fn flush_loop(shared: &Shared, mut w: Writing, max_held_bytes: usize, to_applier: mpsc::Sender<Durable>) -> Writing {
    while let Some(batch) = next_batch(shared, &mut w) {
        let started = Instant::now();
        let span = match write(&mut w, &batch) {
            Ok(span) => span,
            Err(e) => {
                refuse(shared, batch, e);
                continue;
            }
        };
        let took = started.elapsed();
        // The applier gets the payloads while little waits in memory, else where they lie.
        let held = shared.held_bytes.load(Ordering::SeqCst);
        let keep = held == 0 || held + span.payload_bytes <= max_held_bytes;
        if let Ok(mut s) = shared.stats.lock() {
            s.flushes += 1;
            s.records += batch.len() as u64;
            s.flush_micros += took.as_micros() as u64;
            s.direct = w.current.is_direct();
            s.spilled_records += if keep { 0 } else { span.count as u64 };
        }
        let m = crate::metrics::global();
        m.spool_flush_messages.observe(batch.len() as f64);
        m.spool_flush_seconds.observe(took.as_secs_f64());
        shared.publish_backlog();
        let mut items = Vec::with_capacity(if keep { batch.len() } else { 0 });
        for (seq, e) in (span.first..).zip(batch) {
            let _ = e.reply.send(Ok(()));
            if keep {
                items.push((seq, e.payload));
            }
        }
        let handed = if keep {
            shared.held_bytes.fetch_add(span.payload_bytes, Ordering::SeqCst);
            Durable::Held(items)
        } else {
            m.spool_read_back.fetch_add(span.count as u64, Ordering::Relaxed);
            Durable::OnDisk(span)
        };
        if to_applier.send(handed).is_err() {
            tracing::error!("spool applier stopped; records stay for the next start");
        }
    }
    w
}

/// Waits for queued entries (deleting applied segments now and then); None once the
/// spool is closed and nothing is left.
fn next_batch(shared: &Shared, writing: &mut Writing) -> Option<Vec<Entry>> {
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if !st.queue.is_empty() {
            let batch = std::mem::take(&mut st.queue);
            drop(st);
            release(shared, writing);
            return Some(batch);
        }
        if st.closed {
            return None;
        }
        st.flusher_waits = true;
        st = shared.wake.wait_timeout(st, IDLE_WAKE).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        st.flusher_waits = false;
        if st.queue.is_empty() {
            drop(st);
            release(shared, writing);
            st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Frames `batch`, writes it at the end of the spool (rotating to the next segment
/// when it would overflow) and makes it durable; returns where it lies.
fn write(w: &mut Writing, batch: &[Entry]) -> Result<Span, SpoolError> {
    if let Some(e) = &w.failed {
        return Err(SpoolError::Failed(e.clone()));
    }
    let first = w.next_seq;
    let mut buf = std::mem::take(&mut w.buf);
    buf.clear();
    for (seq, e) in (first..).zip(batch) {
        record::frame(&mut buf, seq, &e.payload);
    }
    let last = first + batch.len() as u64 - 1;
    let written = append(w, &buf, last);
    let len = buf.len();
    w.buf = if buf.capacity() > BUFFER_KEEP_BYTES { Vec::new() } else { buf };
    written?;
    w.next_seq = last + 1;
    Ok(Span {
        segment: w.current.number,
        offset: w.current.written - len as u64,
        len,
        first,
        count: batch.len(),
        payload_bytes: batch.iter().map(|e| e.payload.len()).sum(),
    })
}

/// Writes and syncs framed records ending at sequence `last` in the current segment
/// (or the next one).
fn append(w: &mut Writing, buf: &[u8], last: u64) -> Result<(), SpoolError> {
    if w.current.would_overflow(buf.len()) {
        match rotate(&w.dir, &mut w.current, &mut w.spare) {
            Ok(left) => w.full.push_back(left),
            Err(e) => {
                // No room for a new segment (disk full?): refuse this group, try again with the next.
                tracing::error!(error = %e, "spool segment not created; answering 451");
                return Err(SpoolError::Failed(e.to_string()));
            }
        }
    }
    match w.current.append(buf) {
        Ok(()) => {
            w.current.last_seq = last;
            Ok(())
        }
        Err(e) => {
            // A short write may have left part of the group, and after a failed flush the
            // kernel may have dropped pages: the disk is in doubt until restart. The
            // group's numbers are not used again (it may be on disk in part).
            let text = format!("spool segment {}: {e}", w.current.number);
            tracing::error!(error = %text, "spool write failed; refusing further messages until restart");
            w.failed = Some(text.clone());
            w.next_seq = last + 1;
            Err(SpoolError::Failed(text))
        }
    }
}

/// Answers every entry of `batch` with `error` (nothing of it was made durable).
fn refuse(shared: &Shared, batch: Vec<Entry>, error: SpoolError) {
    for e in batch {
        shared.settle(e.payload.len());
        let _ = e.reply.send(Err(error.clone()));
    }
}

/// Creates segment `number` in the background.
fn prepare(dir: &Path, number: u64, capacity: u64) -> JoinHandle<std::io::Result<Segment>> {
    let dir = dir.to_owned();
    let spawned = std::thread::Builder::new().name("rebound-segment".into()).spawn(move || Segment::create(&dir, number, capacity));
    spawned.unwrap_or_else(|e| std::thread::spawn(move || Err(e)))
}

/// Moves to the spare segment (made now if it is not ready or failed) and starts the
/// next spare; returns the number and last sequence of the segment left.
fn rotate(dir: &Path, current: &mut Segment, spare: &mut Option<JoinHandle<std::io::Result<Segment>>>) -> std::io::Result<(u64, u64)> {
    let number = current.number + 1;
    let size = segment::next_size(current.capacity);
    let ready = spare.take().and_then(|h| h.join().ok()).and_then(Result::ok);
    let next = match ready {
        Some(s) => s,
        // The spare failed: a leftover of it may exist; use a fresh number.
        None => Segment::create(dir, number + 1, size).or_else(|_| Segment::create(dir, number + 2, size))?,
    };
    let left = std::mem::replace(current, next);
    *spare = Some(prepare(dir, current.number + 1, segment::next_size(current.capacity)));
    Ok((left.number, left.last_seq))
}

/// Deletes the full segments whose every record the store holds.
fn release(shared: &Shared, w: &mut Writing) {
    let applied = shared.applied.load(Ordering::SeqCst);
    while let Some(&(number, last_seq)) = w.full.front() {
        if last_seq > applied {
            break;
        }
        if let Err(e) = segment::remove(&w.dir, number) {
            tracing::warn!(error = %e, "spool segment not removed");
            break;
        }
        w.full.pop_front();
    }
}
