//! Storing a message the milter assembled: parse, classify, correlate and insert in one
//! durable transaction, exactly as the LMTP path does (source "milter", one set of
//! events per accepted bounce-domain recipient).

use super::protocol::Delivery;
use crate::classify::Classifier;
use crate::parse::ParsedMessage;
use crate::pipeline::{self, Envelope};
use crate::store::{self, correlate, event, StoreError};
use rusqlite::{Connection, Transaction};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// What storing a message produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Row id in `messages`.
    pub message_id: i64,
    /// Message-level kind stored.
    pub kind: String,
    /// Number of events inserted.
    pub events: usize,
}

/// Something that commits a delivery durably (called from a blocking thread).
pub trait Recorder: Send + Sync + 'static {
    /// Stores the message and its events; Ok only once committed.
    fn record(&self, delivery: &Delivery) -> Result<Recorded, StoreError>;
}

/// The rows of one delivery, parsed and classified, ready for a transaction.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The `messages` row.
    pub message: event::NewMessage,
    /// What the parser found (for correlation).
    pub parsed: ParsedMessage,
    /// The event rows before correlation.
    pub events: Vec<event::NewEvent>,
}

/// Parses and classifies a delivery into its rows (CPU only, no I/O).
pub fn prepare(d: &Delivery, classifier: &Classifier, now: i64) -> Prepared {
    let processed = pipeline::process_message(&d.raw, classifier);
    let mut events = Vec::new();
    for rcpt in &d.recipients {
        let envelope = Envelope { source: "milter".into(), recipient: rcpt.clone() };
        events.extend(pipeline::event_rows(&processed, &envelope, now));
    }
    let kind = match processed.records.first() {
        Some(r) => r.record.kind.as_str(),
        None => "unknown",
    };
    let message = event::NewMessage {
        received_at: now,
        source: "milter".into(),
        envelope_sender: d.sender.clone(),
        envelope_recipients: d.recipients.clone(),
        sha256: data_encoding::HEXLOWER.encode(&Sha256::digest(&d.raw)),
        kind: kind.to_string(),
        size_bytes: i64::try_from(d.raw.len()).unwrap_or(i64::MAX),
        raw_deflated: deflate(&d.raw),
    };
    Prepared { message, parsed: processed.parsed, events }
}

/// Inserts prepared rows (message, correlated events) inside the caller's transaction.
pub fn write(tx: &Transaction<'_>, verp: &crate::verp::VerpConfig, p: &Prepared, now: i64) -> Result<Recorded, StoreError> {
    let message_id = event::insert_message(tx, &p.message)?;
    let mut events = p.events.clone();
    correlate::correlate_events(tx, verp, &p.parsed, &mut events, now)?;
    for e in &events {
        event::insert_event(tx, Some(message_id), e)?;
    }
    Ok(Recorded { message_id, kind: p.message.kind.clone(), events: events.len() })
}

/// The recorder on an SQLite connection of its own (WAL, synchronous=FULL).
pub struct SqliteRecorder {
    conn: Mutex<Connection>,
    classifier: Classifier,
    verp: crate::verp::VerpConfig,
}

impl SqliteRecorder {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path, classifier: Classifier, verp: crate::verp::VerpConfig) -> Result<SqliteRecorder, StoreError> {
        Ok(SqliteRecorder { conn: Mutex::new(store::open(path)?), classifier, verp })
    }
}

impl Recorder for SqliteRecorder {
    fn record(&self, delivery: &Delivery) -> Result<Recorded, StoreError> {
        let now = chrono::Utc::now().timestamp();
        let prepared = prepare(delivery, &self.classifier, now);
        // A panic in another session while holding the lock leaves the connection usable:
        // SQLite rolls back the unfinished transaction when it is dropped.
        let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = conn.transaction()?;
        let recorded = write(&tx, &self.verp, &prepared, now)?;
        tx.commit()?;
        Ok(recorded)
    }
}

/// Raw deflate at a fast level: evidence, not archive.
fn deflate(raw: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::with_capacity(raw.len() / 3 + 64), flate2::Compression::fast());
    enc.write_all(raw).ok()?;
    enc.finish().ok()
}
