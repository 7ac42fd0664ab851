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

    /// The message-level kind as `messages.kind` stores it ("unknown" for none).
    pub fn stored_kind(&self) -> &'static str {
        match self.kind() {
            Kind::None => "unknown",
            k => k.as_str(),
        }
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

/// The enhanced code a record reports (what `parse` prints and events store): the one
/// the report states, or the one implied by the reason when it states none (Sisimai's convention: 5.0.9xx for a permanent, 4.0.9xx for a temporary failure).
pub fn reported_status(record: &Record, verdict: &Verdict) -> String {
    let (status, kind) = (record.status.as_str(), record.kind);
    if !status.is_empty() || !matches!(kind, Kind::Bounce | Kind::Delay) {
        return status.to_string();
    }
    // Exim's "SMTP error from remote mail server after MAIL FROM" with no enhanced code:
    // the sender was refused before any recipient was tried, so Sisimai states the
    // recipient's fate as on hold (x.0.901) whatever the reason the words give.
    let exim_mail_stage =
        record.smtp_command == "MAIL" && crate::parse::text::contains_ci(&record.diagnostic, "remote mail server after mail from");
    let reason = if exim_mail_stage { "onhold" } else { verdict.reason.as_str() };
    let code = match reason {
        "undefined" => 900,
        "onhold" => 901,
        "syntaxerror" => 902,
        "filtered" => 910,
        "userunknown" => 911,
        "hostunknown" => 912,
        "hasmoved" => 916,
        "rejected" => 918,
        "norelaying" => 910,
        "suspend" => 921,
        "mailboxfull" => 922,
        "exceedlimit" => 923,
        "systemfull" => 931,
        "notaccept" => 932,
        "mesgtoobig" => 934,
        "mailererror" => 939,
        "systemerror" => 930,
        "networkerror" => 944,
        "toomanyconn" => 945,
        "expired" => 947,
        "contenterror" => 960,
        "securityerror" => 970,
        "blocked" => 971,
        "policyviolation" => 972,
        "requireptr" => 973,
        "badreputation" => 975,
        "authfailure" => 976,
        "speeding" => 977,
        "spamdetected" => 980,
        "virusdetected" => 981,
        _ => return String::new(),
    };
    let class = if kind == Kind::Delay { 4 } else { 5 };
    format!("{class}.0.{code}")
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
                status: reported_status(r, v),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_store_the_status_parse_prints() {
        let msg = "From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail\n\nThis is the mail system.\n\n<a@example.net>: host mx.example.net said: 550 mailbox full\n";
        let p = process_message(msg.as_bytes(), &Classifier::with_default_rules());
        let c = p.records.first().expect("a record");
        assert_eq!(c.record.status, "", "the report states no enhanced code");
        let shown = reported_status(&c.record, &c.verdict);
        assert!(shown.starts_with("5.0.9"), "{shown}");
        let rows = event_rows(&p, &Envelope::default(), 0);
        assert_eq!(rows.first().map(|e| e.status.as_str()), Some(shown.as_str()));
    }

    #[test]
    fn a_stated_status_is_kept() {
        let r = Record { kind: Kind::Delay, status: "4.4.7".into(), ..Default::default() };
        let v = Classifier::with_default_rules().classify(&r);
        assert_eq!(reported_status(&r, &v), "4.4.7");
    }

    #[test]
    fn exims_sender_refusal_without_a_code_is_on_hold() {
        let r = Record {
            kind: Kind::Bounce,
            smtp_command: "MAIL".into(),
            diagnostic: "SMTP error from remote mail server after MAIL FROM:<a@example.org> SIZE=1024: 550 No PTR record".into(),
            ..Default::default()
        };
        let v = Classifier::with_default_rules().classify(&r);
        assert_eq!(reported_status(&r, &v), "5.0.901");
        let rcpt = Record { smtp_command: "RCPT".into(), diagnostic: "SMTP error from remote mail server after RCPT TO:<b@example.net>: 550 No PTR record".into(), ..r };
        let v = Classifier::with_default_rules().classify(&rcpt);
        assert_ne!(reported_status(&rcpt, &v), "5.0.901");
    }
}
