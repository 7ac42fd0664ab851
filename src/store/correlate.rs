//! Ties events to the send they belong to: the VERP token in the envelope recipient or
//! the returned original, verified against the keys and `sends`.
//!
//! Trust: a signed token that verifies links the event (the signature is the proof,
//! with or without a `sends` row; when the row exists its recipient must match). A
//! classic token counts only when a live send to that address exists. Anything else
//! (forged, expired, missing) leaves the event unverified, so it changes no address.

use super::event::NewEvent;
use super::sends::{get_send, latest_send_to};
use super::StoreError;
use crate::parse::{OriginalMessage, ParsedMessage};
use crate::verp::{has_prefix, parse_return_path, Keys, ReturnPath, VerpConfig, VerpError};
use rusqlite::Transaction;

/// Fills `send_id`, `verp` and `verified` of each event of one message (keys read once
/// per process from the configured key files).
pub fn correlate_events(
    tx: &Transaction<'_>,
    verp: &VerpConfig,
    parsed: &ParsedMessage,
    events: &mut [NewEvent],
    now: i64,
) -> Result<(), StoreError> {
    let keys = crate::verp_keys::cached(verp)?;
    correlate_with_keys(tx, verp, &keys, parsed, events, now)
}

/// [`correlate_events`] with keys the caller loaded.
pub fn correlate_with_keys(
    tx: &Transaction<'_>,
    verp: &VerpConfig,
    keys: &Keys,
    parsed: &ParsedMessage,
    events: &mut [NewEvent],
    now: i64,
) -> Result<(), StoreError> {
    for e in events.iter_mut() {
        // The envelope recipient first: it is what our MTA actually routed to us.
        let found = std::iter::once(e.envelope_recipient.as_str())
            .chain(parsed.verp_candidates.iter().map(String::as_str))
            .chain(std::iter::once(parsed.original.return_path.as_str()))
            .find(|a| has_prefix(a, &verp.prefix))
            .map(|a| a.trim().trim_start_matches('<').trim_end_matches('>').to_string());
        match found {
            Some(address) => correlate_one(tx, verp, keys, &address, e, now)?,
            None => e.verified = false,
        }
    }
    Ok(())
}

/// The parts of a parse result that [`correlate_with_keys`] reads (the VERP candidates
/// and the original's return path), so that a caller queueing results for a writer
/// thread (ingest) frees the rest, records and all, where they were made.
pub fn correlation_input(parsed: ParsedMessage) -> ParsedMessage {
    let original = OriginalMessage { return_path: parsed.original.return_path, ..Default::default() };
    ParsedMessage { verp_candidates: parsed.verp_candidates, original, ..Default::default() }
}

fn correlate_one(
    tx: &Transaction<'_>,
    verp: &VerpConfig,
    keys: &Keys,
    address: &str,
    e: &mut NewEvent,
    now: i64,
) -> Result<(), StoreError> {
    e.verp = address.to_string();
    e.verified = false;
    match parse_return_path(address, &verp.prefix) {
        Err(_) => {}
        Ok(ReturnPath::Signed { id, expiry_day, mac }) => match keys.verify_parts(&id, expiry_day, &mac, now) {
            Ok(v) => {
                let send = get_send(tx, &v.id)?;
                e.send_id = Some(send.as_ref().map_or(v.id, |s| s.id.clone()));
                e.verified = match send {
                    Some(s) => adopt_recipient(e, &s.recipient),
                    None => true,
                };
            }
            Err(VerpError::Expired { id, .. }) => {
                // Genuine but late: link it for reports, never act on it.
                e.send_id = Some(get_send(tx, &id)?.map_or(id, |s| s.id));
            }
            Err(_) => {}
        },
        Ok(ReturnPath::Classic { recipient }) => {
            if let Some(s) = latest_send_to(tx, &recipient, now)? {
                e.verified = adopt_recipient(e, &s.recipient);
                e.send_id = Some(s.id);
            } else if e.recipient.trim().is_empty() {
                e.recipient = recipient;
            }
        }
    }
    tracing::debug!(token = %address, verified = e.verified, send_id = ?e.send_id, "correlated");
    Ok(())
}

/// Whether the event is about the send's recipient. Complaints and reports that name no
/// recipient (ARF often redacts it) are about the address we mailed; a bounce naming a
/// different address is not trusted (a genuine token replayed with another victim).
fn adopt_recipient(e: &mut NewEvent, send_recipient: &str) -> bool {
    if e.recipient.trim().is_empty() || e.kind == "complaint" {
        e.recipient = send_recipient.to_string();
    }
    e.recipient.trim().eq_ignore_ascii_case(send_recipient.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Record;

    #[test]
    fn the_correlation_input_correlates_as_the_whole_parse_does() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        let verp = VerpConfig::default();
        let keys = Keys::new(vec![b"0123456789abcdef".to_vec()]);
        let now = 1_800_000_000;
        let signed = format!("{}@{}", keys.sign_local(&verp.prefix, "send-1", crate::verp::day_of(now) + 10).unwrap(), verp.domain);
        let parses = [
            (vec![signed.clone()], String::new()),
            (Vec::new(), format!("<{signed}>")),
            (vec!["bounce+alice=example.org@bounce.example.com".to_string()], String::new()),
            (Vec::new(), String::new()),
        ];
        for (candidates, return_path) in parses {
            let whole = ParsedMessage {
                records: vec![Record::default(), Record::default()],
                original: OriginalMessage { return_path, message_id: "m@app".into(), subject: "s".into(), ..Default::default() },
                verp_candidates: candidates,
                warnings: vec!["w".into()],
            };
            let events = || vec![NewEvent { recipient: "bob@example.net".into(), kind: "bounce".into(), ..Default::default() }];
            let (mut a, mut b) = (events(), events());
            correlate_with_keys(&tx, &verp, &keys, &whole, &mut a, now).unwrap();
            correlate_with_keys(&tx, &verp, &keys, &correlation_input(whole.clone()), &mut b, now).unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{whole:?}");
        }
    }
}
