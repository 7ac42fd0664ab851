//! From a received LMTP transaction to committed rows: parse and classify the message,
//! build one `messages` row and the events for each accepted recipient, and hand them
//! to the single writer. CPU work happens here (on the session's task, or a blocking
//! thread for large messages), never on the writer thread.

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
}

/// The rows of one message, ready for the writer.
struct Prepared {
    message: NewMessage,
    parsed: crate::parse::ParsedMessage,
    events: Vec<NewEvent>,
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

    /// Stores one transaction; true once it has committed.
    pub async fn deliver(&self, t: Transaction) -> bool {
        let now = chrono::Utc::now().timestamp();
        let prepared = if t.message.len() > INLINE_PREPARE_BYTES {
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.prepare(t, now)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "message preparation failed");
                    return false;
                }
            }
        } else {
            self.prepare(t, now)
        };
        let kind = prepared.message.kind.clone();
        let counts: Vec<(String, String)> = prepared.events.iter().map(|e| (e.kind.clone(), e.class.clone())).collect();
        let verp = self.verp.clone();
        let result = self
            .writer
            .submit(move |tx| {
                let id = insert_message(tx, &prepared.message)?;
                let mut events = prepared.events.clone();
                crate::store::correlate::correlate_events(tx, &verp, &prepared.parsed, &mut events, now)?;
                for e in &events {
                    insert_event(tx, Some(id), e)?;
                }
                Ok(id)
            })
            .await;
        match result {
            Ok(id) => {
                let m = crate::metrics::global();
                m.message(&kind);
                for (k, c) in &counts {
                    m.event(k, c);
                }
                tracing::debug!(message_id = id, kind, events = counts.len(), "message stored");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "message not stored; answering 451");
                false
            }
        }
    }

    fn prepare(&self, t: Transaction, now: i64) -> Prepared {
        let processed = pipeline::process_message(&t.message, &self.classifier.current());
        let mut events = Vec::new();
        for rcpt in &t.recipients {
            let env = Envelope { source: "lmtp".into(), recipient: rcpt.clone() };
            events.extend(pipeline::event_rows(&processed, &env, now));
        }
        let sha256 = hex_sha256(&t.message);
        let message = NewMessage {
            envelope_sender: t.sender,
            envelope_recipients: t.recipients,
            ..NewMessage::received(&t.message, sha256, "lmtp", processed.stored_kind(), self.keep_raw, now)
        };
        Prepared { message, parsed: processed.parsed, events }
    }
}

