//! Bytes of a message → [`ParsedMessage`]: pure, synchronous, never panics.
//!
//! The standard paths come first (RFC 3464/6522/6533 delivery-status, RFC 5965 ARF,
//! RFC 3834 auto-replies); the non-standard formats of MTA families live under `mta/`.

pub mod arf;
pub mod autoreply;
pub mod context;
pub mod dsn;
pub mod gate;
pub mod mbox;
pub mod mime;
pub mod mta;
pub mod original;
pub mod record;
pub mod text;

pub use record::{Kind, OriginalMessage, ParsedMessage, Record};

use context::Context;

/// Parses one message (RFC 5322 bytes) into its recipient reports.
pub fn parse_message(raw: &[u8]) -> ParsedMessage {
    parse_at_depth(raw, 0)
}

/// Parses a message; `depth` counts bounces found inside bounces.
fn parse_at_depth(raw: &[u8], depth: usize) -> ParsedMessage {
    let ctx = Context::build(raw);
    let (original, orig_headers) = original::original_message(&ctx);
    let mut pm = ParsedMessage { verp_candidates: original::verp_candidates(&ctx, &original), original, ..Default::default() };
    if let Some(records) = arf::parse(&ctx, &orig_headers) {
        pm.records = records;
        return pm;
    }
    // The addresses that are never the failed recipient, for every reader below.
    let exclude = mta::generic::Excluded::new(&ctx, &orig_headers);
    let mut records = dsn_records(&ctx, &exclude);
    mta::domino::refine(&ctx, &mut records);
    mta::mcafee::refine(&ctx, &mut records);
    mta::opensmtpd::refine(&ctx, &mut records);
    mta::amazonses::refine_receiving(&mut records);
    let bounce_like = mta::looks_like_bounce(&ctx);
    if records.is_empty() && bounce_like {
        records = mta::scan(&ctx, &exclude);
    }
    if records.is_empty() && bounce_like && depth < 2 {
        // A report that returns another report (a forwarded DSN): read the inner one.
        if let Some(inner) = ctx.original.as_deref() {
            let inner_pm = parse_at_depth(inner.as_bytes(), depth + 1);
            if inner_pm.records.iter().any(|r| matches!(r.kind, Kind::Bounce | Kind::Delay)) {
                records = inner_pm.records;
            }
        }
    }
    if records.is_empty() && bounce_like {
        records = mta::scan_original_to(&ctx, &orig_headers, &exclude);
    }
    mta::ezweb::refine(&ctx, &mut records);
    if depth < 2 && !records.is_empty() && records.iter().all(says_nothing_of_why) {
        complete_from_returned_report(&ctx, &mut records, depth);
    }
    if records.is_empty() {
        if let Some(r) = autoreply::parse(&ctx) {
            records.push(r);
        }
    }
    pm.records = records;
    pm
}

/// Records from the delivery-status parts, completed from the report text.
fn dsn_records(ctx: &Context, exclude: &mta::generic::Excluded) -> Vec<Record> {
    let mut out = Vec::new();
    // Some MTAs put the delivery-status fields in the text part.
    let inline: Option<&str> = (ctx.dsn.is_empty() && dsn::has_recipient_fields(&ctx.text)).then_some(ctx.text.as_str());
    // With the fields in the text, only the prose above them completes a diagnostic
    // (the fields themselves are no error text).
    let prose = inline.is_some().then(|| Context::from_text(ctx.text.get(..dsn::fields_start(&ctx.text)).unwrap_or("").to_string()));
    let report = prose.as_ref().unwrap_or(ctx);
    for part in ctx.dsn.iter().map(String::as_str).chain(inline) {
        let ds = dsn::parse(part);
        let single = ds.recipients.len() == 1;
        for mut rr in ds.recipients {
            let usable = |a: &str| a.contains('@') && !a.starts_with('@') && a.rsplit('@').next().is_some_and(|d| d.contains('.'));
            if !usable(&rr.final_recipient) && !usable(&rr.original_recipient) {
                continue;
            }
            // The report's fields are moved into the record, not copied.
            let recipient = if usable(&rr.final_recipient) {
                std::mem::take(&mut rr.final_recipient)
            } else {
                rr.original_recipient.clone()
            };
            let mut r = Record {
                kind: if rr.action.is_empty() {
                    match rr.status.get(..1) {
                        Some("4") => Kind::Delay,
                        Some("2") => Kind::Delivered,
                        _ => Kind::Bounce,
                    }
                } else {
                    Kind::from_action(&rr.action)
                },
                recipient,
                original_recipient: std::mem::take(&mut rr.original_recipient),
                action: std::mem::take(&mut rr.action),
                remote_mta: std::mem::take(&mut rr.remote_mta),
                reporting_mta: ds.reporting_mta.clone(),
                arrival_date: if rr.last_attempt_date.is_empty() { ds.arrival_date.clone() } else { std::mem::take(&mut rr.last_attempt_date) },
                diagnostic_type: std::mem::take(&mut rr.diagnostic_type),
                agent: "RFC3464".into(),
                ..Default::default()
            };
            r.provenance.push(("recipient", "Final-Recipient"));
            let mut diag = std::mem::take(&mut rr.diagnostic);
            let mut source = "Diagnostic-Code";
            // Where the code the diagnostic states stands, found once (asked below).
            let mut code = code_range(&diag);
            // The text part often holds the remote reply for this recipient; what it
            // finds there only adds to a diagnostic when it holds an enhanced code, and
            // a text without "d.d.d" anywhere cannot give one (its lines are only joined).
            if (diag.is_empty() || code.is_none() && text::is_generic_status(&rr.status)) && (diag.is_empty() || may_hold_status(&report.text)) {
                let from_text = mta::generic::scan(report, exclude.get(), std::slice::from_ref(&r.recipient), false);
                if let Some(t) = from_text.into_iter().next().filter(|t| text::status_in_text(&t.diagnostic).is_some() || diag.is_empty()) {
                    diag = if diag.is_empty() { t.diagnostic } else { format!("{diag} {}", t.diagnostic) };
                    source = "report text near the recipient";
                    code = code_range(&diag);
                }
            }
            // A specific code in the diagnostic wins over the Status field (as
            // `text::better_status` picks), found here once.
            r.status = match code.clone().and_then(|c| diag.get(c)) {
                Some(t) if !t.ends_with(".0.0") || rr.status.is_empty() => t.to_string(),
                _ => rr.status.clone(),
            };
            if !rr.status.is_empty() {
                r.provenance.push(("status", if r.status == rr.status { "Status" } else { "more specific code in the diagnostic" }));
            }
            if single && undefined_status(&rr.status) && code.is_none() {
                // The reporting MTA wrote an undefined Status (x.0.0, or x.5.0 "other
                // protocol status") as the reply it quotes has no enhanced code; one the
                // remote gave in the session transcript says more.
                if let Some(c) = transcript_status(&ctx.text) {
                    r.status = c.to_string();
                    r.provenance.push(("status", "enhanced code in the remote's replies in the session transcript"));
                }
            }
            mta::generic::fill_from_diagnostic(&mut r, &diag, source);
            if r.smtp_command.is_empty() {
                r.smtp_command = command_near(&ctx.text, &r.recipient).to_string();
            }
            // The MTA gave up retrying: said in words, or a temporary status on a
            // failed recipient that never got a reply (connection-level failures).
            // A remote reply is more specific than the MTA's giving up: the hint is
            // only given when there is none (or the reply itself says it expired).
            if mta::generic::EXPIRED.is_match(&r.diagnostic) || r.reply_code.is_none() && mta::generic::report_expired(ctx) {
                r.reason_hint = "expired".into();
                r.provenance.push(("reason_hint", "report says delivery time expired"));
            } else if r.action == "failed" && r.status.starts_with('4') && r.reply_code.is_none() {
                r.reason_hint = "expired".into();
                r.provenance.push(("reason_hint", "Action failed with a 4.x.x Status and no remote reply"));
            }
            // An X-Unix diagnostic is the exit status or message of a local delivery
            // program (a pipe, procmail, a mailbox writer): the mailer failed.
            if r.diagnostic_type == "x-unix" {
                r.reason_hint = "mailererror".into();
                r.provenance.push(("reason_hint", "Diagnostic-Code of type X-Unix (a local mailer)"));
            }
            if let Some(h) = mta::powermta::category_hint(&rr.category) {
                r.reason_hint = h.into();
                r.provenance.push(("reason_hint", "X-PowerMTA-BounceCategory"));
            }
            out.push(r);
        }
    }
    out
}

/// Where in `diag` the status code [`text::status_in_text`] picks stands.
fn code_range(diag: &str) -> Option<std::ops::Range<usize>> {
    let c = text::status_in_text(diag)?;
    // The code is a slice of `diag`: its offset is where it starts.
    let start = (c.as_ptr() as usize).checked_sub(diag.as_ptr() as usize)?;
    Some(start..start + c.len())
}

/// Whether a text may hold an enhanced status code: a class digit, a dot, one to three
/// digits, a dot and a digit ("5.1.1") stand somewhere in it. Pieces of its lines,
/// joined with spaces, hold no code when it holds none of these.
fn may_hold_status(t: &str) -> bool {
    let b = t.as_bytes();
    memchr::memchr_iter(b'.', b).any(|i| {
        if i == 0 || !matches!(b.get(i - 1), Some(b'2' | b'4' | b'5')) {
            return false;
        }
        let digits = b.get(i + 1..).unwrap_or(&[]).iter().take(4).take_while(|c| c.is_ascii_digit()).count();
        (1..=3).contains(&digits) && b.get(i + 1 + digits) == Some(&b'.') && b.get(i + 2 + digits).is_some_and(u8::is_ascii_digit)
    })
}

/// A failure record with neither a status nor a reply code: the report names the
/// recipient but not what the remote said.
fn says_nothing_of_why(r: &Record) -> bool {
    r.kind == Kind::Bounce && r.status.is_empty() && r.reply_code.is_none()
}

/// A report that says nothing of why may return a message that is itself a failure
/// report for the same recipient (a forwarded bounce, bounced again): the remote's reply
/// quoted there is the evidence there is. Its words are added to the diagnostic; the
/// status and reply code stay what this report states (none).
fn complete_from_returned_report(ctx: &Context, records: &mut [Record], depth: usize) {
    let Some(inner) = ctx.original.as_deref() else { return };
    // Only a returned body that names one of the recipients can report on them: most
    // returned messages are ordinary mail and are not parsed again.
    let body = inner.find("\n\n").and_then(|p| inner.get(p..)).unwrap_or("");
    if !records.iter().any(|r| text::contains_ci(body, &r.recipient)) {
        return;
    }
    let inner = parse_at_depth(inner.as_bytes(), depth + 1);
    for r in records.iter_mut() {
        let Some(i) = inner.records.iter().find(|i| {
            i.kind == Kind::Bounce && i.recipient.eq_ignore_ascii_case(&r.recipient) && (!i.status.is_empty() || i.reply_code.is_some())
        }) else {
            continue;
        };
        r.diagnostic = text::collapse(&format!("{} {}", r.diagnostic, i.diagnostic));
        if r.smtp_command.is_empty() {
            r.smtp_command = i.smtp_command.clone();
        }
        r.provenance.push(("diagnostic", "the returned message's own failure report for this recipient"));
    }
}

/// Whether a Status says only "other or undefined" (RFC 3463 x.0.0, x.5.0) or is absent.
fn undefined_status(s: &str) -> bool {
    s.is_empty() || s.ends_with(".0.0") || s.ends_with(".5.0")
}

/// The first specific enhanced code in the remote's replies ("<<< 421 4.7.0 ...") of a
/// session transcript in the report text.
fn transcript_status(report: &str) -> Option<&str> {
    text::prefix(report, 16 * 1024)
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("<<<"))
        .filter_map(text::status_in_text)
        .find(|c| !c.ends_with(".0.0"))
}

/// Where `addr` first stands in `text`. An address holds an '@' and a text few: only
/// where one stands is compared (no substring searcher is built for one search).
fn find_address(text: &str, addr: &str) -> Option<usize> {
    let (t, a) = (text.as_bytes(), addr.as_bytes());
    let Some(k) = memchr::memchr(b'@', a) else { return memchr::memmem::find(t, a) };
    memchr::memchr_iter(b'@', t).filter_map(|i| i.checked_sub(k)).find(|&s| t.get(s..s + a.len()) == Some(a))
}

/// The SMTP command stated in the report text just after a recipient's address.
fn command_near(report: &str, recipient: &str) -> &'static str {
    if recipient.is_empty() {
        return "";
    }
    let Some(pos) = find_address(report, recipient) else { return "" };
    text::smtp_command(text::prefix(report.get(pos..).unwrap_or(""), 600))
}

#[cfg(test)]
mod tests;
