//! One message on a worker thread: its SHA-256, and for a message not yet stored the
//! pipeline's parse and classification, the envelope read from its top header fields
//! (Delivered-To / X-Original-To as the return path, Return-Path, Date), and the
//! raw bytes compressed (LZ4, see `store::raw`), so the writer thread only inserts rows.

use crate::classify::Classifier;
use crate::parse::ParsedMessage;
use crate::pipeline::{event_rows, process_message, Envelope};
use crate::store::event::{NewEvent, NewMessage};

/// A message ready for the writer: what the worker computed from its bytes.
pub(super) struct Work {
    /// The parse result as far as correlation reads it (VERP candidates, the
    /// original's return path: `store::correlate::correlation_input`).
    pub parsed: ParsedMessage,
    /// The `messages` row.
    pub message: NewMessage,
    /// The event rows, correlation fields still empty.
    pub events: Vec<NewEvent>,
}

/// Runs the pipeline on one new message and builds its `messages` and `events` rows
/// (here rather than on the writer thread, which the workers must not wait for).
pub(super) fn prepare(raw: &[u8], sha256: String, classifier: &Classifier, keep_raw: bool, now: i64) -> Work {
    let processed = process_message(raw, classifier);
    let h = EnvelopeHeaders::scan(top_headers(raw));
    let recipient = h.delivered_to.or(h.x_original_to).unwrap_or_default();
    let sender = h.return_path.unwrap_or_default();
    let occurred_at = h
        .date
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
        .map(|d| d.timestamp())
        .filter(|t| *t > 315_532_800 && *t <= now + 86_400)
        .unwrap_or(now);
    let message = NewMessage {
        envelope_sender: sender.trim_matches(|c| c == '<' || c == '>').to_string(),
        envelope_recipients: if recipient.is_empty() { Vec::new() } else { vec![recipient.clone()] },
        ..NewMessage::received(raw, sha256, "ingest", processed.stored_kind(), keep_raw, now)
    };
    let events = event_rows(&processed, &Envelope { source: "ingest".into(), recipient }, occurred_at);
    // Only what correlation reads goes to the writer; the rest is freed here.
    Work { parsed: crate::store::correlate::correlation_input(processed.parsed), message, events }
}

pub use crate::store::raw::hex_sha256;

/// The header block of a message (up to the first empty line, at most 64 KiB).
fn top_headers(raw: &[u8]) -> &[u8] {
    let head = raw.get(..raw.len().min(64 * 1024)).unwrap_or_default();
    let end = memchr::memmem::find(head, b"\n\n")
        .or_else(|| memchr::memmem::find(head, b"\r\n\r\n"))
        .unwrap_or(head.len());
    head.get(..end).unwrap_or_default()
}

/// The top-level header fields ingest reads: where the message was delivered (the
/// return path, for correlation), its envelope sender and its date.
#[derive(Debug, Default)]
struct EnvelopeHeaders {
    delivered_to: Option<String>,
    x_original_to: Option<String>,
    return_path: Option<String>,
    date: Option<String>,
}

impl EnvelopeHeaders {
    /// One pass over a header block; the first occurrence of each field wins, unfolded.
    fn scan(headers: &[u8]) -> EnvelopeHeaders {
        let mut out = EnvelopeHeaders::default();
        let mut lines = headers.split(|&b| b == b'\n').peekable();
        while let Some(line) = lines.next() {
            let Some(colon) = memchr::memchr(b':', line) else { continue };
            let (field, rest) = line.split_at(colon);
            let slot = match field.len() {
                4 if field.eq_ignore_ascii_case(b"date") => &mut out.date,
                11 if field.eq_ignore_ascii_case(b"return-path") => &mut out.return_path,
                12 if field.eq_ignore_ascii_case(b"delivered-to") => &mut out.delivered_to,
                13 if field.eq_ignore_ascii_case(b"x-original-to") => &mut out.x_original_to,
                _ => continue,
            };
            if slot.is_some() {
                continue;
            }
            let mut value = String::from_utf8_lossy(rest.get(1..).unwrap_or_default()).trim().to_string();
            while let Some(next) = lines.peek().filter(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t')) {
                value.push(' ');
                value.push_str(String::from_utf8_lossy(next).trim());
                lines.next();
            }
            *slot = Some(value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let raw = b"Delivered-To: bounce+x@b.example\nDate: Tue, 1 Dec 2026\n  10:00:00 +0000\nDelivered-To: y\n\nDate: no\n";
        let h = EnvelopeHeaders::scan(top_headers(raw));
        assert_eq!(h.delivered_to.as_deref(), Some("bounce+x@b.example"));
        assert_eq!(h.date.as_deref(), Some("Tue, 1 Dec 2026 10:00:00 +0000"));
        assert_eq!(h.return_path, None);
    }
}
