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
