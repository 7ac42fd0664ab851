//! The writer side of ingest: processed chunks, in input order, inserted through the
//! store's shared calls (`insert_message`, correlation, `insert_event` with its hooks),
//! many chunks to one transaction.

use super::checkpointer::BulkWrite;
use super::{DoneChunk, IngestError, IngestOptions, IngestSummary};
use crate::store::correlate::correlate_with_keys;
use crate::store::event::PreparedInserts;
use crate::verp::{Keys, VerpConfig};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The longest ingest holds the write lock: a `serve` sharing the database waits at
/// most this long (plus one chunk) for its own commit.
const MAX_TRANSACTION: Duration = Duration::from_millis(500);

/// Page cache of ingest's write connection (KiB): the index pages every insert touches
/// (sha256, recipients, message ids) stay in memory instead of being read back. Not
/// more: most pages a load writes hold raw messages, written once and never read, and
/// a cache large enough to keep them grows by a fresh (page-faulted, zeroed) page for
/// each. At 64 MiB the writer thread took 716 perf samples into an empty store and
/// 1,069 into one of 38 MB (corpus x30), at 16 MiB 567 and 886, at 8 MiB 530 and 939.
const CACHE_KIB: i64 = 16 * 1024;

/// Writes every chunk `order` yields, in that order; commits each `batch_messages`
/// messages (or [`MAX_TRANSACTION`]), calling `progress` after each chunk. The commits
/// are durable when this returns Ok (see [`BulkWrite`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn write_chunks(
    conn: &mut Connection,
    db: &Path,
    order: Receiver<Receiver<DoneChunk>>,
    read_all: &AtomicBool,
    inputs: &[super::Input],
    verp: &VerpConfig,
    opts: &IngestOptions,
    now: i64,
    summary: &mut IngestSummary,
    start: Instant,
    progress: &mut dyn FnMut(&IngestSummary),
) -> Result<(), IngestError> {
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    let keys = crate::verp_keys::cached(verp).map_err(crate::store::StoreError::from)?;
    let mut bulk = BulkWrite::begin(conn, db)?;
    // Into an empty store, two of the events indexes are built once at the end (after
    // `begin`: the drop is made durable with the load, not by a sync of its own).
    let deferral =
        if summary.bytes_total >= opts.defer_indexes_from_bytes { crate::store::bulk_indexes::defer_if_empty(conn)? } else { None };
    let mut times = Times::default();
    let written = write_all(conn, bulk.as_mut(), order, read_all, inputs, verp, &keys, opts, now, summary, start, progress, &mut times);
    // Rebuilt whether or not the load succeeded, and before the final sync covers it.
    let t = Instant::now();
    let restored = if deferral.is_some() { crate::store::bulk_indexes::restore(conn).map_err(IngestError::from) } else { Ok(()) };
    drop(deferral);
    let finished = bulk.map_or(Ok(()), |b| b.finish(conn));
    tracing::debug!(waited = ?times.waited, committing = ?times.committing, indexes = ?t.elapsed(), total = ?start.elapsed(), "ingest writer");
    written.and(restored).and(finished)
}

/// Where the writer's time went (debug log).
#[derive(Default)]
struct Times {
    waited: Duration,
    committing: Duration,
}

#[allow(clippy::too_many_arguments)]
fn write_all(
    conn: &Connection,
    mut bulk: Option<&mut BulkWrite>,
    order: Receiver<Receiver<DoneChunk>>,
    read_all: &AtomicBool,
    inputs: &[super::Input],
    verp: &VerpConfig,
    keys: &Keys,
    opts: &IngestOptions,
    now: i64,
    summary: &mut IngestSummary,
    start: Instant,
    progress: &mut dyn FnMut(&IngestSummary),
    times: &mut Times,
) -> Result<(), IngestError> {
    // The next chunk in input order: None once the reader is done; an error if its
    // worker stopped without answering.
    let next = |times: &mut Times| -> Result<Option<DoneChunk>, IngestError> {
        let t = Instant::now();
        let chunk = match order.recv() {
            Err(_) => Ok(None),
            Ok(rx) => rx.recv().map(Some).map_err(|_| IngestError::Worker),
        };
        times.waited += t.elapsed();
        chunk
    };
    let mut inserts = PreparedInserts::new(conn)?;
    let mut pending = next(times)?;
    let mut last_part_begun = false;
    while pending.is_some() {
        // Unchecked: the prepared statements borrow the connection for the whole run.
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let began = Instant::now();
        let stored_before = summary.stored;
        let mut in_tx = 0usize;
        let mut copy_now = false;
        while let Some(chunk) = pending.take() {
            in_tx += chunk.items.len();
            write_chunk(&tx, &mut inserts, chunk, inputs, verp, keys, now, summary)?;
            summary.elapsed_secs = start.elapsed().as_secs_f64();
            progress(summary);
            // Once the reader is done, what is left is queued or being parsed: this
            // transaction ends here, so the checkpoint thread copies it while the
            // workers finish, and the copy at close (on one thread, after everything
            // else: ~65 ms for 5,000 messages) holds only the last few chunks.
            copy_now = !last_part_begun && read_all.load(Ordering::Relaxed);
            if in_tx >= opts.batch_messages || began.elapsed() >= MAX_TRANSACTION || copy_now {
                last_part_begun |= copy_now;
                break;
            }
            pending = next(times)?;
        }
        let t = Instant::now();
        tx.commit()?;
        times.committing += t.elapsed();
        tracing::debug!(messages = in_tx, commit = ?t.elapsed(), last_part = copy_now, "ingest transaction");
        if let Some(b) = bulk.as_deref_mut().filter(|_| summary.stored > stored_before) {
            b.committed(conn)?;
            if copy_now {
                b.checkpoint_soon();
            }
        }
        if pending.is_none() {
            pending = next(times)?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_chunk(
    tx: &Transaction<'_>,
    inserts: &mut PreparedInserts<'_>,
    chunk: DoneChunk,
    inputs: &[super::Input],
    verp: &VerpConfig,
    keys: &Keys,
    now: i64,
    summary: &mut IngestSummary,
) -> Result<(), IngestError> {
    for item in chunk.items {
        summary.messages += 1;
        // The worker saw the store before this run's earlier messages were written:
        // a message repeated within the run is caught here.
        let work = match item.work {
            Some(w) if !inserts.message_exists(&item.sha256)? => w,
            _ => {
                summary.duplicates += 1;
                continue;
            }
        };
        let message_id = inserts.insert_message(&work.message)?;
        let mut events = work.events;
        correlate_with_keys(tx, verp, keys, &work.parsed, &mut events, now)?;
        if events.is_empty() {
            summary.without_records += 1;
        }
        for e in &events {
            inserts.insert_event(tx, Some(message_id), e)?;
            match summary.records_by_kind.get_mut(&e.kind) {
                Some(n) => *n += 1,
                None => {
                    summary.records_by_kind.insert(e.kind.clone(), 1);
                }
            }
        }
        summary.stored += 1;
        tracing::debug!(file = %inputs.get(item.file).map(|f| f.path.display().to_string()).unwrap_or_default(), message_id, "message stored");
    }
    summary.files += chunk.files_done;
    summary.bytes_read += chunk.bytes_read;
    for e in chunk.errors {
        summary.error(e);
    }
    Ok(())
}
