//! The generic reader of human-readable bounces: the shape nearly every MTA family
//! shares. A failed address stands at the start of a line (bare, in angle brackets,
//! followed by ':' or by the error), or after a phrase such as "delivering your mail
//! to", or in an SMTP transcript ("RCPT TO:<...>"); the error text follows it. Family
//! modules only add what this cannot see.

use crate::parse::context::Context;
use crate::parse::record::{Kind, Record};
use crate::parse::text::{self, Found};
use crate::parse::gate::{Folded, Gated};
use super::lines::ReportLines;
use std::sync::LazyLock;

/// Most lines of error text taken after a recipient line.
const MAX_DIAG_LINES: usize = 12;

static LABELLED: LazyLock<Gated> = LazyLock::new(|| {
    crate::parse::text::gated(
        r"(?ix)(?:
            \b(?:final-recipient|original-recipient|recipient(?:\s+address)?|failed\s+recipient|rcpt\s+to|e-?mail\s+address|address|destinataire|empf(?:ä|ae)nger|user|mailbox)\s*(?:\(s\))?\s*[:=]\s*(?:rfc822;\s*)?[<\x22]?\s*$
          | \b(?:deliver(?:ing|ed|y)?|sent|send|message|mail|e-?mail|it|relay(?:ing|ed)?|transfer(?:ring|red)?)\s+(?:your\s+(?:mail|message|e-?mail)\s+)?to\s*:?\s*[<\x22]?\s*$
          | \b(?:addresses|address|recipients?)(?:\s*\(\w+\))?\s*[:]?\s*[<\x22]?\s*$
          | \bfor\s+<$
          | \bRCPT\s+TO:?\s*<?$
          | \buser\s+[<\x22]?$
          | \bto\s+[<\x22]$
        )",
    )
    .expect("regex") // ok: constant pattern, compiled by the unit tests
});

/// A transcript line that starts with a reply code: "550 <addr>... User unknown".
static REPLY_LED: LazyLock<Gated> = LazyLock::new(|| crate::parse::text::gated(r"^\s*(?:<<<\s*)?[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s+)?<$").expect("regex")); // ok: constant pattern, compiled by the unit tests

/// Phrases saying delivery is still being retried (lower case; matched ignoring case).
const DELAY_PATTERN: &str = r"(?i)\b(?:will (?:continue|keep) (?:trying|to try)|still (?:trying|be retried)|has not yet been delivered|not been delivered yet|delivery is delayed|delivery (?:has been )?delayed|could not send message for past|delayed mail|will retry|will be retried|warning: message .* delayed|will keep trying|still undelivered|this is a warning message only)";

/// Phrases saying the MTA gave up after retrying for its queue lifetime (lower case).
const EXPIRED_PATTERN: &str = r"(?i)retry time not reached for any host|retry timeout exceeded|message (?:has )?timed out|delivery time expired|been in the queue too long|too long in the queue|could not be delivered (?:with|for|in) (?:the last )?\d+ (?:days|hours)|could not deliver for the last \d+|all hosts have been failing for a long time|still undelivered after \d+|undeliverable for \d+|delivery failed \d+ attempts|envelope expired|message expired|expired after|queue expired|time limit exceeded|delivery attempts? (?:has |have )?(?:failed|expired) for \d+";

static DELAY: LazyLock<Folded> = LazyLock::new(|| crate::parse::text::folded(DELAY_PATTERN).expect("regex")); // ok: constant pattern, compiled by the unit tests

/// Phrases saying the MTA gave up after retrying for its queue lifetime.
pub static EXPIRED: LazyLock<Folded> = LazyLock::new(|| crate::parse::text::folded(EXPIRED_PATTERN).expect("regex")); // ok: constant pattern, compiled by the unit tests

/// [`DELAY_PATTERN`] and [`EXPIRED_PATTERN`] without their `i` flag, for text already
/// lower-cased (ASCII): the same matches, as `gate::Folded` reasons.
static DELAY_LOWER: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| lower_regex(DELAY_PATTERN));
static EXPIRED_LOWER: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| lower_regex(EXPIRED_PATTERN));

/// Compiled without Unicode classes: it only runs over ASCII text, where `\s`, `\d`
/// and `.` mean the same, and the lazy DFA has a far smaller automaton to build from.
fn lower_regex(pattern: &str) -> Option<regex::bytes::Regex> {
    regex::bytes::RegexBuilder::new(&pattern.strip_prefix("(?i)")?.replace("\\b", "(?-u:\\b)")).unicode(false).build().ok()
}

/// Whether `before` (the text before an address on its line) is [`REPLY_LED`]: the
/// pattern ends in "<" at the end of the text, so only such text is run through it.
fn reply_led(before: &str) -> bool {
    before.ends_with('<') && REPLY_LED.is_match(before)
}

/// A recipient found in the text, and where.
struct Hit {
    addr: String,
    line: usize,
    /// Byte offset within the line just after the address.
    after: usize,
    strong: bool,
}

/// Whether a line is a recipient line: it starts with the address (after white space,
/// bullets or quotes) or a recipient phrase leads up to it.
fn classify(line: &str, f: &Found<'_>) -> Option<bool> {
    let before = line.get(..f.start).unwrap_or("");
    let short = before.trim().len() < 4;
    let lead = before.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '-' | '•' | '>' | '#' | '"' | '\'' | '<' | '(' | '[') || c.is_ascii_digit() && short);
    let lead = lead.trim_end_matches(['<', '"', '\'', ' ']);
    if lead.is_empty() {
        // "To: x" and "From: x" summaries are not recipient lines; bare addresses are.
        return Some(true);
    }
    if LABELLED.is_match(before) || reply_led(before) {
        return Some(true);
    }
    // "Some explanation: <addr>" with nothing after the address but punctuation.
    let tail = line.get(f.end..).unwrap_or("").trim_matches(|c: char| c.is_whitespace() || ">\".:;,.)]".contains(c));
    let label = before.trim_end_matches(|c: char| c.is_whitespace() || c == '<' || c == '"');
    if tail.is_empty() && label.ends_with(':') {
        let name = label.trim_end_matches(':').trim().to_ascii_lowercase();
        let summary = ["to", "cc", "bcc", "from", "sent", "date", "subject", "mail from", "reply-to", "sender", "return-path", "envelope-from", "x-postfix-sender"];
        if !summary.iter().any(|s| name == *s || name.strip_suffix(s).is_some_and(|rest| rest.ends_with(' '))) {
            return Some(false);
        }
    }
    None
}

/// Finds recipient hits in the report text.
fn hits(lines: &[&str], markers: &[bool], exclude: &[&str]) -> Vec<Hit> {
    let mut out: Vec<Hit> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if markers.get(i).copied().unwrap_or(false) && !out.is_empty() {
            break;
        }
        if memchr::memchr(b'@', line.as_bytes()).is_none() {
            continue;
        }
        let start = line.trim_start_matches(|c: char| c.is_whitespace() || c == '>');
        if ["from:", "reply-to:", "sender:", "return-path:", "message-id:", "references:", "in-reply-to:", "x-"]
            .iter()
            .any(|p| start.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
        {
            continue;
        }
        let mut addrs = text::addresses(line).peekable();
        let mut promote = false;
        while let Some(f) = addrs.next() {
            let f = &f;
            // "name@x <addr@y>": the bracketed address is the real one.
            if let Some(next) = addrs.peek() {
                let gap = line.get(f.end..next.start).unwrap_or("");
                if gap.trim() == "<" {
                    promote = true;
                    continue;
                }
            }
            let promoted = std::mem::take(&mut promote);
            if text::is_system_address(f.addr) || exclude.iter().any(|e| e.eq_ignore_ascii_case(f.addr)) {
                continue;
            }
            if let Some(strong) = if promoted { Some(true) } else { classify(line, f) } {
                if out.iter().any(|h| h.addr.eq_ignore_ascii_case(f.addr)) {
                    continue;
                }
                out.push(Hit { addr: f.addr.to_string(), line: i, after: f.end, strong });
            }
        }
    }
    out
}

/// The error text for a recipient: the rest of its line and the lines below it, up to
/// the next recipient or a paragraph break followed by unindented prose.
fn diagnostic_after(lines: &[&str], markers: &[bool], hit: &Hit, floor: usize, next_line: Option<usize>) -> String {
    let mut buf = String::new();
    let first = lines.get(hit.line).copied().unwrap_or("");
    let rest = first.get(hit.after..).unwrap_or("");
    let rest = rest.trim_start_matches(['>', '"', '\'', ':', '.', ' ', ',', ';', ')', ']']);
    // Prose before the address on its line is the error ("User's mailbox is full: <a>").
    // A lead-in phrase ("There was an error delivering your mail to <a>.") is no error
    // text: the error is in the lines below it.
    let raw_before = first.get(..hit.after.saturating_sub(hit.addr.len())).unwrap_or("");
    let transcript = raw_before.trim_start().starts_with(">>>") || text::contains_ci(raw_before, "rcpt to");
    let lead_in = rest.trim().is_empty() && !transcript && LABELLED.is_match(raw_before);
    let before = raw_before.trim().trim_end_matches(['<', '"', '\'', ' ']).trim_end_matches(':').trim();
    if before.split_whitespace().count() >= 3 && !lead_in {
        buf.push_str(before);
        buf.push(' ');
    }
    buf.push_str(rest);
    // A Sendmail transcript entry ("554 <a>... Remote protocol error") stands on one
    // line: the lines below are other entries. The remote's reply it follows ("<<< ...",
    // after the ">>> command" it answered) is its cause.
    let entry = reply_led(raw_before) && raw_before.trim_start().as_bytes().get(3) == Some(&b' ');
    if entry {
        if let Some(reply) = transcript_reply_above(lines, hit.line, floor) {
            buf.push(' ');
            buf.push_str(&reply);
        }
    }
    let stop = next_line.unwrap_or(usize::MAX);
    let mut blank = false;
    let mut taken = 0;
    for (j, line) in lines.iter().enumerate().skip(hit.line + 1) {
        if j >= stop || taken >= MAX_DIAG_LINES || markers.get(j).copied().unwrap_or(false) {
            break;
        }
        if line.trim().is_empty() {
            if !buf.trim().is_empty() {
                blank = true;
            }
            continue;
        }
        if blank && !buf.trim().is_empty() || entry && starts_transcript_entry(line) {
            break;
        }
        buf.push(' ');
        buf.push_str(line);
        taken += 1;
    }
    text::collapse(&buf)
}

/// Whether a line starts an entry of a Sendmail session transcript: a reply ("550 ...",
/// "<<< 550 ..."), a command (">>> RCPT ..."), or the host being talked to.
fn starts_transcript_entry(line: &str) -> bool {
    let l = line.trim_start();
    let b = l.as_bytes();
    l.starts_with("<<<")
        || l.starts_with(">>>")
        || text::contains_ci(text::prefix(l, 24), "while talking to")
        || b.get(..3).is_some_and(|d| d.iter().all(u8::is_ascii_digit)) && b.get(3) == Some(&b' ')
}

/// The remote's reply ("<<< ..." lines, with the ">>> command" they answer) nearest
/// above transcript line `at`, not above `floor` (the previous recipient's line).
fn transcript_reply_above(lines: &[&str], at: usize, floor: usize) -> Option<String> {
    let floor = floor.max(at.saturating_sub(12));
    let mut j = at;
    // Skip the MTA's own lines ("421 host (smtp)... Deferred") between reply and entry.
    while j > floor {
        let l = lines.get(j - 1)?.trim_start();
        if l.starts_with("<<<") {
            break;
        }
        if l.starts_with(">>>") || text::contains_ci(text::prefix(l, 24), "while talking to") || l.is_empty() {
            return None;
        }
        j -= 1;
    }
    let end = j;
    while j > floor && lines.get(j - 1).is_some_and(|l| l.trim_start().starts_with("<<<")) {
        j -= 1;
    }
    if j == end {
        return None;
    }
    if j > floor && lines.get(j - 1).is_some_and(|l| l.trim_start().starts_with(">>>")) {
        j -= 1;
    }
    Some(lines.get(j..end)?.join(" "))
}

/// The first line below `from` (before `stop` or an end marker) that carries a reply
/// or enhanced code, joined with the lines that continue it.
fn code_line_below(lines: &[&str], markers: &[bool], from: usize, stop: Option<usize>) -> Option<String> {
    let stop = stop.unwrap_or(usize::MAX).min(from + 60);
    for j in from + 1..lines.len().min(stop) {
        let l = lines.get(j)?;
        if markers.get(j).copied().unwrap_or(false) {
            return None;
        }
        if text::status_in_text(l).is_some() || text::reply_code(l.trim_start()).is_some_and(|_| l.trim_start().starts_with(|c: char| c.is_ascii_digit())) {
            let mut out = l.to_string();
            for k in j + 1..(j + 6).min(lines.len()) {
                let n = lines.get(k).copied().unwrap_or("");
                if n.trim().is_empty() || markers.get(k).copied().unwrap_or(false) {
                    break;
                }
                out.push(' ');
                out.push_str(n);
            }
            return Some(out);
        }
    }
    None
}

/// The nearest line above `at` (within a few lines, below `prev`) that starts with an
/// SMTP reply code: the error a recipient list below it shares.
fn reply_line_above(lines: &[&str], at: usize, prev: Option<usize>) -> Option<String> {
    let floor = prev.map_or(0, |p| p + 1).max(at.saturating_sub(10));
    (floor..at).rev().find_map(|j| {
        let l = lines.get(j)?.trim();
        (l.starts_with(['4', '5']) && text::reply_code(l).is_some() && l.get(..3).is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit()))).then(|| l.to_string())
    })
}

/// The paragraph of text holding line `i`.
fn paragraph(lines: &[&str], i: usize) -> String {
    let mut s = i;
    while s > 0 && lines.get(s - 1).is_some_and(|l| !l.trim().is_empty()) && i - s < 20 {
        s -= 1;
    }
    let mut e = i;
    while lines.get(e + 1).is_some_and(|l| !l.trim().is_empty()) && e - i < 20 {
        e += 1;
    }
    text::collapse(&lines.get(s..=e).map(|l| l.join(" ")).unwrap_or_default())
}

/// Addresses that are never the failed recipient: the bounce's own addressee (the
/// original sender) and the original's sender headers, read on first use (most
/// messages are decided by their delivery-status part and never ask).
pub struct Excluded<'a> {
    ctx: &'a Context,
    orig_headers: &'a crate::parse::mime::Headers,
    found: std::cell::OnceCell<Vec<&'a str>>,
}

impl<'a> Excluded<'a> {
    /// The excluded addresses of a message and its returned original's headers.
    pub fn new(ctx: &'a Context, orig_headers: &'a crate::parse::mime::Headers) -> Self {
        Excluded { ctx, orig_headers, found: std::cell::OnceCell::new() }
    }

    /// The addresses (found the first time this is asked).
    pub fn get(&self) -> &[&'a str] {
        self.found.get_or_init(|| {
            let (h, o) = (&self.ctx.headers, self.orig_headers);
            let mut ex = Vec::new();
            for v in [h.get_or_empty("to"), h.get_or_empty("from"), o.get_or_empty("from"), o.get_or_empty("return-path"), o.get_or_empty("sender")] {
                ex.extend(text::addresses(v).map(|f| f.addr));
            }
            ex
        })
    }
}

/// Bytes of the report text read as one text when nothing nearer a recipient says why.
const WHOLE: usize = 4000;

/// Reads recipient reports from the report text; `known` (X-Failed-Recipients and the
/// like) are used as the recipients when given.
pub fn scan(ctx: &Context, exclude: &[&str], known: &[String], prefer_text: bool) -> Vec<Record> {
    let rl = ReportLines::new(&ctx.text);
    let (lines, markers) = (&rl.lines[..], &rl.markers[..]);
    let mut found = hits(lines, markers, exclude);
    if found.is_empty() && known.is_empty() {
        // Tests and forwarding setups send to themselves: the excluded address may be
        // the failed one after all.
        found = hits(lines, markers, &[]);
    }
    // Where every recipient line is, so one recipient's text stops at the next one's.
    let mut lines_sorted: Vec<usize> = found.iter().map(|h| h.line).collect();
    let texts_known = known.iter().all(|k| found.iter().any(|h| h.addr.eq_ignore_ascii_case(k)));
    if !known.is_empty() && (found.is_empty() || !prefer_text || texts_known) {
        let mut keep: Vec<Hit> = Vec::new();
        for k in known {
            match found.iter().position(|h| h.addr.eq_ignore_ascii_case(k)) {
                Some(p) => keep.push(found.remove(p)),
                None => {
                    // Where does it appear at all?
                    let pos = lines.iter().position(|l| text::contains_ci(l, k));
                    let after = pos
                        .and_then(|p| lines.get(p).and_then(|l| l.to_ascii_lowercase().find(&k.to_ascii_lowercase())).map(|o| o + k.len()))
                        .unwrap_or(0);
                    keep.push(Hit { addr: k.clone(), line: pos.unwrap_or(usize::MAX), after, strong: false });
                }
            }
        }
        found = keep;
    }
    if found.is_empty() {
        return Vec::new();
    }
    let whole_cell = std::cell::OnceCell::new();
    let whole = || whole_cell.get_or_init(|| text::collapse(text::prefix(&ctx.text, WHOLE)));
    // The command the whole text states (asked per record, the same for each).
    let whole_command_cell = std::cell::OnceCell::new();
    let whole_command = || *whole_command_cell.get_or_init(|| text::smtp_command_collapsed(text::prefix(&ctx.text, WHOLE)));
    let delayed = delayed_in(ctx, &rl);
    let expired = expired_in(ctx, &rl);
    lines_sorted.extend(found.iter().map(|h| h.line));
    lines_sorted.sort_unstable();
    let mut out = Vec::new();
    for h in &found {
        let next = lines_sorted.iter().copied().find(|&l| l > h.line && l != usize::MAX);
        let floor = lines_sorted.iter().copied().filter(|&l| l < h.line).max().map_or(0, |l| l + 1);
        let mut diag = if h.line == usize::MAX { String::new() } else { diagnostic_after(lines, markers, h, floor, next) };
        let mut source = "text after the recipient";
        if text::enhanced_code(&diag).is_none() && text::reply_code(&diag).is_none() && h.line != usize::MAX {
            let p = paragraph(lines, h.line);
            let weak = diag.split_whitespace().count() < 3;
            if weak || text::enhanced_code(&p).is_some() || text::reply_code(&p).is_some() {
                diag = p;
                source = "paragraph of the recipient";
            }
        }
        if text::status_in_text(&diag).is_none() && text::reply_code(&diag).is_none() && h.line != usize::MAX {
            // The remote reply may stand a paragraph or two below ("The error that the
            // other server returned was:").
            if let Some(l) = code_line_below(lines, markers, h.line, next) {
                diag = text::collapse(&format!("{diag} {l}"));
            } else {
                // Or above it: "Could not be delivered because of / 550 5.1.1 User
                // unknown / The following recipients were affected: / addr".
                let prev = lines_sorted.iter().copied().filter(|&l| l < h.line).max();
                if let Some(l) = reply_line_above(lines, h.line, prev) {
                    diag = text::collapse(&format!("{l} {diag}"));
                    source = "reply line above the recipient list";
                }
            }
        }
        if diag.split_whitespace().count() < 2 {
            diag = whole().clone();
            source = "whole report text";
        }
        let mut r = Record {
            recipient: h.addr.clone(),
            agent: "generic".into(),
            ..Default::default()
        };
        r.provenance.push(("recipient", if h.strong { "recipient line of the report text" } else { "report text" }));
        fill_from_diagnostic(&mut r, &diag, source);
        if r.smtp_command.is_empty() {
            r.smtp_command = whole_command().to_string();
        }
        let temp = r.status.starts_with('4') || r.reply_code.is_some_and(|c| (400..500).contains(&c));
        if delayed || temp && !expired && r.status.is_empty() {
            r.kind = Kind::Delay;
            r.action = "delayed".into();
        } else {
            r.kind = Kind::Bounce;
            r.action = "failed".into();
        }
        if expired && (r.reply_code.is_none() || EXPIRED.is_match(&r.diagnostic)) {
            r.reason_hint = "expired".into();
            r.provenance.push(("reason_hint", "report says delivery time expired"));
        }
        out.push(r);
    }
    out
}

/// Whether the first 8 KiB of the report text say delivery is still being retried
/// (computed once per context).
pub fn report_delayed(ctx: &Context) -> bool {
    *ctx.head_delayed.get_or_init(|| DELAY.is_match(text::prefix(&ctx.text, HEAD)))
}

/// Whether the first 8 KiB of the report text say the MTA gave up retrying
/// (computed once per context).
pub fn report_expired(ctx: &Context) -> bool {
    *ctx.head_expired.get_or_init(|| EXPIRED.is_match(text::prefix(&ctx.text, HEAD)))
}

/// Bytes of the report text's head read for the delay and expiry phrases.
const HEAD: usize = 8 * 1024;

/// [`report_delayed`], on the lower-cased copy `rl` already holds when it can.
fn delayed_in(ctx: &Context, rl: &ReportLines<'_>) -> bool {
    *ctx.head_delayed.get_or_init(|| match (rl.lower_prefix(&ctx.text, HEAD), DELAY_LOWER.as_ref()) {
        (Some(l), Some(re)) => re.is_match(l),
        _ => DELAY.is_match(text::prefix(&ctx.text, HEAD)),
    })
}

/// [`report_expired`], on the lower-cased copy `rl` already holds when it can.
fn expired_in(ctx: &Context, rl: &ReportLines<'_>) -> bool {
    *ctx.head_expired.get_or_init(|| match (rl.lower_prefix(&ctx.text, HEAD), EXPIRED_LOWER.as_ref()) {
        (Some(l), Some(re)) => re.is_match(l),
        _ => EXPIRED.is_match(text::prefix(&ctx.text, HEAD)),
    })
}

/// Sets status, reply code, command and diagnostic from an error text.
pub fn fill_from_diagnostic(r: &mut Record, diag: &str, source: &'static str) {
    let joined = text::strip_continuation_codes(diag);
    let diag = &*joined;
    r.diagnostic = text::prefix(diag, 2000).to_string();
    r.provenance.push(("diagnostic", source));
    if r.status.is_empty() {
        if let Some(c) = text::status_in_text(diag) {
            r.status = c.to_string();
            r.provenance.push(("status", "enhanced code in the error text"));
        }
    }
    if r.reply_code.is_none() {
        r.reply_code = text::reply_code(diag);
    }
    if r.smtp_command.is_empty() {
        r.smtp_command = text::smtp_command(diag).to_string();
    }
    if r.remote_mta.is_empty() {
        // Both forms hold a '[': without one, the pattern is not run.
        let bracket = memchr::memchr(b'[', diag.as_bytes()).is_some();
        if let Some(h) = bracket.then(|| REMOTE_HOST.captures(diag)).flatten().and_then(|c| c.get(1).or_else(|| c.get(2))) {
            r.remote_mta = h.as_str().trim_end_matches('.').to_string();
            r.provenance.push(("remote_mta", "host named in the error text"));
        }
    }
}

/// "host mx.example.net [192.0.2.1]" / "mx.example.net[192.0.2.1] said:" in an error text.
static REMOTE_HOST: LazyLock<Gated> = LazyLock::new(|| {
    crate::parse::text::gated(r"(?i)\bhost\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,}\.?)\s*\[|\b([a-z0-9][a-z0-9.-]*\.[a-z]{2,})\[[0-9a-f.:]+\]\s+said").expect("regex") // ok: constant pattern, compiled by the unit tests
});
