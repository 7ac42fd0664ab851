//! Storing a message the milter assembled: parse, classify, correlate and insert in one
//! durable transaction, exactly as the LMTP path does (source "milter").

use super::protocol::Delivery;
use crate::classify::Classifier;
use crate::pipeline::{self, Envelope};
use crate::store::{self, correlate, event, StoreError};
use rusqlite::Connection;
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
        // A panic in another session while holding the lock leaves the connection usable:
        // SQLite rolls back the unfinished transaction when it is dropped.
        let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = chrono::Utc::now().timestamp();
        record_delivery(&mut conn, &self.classifier, &self.verp, delivery, now)
    }
}

/// Parses, classifies, correlates and stores one delivery in a single transaction.
pub fn record_delivery(
    conn: &mut Connection,
    classifier: &Classifier,
    verp: &crate::verp::VerpConfig,
    d: &Delivery,
    now: i64,
) -> Result<Recorded, StoreError> {
    let processed = pipeline::process_message(&d.raw, classifier);
    let envelope = Envelope { source: "milter".into(), recipient: d.recipients.first().cloned().unwrap_or_default() };
    let mut events = pipeline::event_rows(&processed, &envelope, now);
    let kind = match processed.kind() {
        crate::parse::Kind::None => "unknown",
        k => k.as_str(),
    };
    let message = event::NewMessage {
        received_at: now,
        source: "milter".into(),
        envelope_sender: d.sender.clone(),
        envelope_recipients: d.recipients.clone(),
        sha256: hex_sha256(&d.raw),
        kind: kind.to_string(),
        size_bytes: i64::try_from(d.raw.len()).unwrap_or(i64::MAX),
        raw_deflated: deflate(&d.raw),
    };
    let tx = conn.transaction()?;
    let message_id = event::insert_message(&tx, &message)?;
    correlate::correlate_events(&tx, verp, &processed.parsed, &mut events, now)?;
    for e in &events {
        event::insert_event(&tx, Some(message_id), e)?;
    }
    tx.commit()?;
    Ok(Recorded { message_id, kind: kind.to_string(), events: events.len() })
}

fn hex_sha256(raw: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(raw))
}

fn deflate(raw: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::with_capacity(raw.len() / 3), flate2::Compression::fast());
    enc.write_all(raw).ok()?;
    enc.finish().ok()
}
