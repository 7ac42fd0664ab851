//! Storing a message the milter assembled: parse, classify, correlate and insert in one
//! durable transaction, exactly as the LMTP path does (source "milter", one set of
//! events per accepted bounce-domain recipient).

use super::protocol::Delivery;
use crate::classify::Classifier;
use crate::parse::ParsedMessage;
use crate::pipeline::{self, Envelope};
use crate::store::{correlate, event, StoreError};
use crate::store::writer::{WriteError, Writer};
use rusqlite::Transaction;
use std::sync::Arc;

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

/// Why a delivery was not committed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The database refused the rows.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writer failed or has stopped.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Something that commits a delivery durably (called from a blocking thread).
pub trait Recorder: Send + Sync + 'static {
    /// Stores the message and its events; Ok only once committed.
    fn record(&self, delivery: &Delivery) -> Result<Recorded, RecordError>;
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

/// Parses and classifies a delivery into its rows (CPU only, no I/O); the raw bytes
/// are kept, compressed, when `keep_raw`.
pub fn prepare(d: &Delivery, classifier: &Classifier, keep_raw: bool, now: i64) -> Prepared {
    let processed = pipeline::process_message(&d.raw, classifier);
    let mut events = Vec::new();
    for rcpt in &d.recipients {
        let envelope = Envelope { source: "milter".into(), recipient: rcpt.clone() };
        events.extend(pipeline::event_rows(&processed, &envelope, now));
    }
    let sha256 = crate::store::raw::hex_sha256(&d.raw);
    let message = event::NewMessage {
        envelope_sender: d.sender.clone(),
        envelope_recipients: d.recipients.clone(),
        ..event::NewMessage::received(&d.raw, sha256, "milter", processed.stored_kind(), keep_raw, now)
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

/// The recorder on the store's single writer (durable group commit).
pub struct WriterRecorder {
    writer: Writer,
    classifier: Arc<Classifier>,
    verp: Arc<crate::verp::VerpConfig>,
    keep_raw: bool,
}

impl WriterRecorder {
    /// A recorder submitting to `writer`.
    pub fn new(writer: Writer, classifier: Arc<Classifier>, verp: Arc<crate::verp::VerpConfig>) -> WriterRecorder {
        WriterRecorder { writer, classifier, verp, keep_raw: true }
    }

    /// The same recorder, keeping raw message bytes only when `keep` (`[milter] keep_raw`).
    pub fn keep_raw(mut self, keep: bool) -> WriterRecorder {
        self.keep_raw = keep;
        self
    }
}

impl Recorder for WriterRecorder {
    fn record(&self, delivery: &Delivery) -> Result<Recorded, RecordError> {
        let now = chrono::Utc::now().timestamp();
        // Parsing and classifying happen here, on the caller's blocking thread; the
        // writer thread only inserts.
        let prepared = Arc::new(prepare(delivery, &self.classifier, self.keep_raw, now));
        let verp = self.verp.clone();
        Ok(self.writer.submit_blocking(move |tx| write(tx, &verp, &prepared, now))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            queue_id: "Q1".into(),
            sender: String::new(),
            recipients: vec!["bounce@bounces.example".into()],
            raw: b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n\r\nbody\r\n".to_vec(),
        }
    }

    #[test]
    fn raw_bytes_are_kept_only_when_asked() {
        let c = Classifier::default();
        let kept = prepare(&delivery(), &c, true, 0);
        let raw = kept.message.raw.expect("raw kept");
        assert_eq!(crate::store::raw::decode(&raw.bytes, raw.encoding, 1 << 20).expect("decodes"), delivery().raw);
        let dropped = prepare(&delivery(), &c, false, 0);
        assert!(dropped.message.raw.is_none());
        assert_eq!(dropped.message.sha256, kept.message.sha256, "the digest does not depend on keeping the bytes");
    }
}
