//! RFC 3464 / RFC 6522 delivery-status field groups (and RFC 6533's
//! message/global-delivery-status, whose fields may hold UTF-8): one per-message group
//! followed by per-recipient groups. Tolerant of the usual damage: missing blank lines
//! between groups, unindented continuations, `<addr>` without an address type.

use super::text;
use std::borrow::Cow;

/// The per-message fields.
#[derive(Debug, Default, Clone)]
pub struct DeliveryStatus {
    /// Reporting-MTA host.
    pub reporting_mta: String,
    /// Arrival-Date as written.
    pub arrival_date: String,
    /// One entry per recipient group.
    pub recipients: Vec<RecipientReport>,
}

/// One per-recipient field group.
#[derive(Debug, Default, Clone)]
pub struct RecipientReport {
    /// Final-Recipient address (type stripped).
    pub final_recipient: String,
    /// Original-Recipient address (type stripped).
    pub original_recipient: String,
    /// Action, lower case.
    pub action: String,
    /// Status code as stated (d.d.d), "" if absent or malformed.
    pub status: String,
    /// Remote-MTA host (type stripped).
    pub remote_mta: String,
    /// Diagnostic-Code type (smtp, x-postfix ...), lower case.
    pub diagnostic_type: String,
    /// Diagnostic-Code text, white space collapsed.
    pub diagnostic: String,
    /// Last-Attempt-Date as written.
    pub last_attempt_date: String,
    /// A vendor's bounce category field (X-PowerMTA-BounceCategory), lower case.
    pub category: String,
}

/// One "Name: value" line: the name (letters, digits, '-', '_') and the rest after the
/// colon (blanks between the name and the colon allowed).
fn field(line: &str) -> Option<(&str, &str)> {
    let b = line.as_bytes();
    // Plain loops: an iterator chain with `take_while(..).count()` costs twice the
    // instructions a byte here.
    let mut n = 0;
    while b.get(n).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_') {
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let mut colon = n;
    while matches!(b.get(colon), Some(b' ' | b'\t')) {
        colon += 1;
    }
    if b.get(colon) != Some(&b':') {
        return None;
    }
    Some((line.get(..n)?, line.get(colon + 1..)?))
}

/// A field: lower-case name and unfolded value, borrowed from the body where they
/// stand as written (most fields: no allocation).
pub type Field<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Appends a continuation line to a value (copying it out of the body first).
fn continue_value(v: &mut Cow<'_, str>, more: &str) {
    let v = v.to_mut();
    v.push(' ');
    v.push_str(more);
}

/// Unfolds field lines into (lower-case name, value) pairs, in order.
pub fn fields(body: &str) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    each_field(body, |name, value| {
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) { Cow::Owned(name.to_ascii_lowercase()) } else { Cow::Borrowed(name) };
        out.push((name, value));
    });
    out
}

/// Calls `f` with each unfolded field, in order: its name as written (ASCII, any
/// case; "" for a blank line) and its value. A field is handed on once the next line
/// shows it is complete (no list is built).
fn each_field<'a>(body: &'a str, mut f: impl FnMut(&'a str, Cow<'a, str>)) {
    let mut last: Option<(&'a str, Cow<'a, str>)> = None;
    for line in body.lines().take(10_000).map(str::trim_end) {
        let line = if line.starts_with("  ") && field(line.trim_start()).is_some_and(|(n, _)| is_dsn_field(n)) { line.trim_start() } else { line };
        // (Trimmed at the end already: empty when it was blank.)
        if line.is_empty() {
            if let Some((n, v)) = last.replace(("", Cow::Borrowed(""))) {
                f(n, v);
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((n, v)) = last.as_mut() {
                if !n.is_empty() && v.len() < 8192 {
                    continue_value(v, line.trim());
                }
            }
            continue;
        }
        match field(line) {
            Some((name, value)) => {
                if let Some((n, v)) = last.replace((name, Cow::Borrowed(value.trim()))) {
                    f(n, v);
                }
            }
            None => {
                // An unindented continuation of a Diagnostic-Code (common damage).
                if let Some((n, v)) = last.as_mut() {
                    if n.eq_ignore_ascii_case("diagnostic-code") && v.len() < 8192 {
                        continue_value(v, line.trim());
                    }
                }
            }
        }
    }
    if let Some((n, v)) = last {
        f(n, v);
    }
}

/// Whether a name is one of the delivery-status fields (used for indented copies).
fn is_dsn_field(name: &str) -> bool {
    ["final-recipient", "original-recipient", "action", "status", "remote-mta", "diagnostic-code", "reporting-mta", "last-attempt-date"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
}

/// Strips an address-type or MTA-name-type prefix ("rfc822; ", "dns; ").
fn strip_type(v: &str) -> &str {
    match v.split_once(';') {
        Some((_, rest)) => rest.trim(),
        None => v.trim(),
    }
}

/// Whether a text holds per-recipient delivery-status fields at line starts.
pub fn has_recipient_fields(text: &str) -> bool {
    // Most texts name neither field anywhere: one search says so without a line walk.
    if !text::contains_ci(text, "recipient:") {
        return false;
    }
    text.lines().take(2000).any(|l| {
        let l = l.trim_start();
        l.len() > 16 && (l.get(..16).is_some_and(|p| p.eq_ignore_ascii_case("final-recipient:")) || l.get(..19).is_some_and(|p| p.eq_ignore_ascii_case("original-recipient:")))
    })
}

/// Byte offset of the first delivery-status field line in a text (its length if none).
pub fn fields_start(text: &str) -> usize {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if field(line.trim_start()).is_some_and(|(n, _)| n.eq_ignore_ascii_case("reporting-mta") || is_dsn_field(n)) {
            return at;
        }
        at += line.len();
    }
    text.len()
}

/// The fields [`parse`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Blank,
    ReportingMta,
    ArrivalDate,
    FinalRecipient,
    OriginalRecipient,
    ActualRecipient,
    Action,
    Status,
    RemoteMta,
    DiagnosticCode,
    Category,
    LastAttemptDate,
    Other,
}

/// The field a name (any case) stands for.
fn name_of(n: &str) -> Name {
    const NAMES: [(&str, Name); 11] = [
        ("reporting-mta", Name::ReportingMta),
        ("arrival-date", Name::ArrivalDate),
        ("final-recipient", Name::FinalRecipient),
        ("original-recipient", Name::OriginalRecipient),
        ("x-actual-recipient", Name::ActualRecipient),
        ("action", Name::Action),
        ("status", Name::Status),
        ("remote-mta", Name::RemoteMta),
        ("diagnostic-code", Name::DiagnosticCode),
        ("x-powermta-bouncecategory", Name::Category),
        ("last-attempt-date", Name::LastAttemptDate),
    ];
    if n.is_empty() {
        return Name::Blank;
    }
    NAMES.iter().find(|(k, _)| k.len() == n.len() && k.eq_ignore_ascii_case(n)).map_or(Name::Other, |(_, v)| *v)
}

/// Parses a delivery-status body.
pub fn parse(body: &str) -> DeliveryStatus {
    let mut ds = DeliveryStatus::default();
    let mut cur: Option<RecipientReport> = None;
    each_field(body, |name, value| {
        match name_of(name) {
            Name::Blank => {
                if let Some(r) = cur.take() {
                    push(&mut ds, r);
                }
            }
            Name::ReportingMta => ds.reporting_mta = strip_type(&value).to_string(),
            Name::ArrivalDate => ds.arrival_date = value.into_owned(),
            n @ (Name::FinalRecipient | Name::OriginalRecipient | Name::ActualRecipient) => {
                let addr = text::clean_address(&value);
                let r = cur.get_or_insert_with(RecipientReport::default);
                let starts_new = match n {
                    Name::FinalRecipient => !r.final_recipient.is_empty(),
                    Name::OriginalRecipient => !r.original_recipient.is_empty(),
                    _ => false,
                };
                if starts_new {
                    if let Some(done) = cur.take() {
                        push(&mut ds, done);
                    }
                }
                let r = cur.get_or_insert_with(RecipientReport::default);
                match n {
                    Name::FinalRecipient => r.final_recipient = addr,
                    Name::OriginalRecipient => r.original_recipient = addr,
                    _ => {
                        if r.final_recipient.is_empty() {
                            r.final_recipient = addr
                        }
                    }
                }
            }
            Name::Action => {
                let r = cur.get_or_insert_with(RecipientReport::default);
                r.action = value.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            }
            Name::Status => {
                let r = cur.get_or_insert_with(RecipientReport::default);
                r.status = text::enhanced_code(&value).unwrap_or("").to_string();
            }
            Name::RemoteMta => {
                let r = cur.get_or_insert_with(RecipientReport::default);
                r.remote_mta = strip_type(&value).to_string();
            }
            Name::DiagnosticCode => {
                let r = cur.get_or_insert_with(RecipientReport::default);
                let (t, v) = match value.split_once(';') {
                    Some((t, v)) if !t.contains(' ') || t.len() < 16 => (t.trim().to_ascii_lowercase(), v),
                    _ => (String::new(), value.as_ref()),
                };
                r.diagnostic_type = t;
                r.diagnostic = text::collapse(v);
            }
            Name::Category => {
                let r = cur.get_or_insert_with(RecipientReport::default);
                r.category = value.trim().to_ascii_lowercase();
            }
            Name::LastAttemptDate => {
                let r = cur.get_or_insert_with(RecipientReport::default);
                r.last_attempt_date = value.into_owned();
            }
            Name::Other => {}
        }
    });
    if let Some(r) = cur.take() {
        push(&mut ds, r);
    }
    ds
}

fn push(ds: &mut DeliveryStatus, r: RecipientReport) {
    if !r.final_recipient.is_empty() || !r.original_recipient.is_empty() {
        ds.recipients.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`field`] as it was written with iterator chains (kept to compare).
    fn field_reference(line: &str) -> Option<(&str, &str)> {
        let b = line.as_bytes();
        let n = b.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'-' || **c == b'_').count();
        if n == 0 {
            return None;
        }
        let blanks = b.get(n..)?.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
        if b.get(n + blanks) != Some(&b':') {
            return None;
        }
        Some((line.get(..n)?, line.get(n + blanks + 1..)?))
    }

    proptest::proptest! {
        #[test]
        fn field_as_before(line in "[A-Za-z0-9_ \t:;é-]{0,30}") {
            proptest::prop_assert_eq!(field(&line), field_reference(&line));
        }
    }

    #[test]
    fn two_groups() {
        let ds = parse(
            "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; a@example.jp\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <a@example.jp>:\n  unknown\n\nFinal-Recipient: rfc822; b@example.jp\nAction: delayed\nStatus: 4.4.7\n",
        );
        assert_eq!(ds.reporting_mta, "mx.example.org");
        assert_eq!(ds.recipients.len(), 2);
        assert_eq!(ds.recipients[0].diagnostic, "550 5.1.1 <a@example.jp>: unknown");
        assert_eq!(ds.recipients[1].action, "delayed");
    }

    #[test]
    fn groups_without_blank_lines() {
        let ds = parse("Final-Recipient: rfc822; a@x.jp\nAction: failed\nFinal-Recipient: rfc822; b@x.jp\nAction: failed\n");
        assert_eq!(ds.recipients.len(), 2);
    }
}
