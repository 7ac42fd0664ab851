//! Synchronous rejects: what an SMTP server answered an app (or its MTA) at send time.
//! They are classified like asynchronous bounces and stored as `events` (source reject).
//!
//! Trust: the app is the authority for its own sends, so a reject with no send id is
//! verified; one naming a send id is verified only when that send exists and was to
//! the same recipient.

use super::event::{insert_event, NewEvent};
use super::sends::get_send;
use super::StoreError;
use crate::classify::{Classifier, Verdict};
use crate::parse::{Kind, Record};
use rusqlite::Transaction;

/// One synchronous reject as an app reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reject {
    /// The address that was refused.
    pub recipient: String,
    /// SMTP reply code, e.g. 550.
    pub reply_code: Option<u16>,
    /// Enhanced status code, e.g. 5.1.1.
    pub status: String,
    /// The server's text.
    pub text: String,
    /// The SMTP command it answered (RCPT, DATA, ...).
    pub smtp_command: String,
    /// The server that answered.
    pub remote_mta: String,
    /// The send it belongs to, when the app knows it.
    pub send_id: Option<String>,
    /// When it happened (Unix seconds); None: now.
    pub time: Option<i64>,
}

/// The parser-shaped record for a reject: a bounce for 5xx, a delay for 4xx.
pub fn reject_record(r: &Reject) -> Record {
    let first = r
        .reply_code
        .map(|c| c / 100)
        .or_else(|| r.status.trim().chars().next().and_then(|c| c.to_digit(10)).map(|d| d as u16));
    let (kind, action) = match first {
        Some(4) => (Kind::Delay, "delayed"),
        Some(2) => (Kind::Delivered, "delivered"),
        _ => (Kind::Bounce, "failed"),
    };
    Record {
        kind,
        recipient: r.recipient.trim().to_string(),
        action: action.into(),
        status: r.status.trim().to_string(),
        reply_code: r.reply_code,
        diagnostic: r.text.split_whitespace().collect::<Vec<_>>().join(" "),
        diagnostic_type: "smtp".into(),
        remote_mta: r.remote_mta.trim().to_string(),
        // Most rejects answer RCPT; an app that knows better says so.
        smtp_command: match r.smtp_command.trim() {
            "" => "RCPT".into(),
            c => c.to_ascii_uppercase(),
        },
        agent: "reject".into(),
        ..Default::default()
    }
}

/// The event row for a classified reject (verification left to [`insert_reject`]).
pub fn reject_event(rec: &Record, v: &Verdict, send_id: Option<String>, at: i64) -> NewEvent {
    NewEvent {
        occurred_at: at,
        source: "reject".into(),
        recipient: rec.recipient.clone(),
        kind: rec.kind.as_str().into(),
        action: rec.action.clone(),
        status: rec.status.clone(),
        reply_code: rec.reply_code,
        diagnostic: rec.diagnostic.clone(),
        remote_mta: rec.remote_mta.clone(),
        smtp_command: rec.smtp_command.clone(),
        reason: v.reason.as_str().into(),
        class: v.class.as_str().into(),
        fault: v.fault.as_str().into(),
        hard: v.hard,
        rule: v.rule.clone(),
        send_id,
        ..Default::default()
    }
}

/// Classifies and stores one reject in the caller's transaction; returns the event id
/// and the event as stored.
pub fn insert_reject(
    tx: &Transaction<'_>,
    classifier: &Classifier,
    r: &Reject,
    now: i64,
) -> Result<(i64, NewEvent), StoreError> {
    let rec = reject_record(r);
    let verdict = classifier.classify(&rec);
    let send_id = r.send_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let mut e = reject_event(&rec, &verdict, send_id.map(str::to_string), r.time.unwrap_or(now));
    e.verified = match send_id {
        None => true,
        Some(id) => match get_send(tx, id)? {
            Some(s) => {
                e.send_id = Some(s.id);
                s.recipient.trim().eq_ignore_ascii_case(e.recipient.trim())
            }
            None => false,
        },
    };
    let id = insert_event(tx, None, &e)?;
    Ok((id, e))
}
