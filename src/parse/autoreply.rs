//! RFC 3834 automatic responses and the out-of-office conventions of Exchange
//! (X-Auto-Response-Suppress, "Automatic reply:"), Gmail/Google ("Auto-Submitted",
//! vacation subjects), Apple iCloud (X-Apple-Action: VACATION) and others, with the
//! return date when the reply states one.

use super::context::Context;
use super::record::{Kind, Record};
use super::text;
use regex::Regex;
use std::sync::LazyLock;

static SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    crate::parse::text::re(r"(?i)^\s*(?:auto(?:matic|matisch)?[\s_-]?(?:reply|response|antwort|respuesta)|autoreply|out of (?:the )?office|away from (?:the )?office|on vacation|vacation|abwesenheit|absence|r[ée]ponse automatique|自動応答|自動返信|不在)").expect("regex") // ok: constant pattern, compiled by the unit tests
});
static RETURN: LazyLock<Regex> = LazyLock::new(|| {
    crate::parse::text::re(r"(?i)\b(?:return(?:ing)?|back|until|till|through|reachable again|bis|zur[üu]ck|jusqu.?(?:au|à)|retour)\b[^.\n]{0,40}?\b(\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{4}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?|\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?(?:,?\s+\d{4})?)").expect("regex") // ok: constant pattern, compiled by the unit tests
});

/// Whether the headers mark the message as an automatic reply.
pub fn is_autoreply(ctx: &Context) -> bool {
    let h = &ctx.headers;
    let auto = h.get_or_empty("auto-submitted").to_ascii_lowercase();
    if auto.starts_with("auto-replied") {
        return true;
    }
    if h.get("x-autoreply").is_some() || h.get("x-autorespond").is_some() || h.get("x-autoresponder").is_some() {
        return true;
    }
    if h.get_or_empty("x-apple-action").eq_ignore_ascii_case("vacation") {
        return true;
    }
    let prec = h.get_or_empty("precedence").to_ascii_lowercase();
    let subject = super::mime::decode_words(h.get_or_empty("subject")).into_owned();
    if prec.contains("auto_reply") || prec.contains("auto-reply") {
        return true;
    }
    SUBJECT.is_match(&subject) && (h.get("in-reply-to").is_some() || h.get("x-auto-response-suppress").is_some() || h.get("references").is_some() || !auto.is_empty())
}

/// The auto-reply record: its recipient is the address that replied.
pub fn parse(ctx: &Context) -> Option<Record> {
    if !is_autoreply(ctx) {
        return None;
    }
    let from = text::first_address(ctx.headers.get_or_empty("from"))?.to_string();
    if text::is_system_address(&from) {
        return None;
    }
    let body = text::prefix(&ctx.text, 4000);
    let return_date = return_date(body, ctx.headers.get_or_empty("date")).unwrap_or_default();
    let mut prov = vec![("recipient", "From of the auto-reply")];
    if !return_date.is_empty() {
        prov.push(("return_date", "date stated in the reply text"));
    }
    Some(Record {
        kind: Kind::Autoreply,
        recipient: from,
        diagnostic: text::prefix(&text::collapse(body), 1000).to_string(),
        return_date,
        agent: "RFC3834".into(),
        reason_hint: "vacation".into(),
        provenance: prov,
        ..Default::default()
    })
}

/// A return date stated in the text, as YYYY-MM-DD (the year taken from the Date
/// header when the text gives none).
pub fn return_date(body: &str, date_header: &str) -> Option<String> {
    let m = RETURN.captures(body)?.get(1)?.as_str().to_ascii_lowercase();
    if m.len() == 10 && m.as_bytes().get(4) == Some(&b'-') {
        return Some(m);
    }
    if let Some(d) = numeric_date(&m) {
        return Some(d);
    }
    let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let month = months.iter().position(|mo| m.contains(mo))? + 1;
    let nums: Vec<u32> = m
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let day = *nums.iter().find(|n| (1..=31).contains(*n))?;
    let year = nums.iter().copied().find(|n| *n > 1900).or_else(|| {
        date_header.split_whitespace().filter_map(|w| w.parse::<u32>().ok()).find(|n| *n > 1900)
    })?;
    Some(format!("{year:04}-{month:02}-{day:02}"))
}

/// A day-month-year date written with dots (European: day first) or slashes (day or
/// month first, decided only when one of the two is over 12), as YYYY-MM-DD.
fn numeric_date(m: &str) -> Option<String> {
    let sep = if m.contains('.') { '.' } else if m.contains('/') { '/' } else { return None };
    let nums: Vec<u32> = m.split(sep).map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    let [a, b, year] = nums[..] else { return None };
    let (day, month) = match sep {
        '.' => (a, b),
        _ if a > 12 => (a, b),
        _ if b > 12 => (b, a),
        _ => return None,
    };
    ((1..=12).contains(&month) && (1..=31).contains(&day) && year > 1900).then(|| format!("{year:04}-{month:02}-{day:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(return_date("I am away returning to the office on May 5th.", "Tue, 1 May 2018 00:00:00 +0000").as_deref(), Some("2018-05-05"));
        assert_eq!(return_date("back on 2020-01-10", "").as_deref(), Some("2020-01-10"));
        assert_eq!(return_date("nothing here", ""), None);
        assert_eq!(return_date("I am on vacation and will be back on 12/14/2026.", "").as_deref(), Some("2026-12-14"));
        assert_eq!(return_date("back on 14/12/2026", "").as_deref(), Some("2026-12-14"));
        assert_eq!(return_date("back on 03/04/2026", ""), None, "day or month first cannot be told");
        assert_eq!(return_date("Ich bin bis zum 10.12.2026 nicht im Buero.", "").as_deref(), Some("2026-12-10"));
        assert_eq!(return_date("back on 31.13.2026", ""), None);
    }
}
