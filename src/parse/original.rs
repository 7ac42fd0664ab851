//! The returned original message: its identifying headers, and the VERP-looking
//! return-path addresses a bounce carries (in its own envelope headers, the original's
//! Return-Path, or the body).

use super::context::Context;
use super::mime;
use super::record::OriginalMessage;
use super::text;

/// X- headers worth keeping: the ones senders use to carry a send or campaign id.
fn keep_x_header(name: &str) -> bool {
    name.starts_with("x-") && !matches!(
        name,
        "x-received" | "x-google-smtp-source" | "x-gm-message-state" | "x-mailer" | "x-originating-ip"
            | "x-ms-exchange-organization-scl" | "x-yahoo-newman-property" | "x-yahoo-newman-id"
            | "x-ymail-osg" | "x-ymail-jas" | "x-apparently-from" | "x-spam-status" | "x-virus-scanned"
    ) && !name.starts_with("x-ms-") && !name.starts_with("x-google-") && !name.starts_with("x-forefront-")
}

/// Whether a field of the original is read: the identifying ones, the sender and
/// recipient fields (`mta::generic::Excluded`, `arf`, `mta::scan_original_to`) and the
/// X- ones. A reader of another field of the original must add it here.
fn is_read(name: &[u8]) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"x-"))
        || match name.len() {
            2 => is("to"),
            4 => is("from"),
            6 => is("sender"),
            7 => is("subject"),
            10 => is("message-id"),
            11 => is("return-path"),
            16 => is("list-unsubscribe"),
            _ => false,
        }
}

/// The original's headers, when the bounce includes them, and the fields of its
/// header block that are read (see `is_read`; the Received lines and signatures,
/// most of the block, are passed over).
pub fn original_message(ctx: &Context) -> (OriginalMessage, mime::Headers) {
    let Some(orig) = ctx.original.as_deref() else {
        return (OriginalMessage::default(), mime::Headers::default());
    };
    let head = mime::header_block(orig.as_bytes());
    let h = mime::parse_headers_where(head, is_read);
    let mut o = OriginalMessage {
        message_id: h.get_or_empty("message-id").trim().trim_matches(|c| c == '<' || c == '>').to_string(),
        from: h.get_or_empty("from").to_string(),
        to: h.get_or_empty("to").to_string(),
        subject: mime::decode_words(h.get_or_empty("subject")).into_owned(),
        return_path: text::first_address(h.get_or_empty("return-path")).unwrap_or("").to_string(),
        list_unsubscribe: h.get_or_empty("list-unsubscribe").to_string(),
        x_headers: Vec::new(),
    };
    for (n, v) in h.iter() {
        // Names come as written: only an X- one is lower-cased (and kept, or not).
        if !n.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-")) || o.x_headers.len() >= 32 {
            continue;
        }
        let n = n.to_ascii_lowercase();
        if keep_x_header(&n) {
            o.x_headers.push((n, text::prefix(v, 512).to_string()));
        }
    }
    (o, h)
}

/// Addresses that may carry a VERP token: the bounce's envelope recipient headers and
/// the original's Return-Path and sender headers, those with '+' or '=' first.
pub fn verp_candidates(ctx: &Context, original: &OriginalMessage) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |v: &str| {
        // A candidate's local part holds '+' or '=', and an address is a piece of `v`:
        // a value with neither is not searched for addresses.
        if memchr::memchr2(b'+', b'=', v.as_bytes()).is_none() {
            return;
        }
        for f in text::addresses(v) {
            let local = f.addr.split('@').next().unwrap_or("");
            if (local.contains('+') || local.contains('=')) && !out.iter().any(|o| o.eq_ignore_ascii_case(f.addr)) && out.len() < 16 {
                out.push(f.addr.to_string());
            }
        }
    };
    for name in ["x-original-to", "delivered-to", "envelope-to", "to", "return-path"] {
        for v in ctx.headers.get_all(name) {
            add(v);
        }
    }
    add(&original.return_path);
    add(&original.from);
    // X-Postfix-Sender / Original-Mail-From in report parts.
    for d in &ctx.dsn {
        // (Every line without '+' or '=' adds nothing.)
        if memchr::memchr2(b'+', b'=', d.as_bytes()).is_none() {
            continue;
        }
        for line in d.lines().take(200) {
            let lc = |p: &str| line.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
            if lc("x-postfix-sender") || lc("x-original-mail-from") || lc("original-mail-from") {
                add(line);
            }
        }
    }
    out
}
