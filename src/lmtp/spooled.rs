//! LMTP deliveries through the intake spool ([`crate::spool`]): at start, the messages
//! spooled before the last stop that the store lacks are stored first; from then on the
//! spool's applier stores each batch of prepared messages in one transaction, which
//! also moves the store's watermark (`spool_state.applied_seq`) past them.

use super::delivery::{Delivery, Prepared};
use crate::spool::{self, Record, Spool, SpoolError, SpoolOptions, SpoolThreads};
use std::path::Path;
use std::sync::Arc;

/// Errors starting the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpooledError {
    /// The spool directory could not be used.
    #[error("{0}")]
    Spool(#[from] SpoolError),
    /// The store refused the watermark read or the recovered messages.
    #[error("storing spooled messages: {0}")]
    Store(String),
}

/// Opens the spool of the database at `db`, stores what it holds that the store lacks,
/// and starts it; `delivery` gives the classifier and settings to prepare messages with.
pub fn start(db: &Path, delivery: &Delivery, options: SpoolOptions) -> Result<(Spool, SpoolThreads), SpooledError> {
    let applied = delivery.writer.submit_blocking(|tx| Ok(watermark(tx)?)).map_err(|e| SpooledError::Store(e.to_string()))?;
    let recovered = spool::recover(&spool::dir_for(db), applied)?;
    if recovered.pending() > 0 {
        tracing::info!(messages = recovered.pending(), "storing messages spooled before the last stop");
    }
    let (records, bytes) = (options.max_apply_batch, options.max_apply_bytes);
    recovered.replay(records, bytes, |batch| apply(delivery, batch, true).map_err(SpooledError::Store))?;
    let for_applier = delivery.clone();
    let (spool, threads) = recovered.start(options, move |batch, flush| apply(&for_applier, batch, flush))?;
    // With the spool, no session waits on the writer: it runs at the applier's priority.
    let enlist = spool.clone();
    delivery.writer.submit_blocking(move |_| {
        enlist.enlist_store_thread();
        Ok(())
    }).map_err(|e| SpooledError::Store(e.to_string()))?;
    Ok((spool, threads))
}

/// Parses and classifies a batch of spooled messages, stores them and moves the
/// watermark, in one transaction; returns once it is committed (with `flush`: durable,
/// with every earlier commit).
pub fn apply(delivery: &Delivery, batch: &[Record], flush: bool) -> Result<(), String> {
    let prepared: Vec<Prepared> = batch.iter().map(|r| delivery.prepare_spooled(r)).collect();
    let last = batch.last().map(|r| r.seq as i64);
    let verp = delivery.verp.clone();
    let prepared = Arc::new(prepared);
    let rows = prepared.clone();
    let job = move |tx: &rusqlite::Transaction<'_>| {
        for p in rows.iter() {
            p.store(tx, &verp)?;
        }
        if let Some(seq) = last {
            tx.execute(
                "INSERT INTO spool_state (id, applied_seq) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET applied_seq = max(applied_seq, excluded.applied_seq)",
                [seq],
            )?;
        }
        Ok(())
    };
    let writer = &delivery.writer;
    let stored = if flush { writer.submit_blocking(job) } else { writer.submit_blocking_unflushed(job) };
    stored.map_err(|e| e.to_string())?;
    for p in prepared.iter() {
        p.count();
    }
    Ok(())
}

/// The store's watermark: every spooled message up to it is stored.
pub fn watermark(conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
    use rusqlite::OptionalExtension;
    let seq = conn.query_row("SELECT applied_seq FROM spool_state WHERE id = 1", [], |r| r.get::<_, i64>(0)).optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}
