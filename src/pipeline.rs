//! Message bytes → records → verdicts: the one path LMTP, milter and files share.

use crate::classify::{Classifier, Verdict};
use crate::parse::{self, Kind, ParsedMessage, Record};

/// A record with its verdict.
#[derive(Debug, Clone)]
pub struct ClassifiedRecord {
    /// What the message said.
    pub record: Record,
    /// What rebound concluded.
    pub verdict: Verdict,
}

/// The result of processing one message.
#[derive(Debug, Clone)]
pub struct ProcessedMessage {
    /// The parse result (original message, VERP candidates, warnings).
    pub parsed: ParsedMessage,
    /// One entry per record, in order.
    pub records: Vec<ClassifiedRecord>,
}

impl ProcessedMessage {
    /// The message-level kind: the kind of the first record, or none.
    pub fn kind(&self) -> Kind {
        self.records.first().map(|r| r.record.kind).unwrap_or(Kind::None)
    }
}

/// Parses and classifies one message.
pub fn process_message(raw: &[u8], classifier: &Classifier) -> ProcessedMessage {
    let mut parsed = parse::parse_message(raw);
    let records = std::mem::take(&mut parsed.records)
        .into_iter()
        .map(|record| {
            let verdict = classifier.classify(&record);
            ClassifiedRecord { record, verdict }
        })
        .collect();
    ProcessedMessage { parsed, records }
}

/// Where an event came from and what it was delivered to (the LMTP/milter envelope).
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// lmtp, milter, ingest.
    pub source: String,
    /// The RCPT TO the message was delivered to (the VERP return path), or "".
    pub recipient: String,
}

/// The event rows for one processed message, one per record (none for a message with no
/// record: its `messages` row, kind unknown, is the evidence). Correlation fields
/// (send_id, verp, verified) are left for the correlator.
pub fn event_rows(p: &ProcessedMessage, env: &Envelope, now: i64) -> Vec<crate::store::event::NewEvent> {
    use crate::store::event::NewEvent;
    p.records
        .iter()
        .map(|c| {
            let (r, v) = (&c.record, &c.verdict);
            NewEvent {
                occurred_at: now,
                source: env.source.clone(),
                envelope_recipient: env.recipient.clone(),
                recipient: r.recipient.clone(),
                kind: r.kind.as_str().to_string(),
                action: r.action.clone(),
                status: r.status.clone(),
                reply_code: r.reply_code,
                diagnostic: r.diagnostic.clone(),
                remote_mta: r.remote_mta.clone(),
                reporting_mta: r.reporting_mta.clone(),
                smtp_command: r.smtp_command.clone(),
                feedback_type: r.feedback_type.clone(),
                return_date: r.return_date.clone(),
                original_message_id: p.parsed.original.message_id.clone(),
                reason: v.reason.as_str().to_string(),
                class: v.class.as_str().to_string(),
                fault: v.fault.as_str().to_string(),
                hard: v.hard,
                rule: v.rule.clone(),
                ..Default::default()
            }
        })
        .collect()
}
