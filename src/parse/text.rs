//! Small scanners over report text: e-mail addresses, RFC 3463 enhanced status codes,
//! SMTP reply codes, the SMTP command a reply answered, white space collapsing.
//! Byte scanning where possible; the few regexes are compiled once.

use regex::Regex;
use std::sync::LazyLock;

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-=!#$&'*/?^`{|}~".contains(&b)
}

fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'
}

/// An address found in text, with its byte range.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<'a> {
    /// Start offset of the address.
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
    /// The address as written.
    pub addr: &'a str,
}

/// Every e-mail address in `s` (local@domain.tld), in order.
pub fn find_addresses(s: &str) -> Vec<Found<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(n) = memchr::memchr(b'@', b.get(from..).unwrap_or(&[])) {
        let at = from + n;
        from = at + 1;
        let mut start = at;
        while start > 0 && b.get(start - 1).is_some_and(|&c| is_local_char(c)) {
            start -= 1;
        }
        // Leading dots or quotes are punctuation, not part of the local part.
        while start < at && matches!(b.get(start), Some(b'.') | Some(b'\'') | Some(b'`')) {
            start += 1;
        }
        let mut end = at + 1;
        while end < b.len() && b.get(end).is_some_and(|&c| is_domain_char(c)) {
            end += 1;
        }
        while end > at + 1 && matches!(b.get(end - 1), Some(b'.') | Some(b'-')) {
            end -= 1;
        }
        let domain = s.get(at + 1..end).unwrap_or("");
        if start == at || !domain.contains('.') || domain.starts_with('.') || domain.contains("..") {
            continue;
        }
        // The TLD must hold a letter (not an IP literal tail or a version number).
        if !domain.rsplit('.').next().is_some_and(|t| t.bytes().any(|c| c.is_ascii_alphabetic())) {
            continue;
        }
        if let Some(addr) = s.get(start..end) {
            out.push(Found { start, end, addr });
            from = end;
        }
    }
    out
}

/// The first address in `s`, if any.
pub fn first_address(s: &str) -> Option<&str> {
    find_addresses(s).into_iter().next().map(|f| f.addr)
}

/// Cleans an address from a DSN field ("rfc822; <a@b>" → "a@b").
pub fn clean_address(v: &str) -> String {
    let v = v.trim();
    let v = match v.split_once(';') {
        Some((t, rest)) if !t.contains('@') => rest,
        _ => v,
    };
    if let Some(a) = first_address(v) {
        return a.to_string();
    }
    v.trim().trim_matches(|c| c == '<' || c == '>' || c == '"').trim().to_string()
}

/// The longest prefix of `s` no longer than `max` bytes that ends on a char boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Collapses runs of white space to one space and trims.
pub fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

static ENHANCED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^\d.])([245]\.\d{1,3}\.\d{1,3})(?:[^\d.]|\.(?:\D|$)|$)").expect("regex"));
static REPLY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s:(\[>\x22'=]|#)([245][0-5][0-9])(?:[ \-]|$|\)|\])").expect("regex")
});

/// Every enhanced status code (RFC 3463) in `s`, in order.
pub fn enhanced_codes(s: &str) -> Vec<&str> {
    ENHANCED.captures_iter(s).filter_map(|c| c.get(1).map(|m| m.as_str())).collect()
}

/// The first plausible enhanced status code in `s`.
pub fn enhanced_code(s: &str) -> Option<&str> {
    ENHANCED.captures(s).and_then(|c| c.get(1)).map(|m| m.as_str())
}

/// The first SMTP reply code in `s` that looks like the start of a reply.
pub fn reply_code(s: &str) -> Option<u16> {
    for c in REPLY.captures_iter(s) {
        let Some(m) = c.get(1) else { continue };
        if let Ok(v) = m.as_str().parse::<u16>() {
            return Some(v);
        }
    }
    None
}

/// Whether an enhanced code says no more than its class (x.0.0).
pub fn is_generic_status(s: &str) -> bool {
    s.is_empty() || s.ends_with(".0.0")
}

static AFTER_REPLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[245]\d\d[ -]'?([245]\.\d{1,3}\.\d{1,3})\b").expect("regex"));

/// The enhanced code an error text states: the one right after a reply code first,
/// else the first specific one; failure codes (4/5) before success codes in a transcript.
pub fn status_in_text(text: &str) -> Option<&str> {
    let codes = enhanced_codes(text);
    let failing = codes.iter().any(|c| !c.starts_with('2'));
    let ok = |c: &&str| !failing || !c.starts_with('2');
    let after: Vec<&str> = AFTER_REPLY.captures_iter(text).filter_map(|c| c.get(1).map(|m| m.as_str())).collect();
    after
        .iter()
        .copied()
        .filter(ok)
        .find(|c| !c.ends_with(".0.0"))
        .or_else(|| codes.iter().copied().filter(ok).find(|c| !c.ends_with(".0.0")))
        .or_else(|| codes.iter().copied().find(ok))
}

/// Picks the status: a specific code stated in the error text wins over the DSN's
/// Status field (MTAs fill Status with generic or stale values, the remote text is
/// what the receiving server said), else the field.
pub fn better_status(field: &str, text: &str) -> String {
    match status_in_text(text) {
        Some(t) if !t.ends_with(".0.0") => t.to_string(),
        Some(t) if field.is_empty() => t.to_string(),
        _ => field.to_string(),
    }
}

static COMMAND: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)\b(?:after|in reply to|response to|did not like our|while sending|for)\s+(?:the\s+)?RCPT\b|\bRCPT TO (?:command|response)|\bRCPT TO:\s*<", "RCPT"),
        (r"(?i)\b(?:after|in reply to|response to|did not like our|while sending|for)\s+(?:the\s+)?MAIL\b|\bMAIL FROM (?:command|response)|\bMAIL FROM:\s*<", "MAIL"),
        (r"(?i)\b(?:after|in reply to|response to|did not like our)\s+(?:the\s+)?(?:end of\s+)?(?:final\s+)?DATA\b|\bend of data\b|\bDATA (?:command|response)|\bafter (?:sending|transmitting) (?:the )?(?:message|data)", "DATA"),
        (r"(?i)\b(?:after|in reply to|response to|did not like our)\s+(?:the\s+)?EHLO\b", "EHLO"),
        (r"(?i)\b(?:after|in reply to|response to|did not like our)\s+(?:the\s+)?HELO\b", "HELO"),
        (r"(?i)\bafter (?:initial connection|connect)|\bgreeting\b|\bconnection (?:refused|timed out)|\bconnect to\b", "CONN"),
    ]
    .into_iter()
    .filter_map(|(p, c)| Regex::new(p).ok().map(|r| (r, c)))
    .collect()
});

/// The SMTP command a reply text says it answered, if stated.
pub fn smtp_command(s: &str) -> &'static str {
    let mut best: Option<(usize, &'static str)> = None;
    for (re, cmd) in COMMAND.iter() {
        if let Some(m) = re.find(s) {
            if best.is_none_or(|(p, _)| m.start() < p) {
                best = Some((m.start(), cmd));
            }
        }
    }
    best.map(|(_, c)| c).unwrap_or("")
}

/// Whether `s` contains `needle`, ignoring ASCII case.
pub fn contains_ci(s: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    if n.is_empty() {
        return true;
    }
    s.as_bytes().windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Whether an address is a mail system's own (mailer-daemon, postmaster).
pub fn is_system_address(a: &str) -> bool {
    let local = a.split('@').next().unwrap_or("").to_ascii_lowercase();
    matches!(local.as_str(), "mailer-daemon" | "postmaster" | "mail-daemon" | "mailerdaemon" | "root" | "daemon")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let f = find_addresses("to <kijitora@example.jp>: and x@y.com. end 1.2@3.4");
        let a: Vec<_> = f.iter().map(|f| f.addr).collect();
        assert_eq!(a, vec!["kijitora@example.jp", "x@y.com"]);
    }

    #[test]
    fn codes() {
        assert_eq!(enhanced_code("550 5.1.1 <a@b.c>"), Some("5.1.1"));
        assert_eq!(enhanced_code("host 192.0.2.1 said"), None);
        assert_eq!(reply_code("host x[1.2.3.4] said: 550 5.1.1 no"), Some(550));
        assert_eq!(reply_code("550-5.7.26 Unauth"), Some(550));
        assert_eq!(better_status("5.0.0", "550 5.1.1 unknown"), "5.1.1");
        assert_eq!(better_status("5.0.0", "5.1.0 - Unknown address error 550-'5.2.2 <a@b.c>... Mailbox Full'"), "5.2.2");
    }

    #[test]
    fn commands() {
        assert_eq!(smtp_command("did not like our final DATA: 550"), "DATA");
        assert_eq!(smtp_command("SMTP error from remote mail server after RCPT TO:<a@b.c>:"), "RCPT");
        assert_eq!(clean_address("rfc822; <A@b.c>"), "A@b.c");
    }
}
