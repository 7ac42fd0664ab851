//! From a received LMTP transaction to committed rows. With the intake spool (the
//! default) the message is appended to it and the 250 follows its durable write; the
//! spool's applier then parses it and stores it ([`super::spooled`]). Without it: parse
//! and classify the message, build one `messages` row and the events for each accepted
//! recipient, and hand them to the single writer, answering once they are committed.
//! CPU work happens on the session's task (or a blocking thread for large messages) or
//! the applier, never on the writer thread.

use super::protocol::Transaction;
use crate::classify::shared::SharedClassifier;
use crate::pipeline::{self, Envelope};
use crate::store::event::{insert_event, insert_message, NewEvent, NewMessage};
use crate::store::raw::hex_sha256;
use crate::store::writer::Writer;
use std::sync::Arc;

/// Messages larger than this are prepared on a blocking thread.
const INLINE_PREPARE_BYTES: usize = 1 << 20;

/// What a delivery needs, shared by every session.
#[derive(Clone)]
pub struct Delivery {
    /// The classifier (default rules plus operator rules).
    pub classifier: Arc<SharedClassifier>,
    /// VERP settings for correlation.
    pub verp: Arc<crate::verp::VerpConfig>,
    /// The store's writer.
    pub writer: Writer,
    /// Keep the raw message (compressed) as evidence.
    pub keep_raw: bool,
    /// The intake spool: a 250 once the message is durable there (None: once its rows
    /// are committed to the store).
    pub spool: Option<crate::spool::Spool>,
}

/// The rows of one message, ready for the writer.
pub struct Prepared {
    message: NewMessage,
    parsed: crate::parse::ParsedMessage,
    events: Vec<NewEvent>,
    /// When it was received (Unix seconds; correlation's "now").
    received_at: i64,
}

impl Prepared {
    /// Stores the message and its events (correlated with the send records) in `tx`;
    /// returns the message's row id.
    pub fn store(&self, tx: &rusqlite::Transaction<'_>, verp: &crate::verp::VerpConfig) -> Result<i64, crate::store::StoreError> {
        let id = insert_message(tx, &self.message)?;
        let mut events = self.events.clone();
        crate::store::correlate::correlate_events(tx, verp, &self.parsed, &mut events, self.received_at)?;
        for e in &events {
            insert_event(tx, Some(id), e)?;
        }
        Ok(id)
    }

    /// Counts the stored message and its events in the metrics.
    pub fn count(&self) {
        let m = crate::metrics::global();
        m.message(&self.message.kind);
        for e in &self.events {
            m.event(&e.kind, &e.class);
        }
    }
}

impl Delivery {
    /// The RCPT gate when `verp.reject_invalid_verp` is on (keys read once per process).
    pub fn rcpt_gate(&self) -> Option<Arc<crate::verp::RcptGate>> {
        match crate::verp_keys::rcpt_gate(&self.verp) {
            Ok(gate) => gate.map(Arc::new),
            Err(e) => {
                // Correlation needs the same keys and answers 451 without them.
                tracing::error!(error = %e, "VERP keys unavailable: RCPT tokens not checked");
                None
            }
        }
    }

    /// Stores one transaction; true once it is durable (spooled or committed).
    pub async fn deliver(&self, t: Transaction) -> bool {
        let now = chrono::Utc::now().timestamp();
        if let Some(spool) = &self.spool {
            // Parsed and stored by the spool's applier, as a restart would.
            let payload = crate::spool::record::encode_payload(now, &t.sender, &t.recipients, &t.message);
            return match spool.append(payload).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "message not spooled; answering 451");
                    false
                }
            };
        }
        let prepared = if t.message.len() > INLINE_PREPARE_BYTES {
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.prepare(t.sender, t.recipients, &t.message, now)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "message preparation failed");
                    return false;
                }
            }
        } else {
            self.prepare(t.sender, t.recipients, &t.message, now)
        };
        let verp = self.verp.clone();
        let prepared = Arc::new(prepared);
        let rows = prepared.clone();
        match self.writer.submit(move |tx| rows.store(tx, &verp)).await {
            Ok(id) => {
                prepared.count();
                tracing::debug!(message_id = id, "message stored");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "message not stored; answering 451");
                false
            }
        }
    }

    /// The rows of a message read back from the spool (received at its `received_at`).
    pub fn prepare_spooled(&self, r: &crate::spool::Record) -> Prepared {
        self.prepare(r.sender.clone(), r.recipients.clone(), &r.message, r.received_at)
    }

    fn prepare(&self, sender: String, recipients: Vec<String>, raw: &[u8], now: i64) -> Prepared {
        let processed = pipeline::process_message(raw, &self.classifier.current());
        let mut events = Vec::new();
        for rcpt in &recipients {
            let env = Envelope { source: "lmtp".into(), recipient: rcpt.clone() };
            events.extend(pipeline::event_rows(&processed, &env, now));
        }
        let sha256 = hex_sha256(raw);
        let message = NewMessage {
            envelope_sender: sender,
            envelope_recipients: recipients,
            ..NewMessage::received(raw, sha256, "lmtp", processed.stored_kind(), self.keep_raw, now)
        };
        Prepared { message, parsed: processed.parsed, events, received_at: now }
    }
}

