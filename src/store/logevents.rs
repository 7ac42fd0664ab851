//! Delivery results from the MTA's log → events (source `log`): classified by the same
//! rules as DSNs, tied to the send through the VERP token in the envelope sender.

use super::event::{insert_event, NewEvent};
use super::StoreError;
use crate::classify::Classifier;
use crate::maillog::{DeliveryStatus, JoinedResult, Mta};
use crate::parse::{Kind, ParsedMessage, Record};
use rusqlite::Transaction;

/// The record the classifier sees for one logged result.
pub fn record_of(j: &JoinedResult) -> Record {
    let r = &j.result;
    let (kind, action) = match r.status {
        DeliveryStatus::Sent => (Kind::Delivered, "delivered"),
        DeliveryStatus::Deferred => (Kind::Delay, "delayed"),
        DeliveryStatus::Bounced | DeliveryStatus::Expired => (Kind::Bounce, "failed"),
    };
    let remote_said = !r.remote_host.is_empty() && r.reply_code.is_some();
    Record {
        kind,
        recipient: r.recipient.clone(),
        original_recipient: r.original_recipient.clone(),
        action: action.into(),
        status: r.dsn.clone(),
        reply_code: r.reply_code,
        diagnostic: if r.diagnostic.is_empty() { r.text.clone() } else { r.diagnostic.clone() },
        diagnostic_type: if remote_said { "smtp" } else { "x-log" }.into(),
        remote_mta: r.remote_host.clone(),
        reporting_mta: r.reporting_host.clone(),
        smtp_command: r.smtp_command.clone(),
        agent: match r.mta {
            Mta::Postfix => "Postfix log",
            Mta::Sendmail => "Sendmail log",
        }
        .into(),
        reason_hint: if r.status == DeliveryStatus::Expired { "expired".into() } else { String::new() },
        ..Default::default()
    }
}

/// The event for one logged result, or None for a message with the null sender (a
/// DSN the MTA itself is delivering, e.g. to rebound over LMTP).
pub fn event_of(j: &JoinedResult, classifier: &Classifier, now: i64) -> Option<NewEvent> {
    if j.sender.as_deref() == Some("") {
        return None;
    }
    let record = record_of(j);
    let v = classifier.classify(&record);
    Some(NewEvent {
        occurred_at: j.result.time.unwrap_or(now),
        source: "log".into(),
        envelope_recipient: j.sender.clone().unwrap_or_default(),
        recipient: record.recipient,
        kind: record.kind.as_str().into(),
        action: record.action,
        status: record.status,
        reply_code: record.reply_code,
        diagnostic: record.diagnostic,
        remote_mta: record.remote_mta,
        reporting_mta: record.reporting_mta,
        smtp_command: record.smtp_command,
        original_message_id: j.message_id.clone().unwrap_or_default(),
        reason: v.reason.as_str().into(),
        class: v.class.as_str().into(),
        fault: v.fault.as_str().into(),
        hard: v.hard,
        rule: v.rule,
        queue_id: j.result.queue_id.clone(),
        ..Default::default()
    })
}

/// Classifies, correlates and inserts logged results; returns the number of events.
pub fn insert_results(
    tx: &Transaction<'_>,
    classifier: &Classifier,
    verp: &crate::verp::VerpConfig,
    results: &[JoinedResult],
    now: i64,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for j in results {
        let Some(event) = event_of(j, classifier, now) else { continue };
        let parsed = ParsedMessage {
            verp_candidates: j.sender.iter().cloned().collect(),
            original: crate::parse::OriginalMessage {
                message_id: event.original_message_id.clone(),
                return_path: event.envelope_recipient.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut events = [event];
        super::correlate::correlate_events(tx, verp, &parsed, &mut events, now)?;
        for e in &events {
            insert_event(tx, None, e)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maillog::DeliveryResult;

    fn joined(status: DeliveryStatus, sender: Option<&str>) -> JoinedResult {
        JoinedResult {
            result: DeliveryResult {
                queue_id: "1593898E0AC".into(),
                recipient: "user1@remote.example.test".into(),
                status,
                dsn: "5.1.1".into(),
                reply_code: Some(550),
                remote_host: "127.0.0.1".into(),
                diagnostic: "550 5.1.1 User unknown".into(),
                time: Some(1000),
                ..Default::default()
            },
            sender: sender.map(str::to_string),
            message_id: Some("m1@app".into()),
        }
    }

    #[test]
    fn kinds_and_null_sender() {
        let c = Classifier::with_default_rules();
        let e = event_of(&joined(DeliveryStatus::Bounced, Some("b+s1@x")), &c, 5).unwrap();
        assert_eq!((e.kind.as_str(), e.source.as_str(), e.occurred_at), ("bounce", "log", 1000));
        assert_eq!((e.queue_id.as_str(), e.original_message_id.as_str()), ("1593898E0AC", "m1@app"));
        assert_eq!(e.envelope_recipient, "b+s1@x");
        assert_eq!(event_of(&joined(DeliveryStatus::Deferred, None), &c, 5).unwrap().kind, "delay");
        assert_eq!(event_of(&joined(DeliveryStatus::Sent, None), &c, 5).unwrap().kind, "delivered");
        assert_eq!(record_of(&joined(DeliveryStatus::Expired, None)).reason_hint, "expired");
        assert!(event_of(&joined(DeliveryStatus::Sent, Some("")), &c, 5).is_none());
    }
}
