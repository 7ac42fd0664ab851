//! The records a parsed message yields: one per recipient report, plus what the
//! message says about the original it returns.

use serde::Serialize;

/// What a record reports about a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Permanent failure (Action: failed).
    Bounce,
    /// Temporary failure, still being retried (Action: delayed).
    Delay,
    /// Successful delivery notice (Action: delivered).
    Delivered,
    /// Relayed or expanded to a system that sends no DSN.
    Relayed,
    /// Out-of-office or other automatic reply (RFC 3834).
    Autoreply,
    /// Complaint or other feedback report (RFC 5965).
    Complaint,
    /// Nothing recognisable.
    #[default]
    None,
}

impl Kind {
    /// The lower-case name used in JSON output and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bounce => "bounce",
            Kind::Delay => "delay",
            Kind::Delivered => "delivered",
            Kind::Relayed => "relayed",
            Kind::Autoreply => "autoreply",
            Kind::Complaint => "complaint",
            Kind::None => "none",
        }
    }

    /// The kind implied by a DSN Action field value.
    pub fn from_action(action: &str) -> Kind {
        const KINDS: [(&str, Kind); 7] = [
            ("failed", Kind::Bounce),
            ("failure", Kind::Bounce),
            ("delayed", Kind::Delay),
            ("delivered", Kind::Delivered),
            ("deliverable", Kind::Delivered),
            ("relayed", Kind::Relayed),
            ("expanded", Kind::Relayed),
        ];
        let a = action.trim();
        KINDS.iter().find(|(n, _)| n.eq_ignore_ascii_case(a)).map_or(Kind::Bounce, |(_, k)| *k)
    }
}

/// One recipient's report, as found in a message (before classification).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Record {
    /// What this record reports.
    pub kind: Kind,
    /// The final recipient address (original recipient if that is all that is stated).
    pub recipient: String,
    /// Original-Recipient, when stated and different.
    pub original_recipient: String,
    /// DSN Action (failed, delayed, delivered, relayed, expanded) or "".
    pub action: String,
    /// Enhanced status code (RFC 3463), e.g. "5.1.1", or "".
    pub status: String,
    /// SMTP reply code, e.g. 550.
    pub reply_code: Option<u16>,
    /// The remote server's error text, white space collapsed.
    pub diagnostic: String,
    /// The Diagnostic-Code type (smtp, x-postfix, ...) or "".
    pub diagnostic_type: String,
    /// The host that returned the error.
    pub remote_mta: String,
    /// The host that wrote the report.
    pub reporting_mta: String,
    /// SMTP command the error answered (CONN, HELO, EHLO, MAIL, RCPT, DATA) or "".
    pub smtp_command: String,
    /// Arrival-Date or Last-Attempt-Date as written, or "".
    pub arrival_date: String,
    /// ARF Feedback-Type (abuse, opt-out, ...) or "".
    pub feedback_type: String,
    /// Auto-reply return date (ISO 8601 date) when stated, or "".
    pub return_date: String,
    /// Which parser produced this record (RFC3464, Postfix, Exim, RFC3834, ARF ...).
    pub agent: String,
    /// A reason the format itself implies (e.g. a module that knows the message means
    /// "expired"), used when the status and text do not decide.
    pub reason_hint: String,
    /// Where each field came from, for `--explain`: (field, source).
    pub provenance: Vec<(&'static str, &'static str)>,
}

/// What a bounce tells about the message it returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OriginalMessage {
    /// Message-ID of the original, without angle brackets.
    pub message_id: String,
    /// From: of the original.
    pub from: String,
    /// To: of the original.
    pub to: String,
    /// Subject: of the original.
    pub subject: String,
    /// Return-Path of the original (often the VERP address).
    pub return_path: String,
    /// List-Unsubscribe of the original.
    pub list_unsubscribe: String,
    /// X- headers of the original that may carry a send id (name, value).
    pub x_headers: Vec<(String, String)>,
}

/// Everything parsed from one message.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedMessage {
    /// Recipient reports found, in order.
    pub records: Vec<Record>,
    /// The returned original, as far as it is included.
    pub original: OriginalMessage,
    /// VERP-looking return-path addresses found in the message (original headers, body).
    pub verp_candidates: Vec<String>,
    /// Problems met while parsing (malformed parts); parsing went on.
    pub warnings: Vec<String>,
}
