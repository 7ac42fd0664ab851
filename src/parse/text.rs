//! Small scanners over report text: e-mail addresses, RFC 3463 enhanced status codes,
//! SMTP reply codes, the SMTP command a reply answered, white space collapsing.
//! Byte scanning where possible; the few regexes are compiled once.

use super::gate::Gated;

mod command;
pub use command::{smtp_command, smtp_command_collapsed};
use regex::Regex;
use std::sync::LazyLock;

/// Bytes of a local part: letters, digits, RFC 5322 atext, '.', and bytes of UTF-8
/// sequences (RFC 6531 addresses). A table: this runs for every byte before an '@'.
static LOCAL_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c >= 0x80 || c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"._%+-=!#$&'*/?^`{|}~";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

fn is_local_char(b: u8) -> bool {
    LOCAL_CHARS[usize::from(b)]
}

/// Bytes of a domain: ASCII letters, digits, '.', '-', '_'.
static DOMAIN_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

fn is_domain_char(b: u8) -> bool {
    DOMAIN_CHARS[usize::from(b)]
}

/// Whether a domain (of domain bytes only) has a dot, no empty label before its last
/// one, and a letter in its last label (not an IP literal tail or a version number).
fn plausible_domain(d: &[u8]) -> bool {
    if d.first() == Some(&b'.') {
        return false;
    }
    let (mut dot, mut prev_dot, mut alpha) = (false, false, false);
    for &c in d {
        if c == b'.' {
            if prev_dot {
                return false;
            }
            dot = true;
            prev_dot = true;
            alpha = false;
        } else {
            prev_dot = false;
            alpha |= c.is_ascii_alphabetic();
        }
    }
    dot && alpha
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
    addresses(s).collect()
}

/// [`find_addresses`] as they are asked for (no list built).
pub fn addresses(s: &str) -> impl Iterator<Item = Found<'_>> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || next_address(s, &mut from))
}

/// The next address in `s` at or after byte `*from`; moves `*from` past it.
fn next_address<'a>(s: &'a str, from: &mut usize) -> Option<Found<'a>> {
    let b = s.as_bytes();
    while let Some(n) = memchr::memchr(b'@', b.get(*from..).unwrap_or(&[])) {
        let at = *from + n;
        *from = at + 1;
        let mut start = local_start(b, at);
        // Leading dots or quotes are punctuation, not part of the local part.
        while start < at && matches!(b.get(start), Some(b'.') | Some(b'\'') | Some(b'`')) {
            start += 1;
        }
        // Non-ASCII before an address is usually prose (full-width punctuation, CJK
        // text), not part of it: keep only letters and digits of a UTF-8 local part.
        if b.get(start).is_some_and(|c| *c >= 0x80) {
            if let Some(local) = s.get(start..at) {
                let skip: usize = local.chars().take_while(|c| !c.is_ascii() && !c.is_alphanumeric()).map(char::len_utf8).sum();
                start += skip;
            }
        }
        let mut end = domain_end(b, at + 1);
        while end > at + 1 && matches!(b.get(end - 1), Some(b'.') | Some(b'-')) {
            end -= 1;
        }
        // (A byte loop: domains are short, and a substring searcher costs more to set up.)
        if start == at || !plausible_domain(b.get(at + 1..end).unwrap_or(&[])) {
            continue;
        }
        if let Some(addr) = s.get(start..end) {
            *from = end;
            return Some(Found { start, end, addr });
        }
    }
    None
}

/// Where the run of local-part bytes that ends at `at` starts. (Plain loops here and in
/// [`domain_end`]: `take_while(..).count()` costs twice the instructions a byte.)
#[inline]
fn local_start(b: &[u8], at: usize) -> usize {
    let mut start = at;
    while start > 0 && b.get(start - 1).is_some_and(|&c| is_local_char(c)) {
        start -= 1;
    }
    start
}

/// Where the run of domain bytes that starts at `from` ends.
#[inline]
fn domain_end(b: &[u8], from: usize) -> usize {
    let mut end = from;
    while b.get(end).is_some_and(|&c| is_domain_char(c)) {
        end += 1;
    }
    end
}

/// The first address in `s`, if any.
pub fn first_address(s: &str) -> Option<&str> {
    addresses(s).next().map(|f| f.addr)
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

/// Compiles a pattern once at start-up; word boundaries are ASCII (`(?-u:\b)`) so
/// the fast DFA engine also runs over non-ASCII text (Japanese bounces, UTF-8 names).
pub fn re(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&pattern.replace("\\b", "(?-u:\\b)"))
}

/// As [`re`], behind a literal prefilter: the same answers, and text without the
/// pattern's words is never run through the regex (see `gate`).
pub fn gated(pattern: &str) -> Result<Gated, regex::Error> {
    Gated::new(&pattern.replace("\\b", "(?-u:\\b)"))
}

/// As [`gated`], for a pattern written in lower case that runs over long texts (see
/// `gate::Folded`).
pub fn folded(pattern: &str) -> Result<super::gate::Folded, regex::Error> {
    super::gate::Folded::new(&pattern.replace("\\b", "(?-u:\\b)"))
}

/// The first `max` bytes of `s`, cut back to a char boundary.
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
    if s.is_ascii() {
        return collapse_ascii(s);
    }
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// [`collapse`] for ASCII text; white space is what `char::is_whitespace` says for
/// ASCII (which, unlike `u8::is_ascii_whitespace`, includes vertical tab). Stretches
/// of words separated by single spaces are copied whole.
fn collapse_ascii(s: &str) -> String {
    let b = s.as_bytes();
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut out = String::with_capacity(s.len());
    let mut i = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    while i < b.len() {
        let mut j = i;
        loop {
            // Bytes above 0x20 are never white space: skipped eight at a time.
            j = first_control_or_space(b, j);
            match b.get(j) {
                Some(c) if !ws(c) => j += 1,
                Some(b' ') if b.get(j + 1).is_some_and(|n| !ws(n)) => j += 1,
                _ => break,
            }
        }
        out.push_str(s.get(i..j).unwrap_or(""));
        let next = b.get(j..).and_then(|r| r.iter().position(|c| !ws(c))).map_or(b.len(), |k| j + k);
        if next < b.len() {
            out.push(' ');
        }
        i = next;
    }
    out
}

/// The first index at or after `j` whose byte is 0x20 or below (`b.len()` if none);
/// `b` is ASCII. Eight bytes per step: a byte below 0x21 sets its high bit in
/// `x - 0x21..21 & !x`, and the lowest bit set marks the first such byte (a borrow
/// only carries into higher bytes, and ASCII bytes have no high bit of their own).
fn first_control_or_space(b: &[u8], mut j: usize) -> usize {
    const LOW: u64 = 0x2121_2121_2121_2121;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(j..j + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else { break };
        let x = u64::from_le_bytes(word);
        let m = x.wrapping_sub(LOW) & !x & HIGH;
        if m != 0 {
            return j + (m.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    while let Some(&c) = b.get(j) {
        if c <= 0x20 {
            return j;
        }
        j += 1;
    }
    b.len().max(j)
}

/// Removes the reply code (and enhanced code) that a multi-line SMTP reply repeats on
/// each continuation line ("550-5.7.1 first part 550 5.7.1 second part"), once the
/// lines are joined: the repeats split the remote's sentence in two.
pub fn strip_continuation_codes(s: &str) -> std::borrow::Cow<'_, str> {
    // Every match holds a reply code and a dash ("550-"): without one, no regex run.
    let b = s.as_bytes();
    let dashed_code = memchr::memchr_iter(b'-', b).any(|i| {
        i >= 3 && matches!(b.get(i - 3), Some(b'2' | b'4' | b'5')) && b.get(i - 2).is_some_and(u8::is_ascii_digit) && b.get(i - 1).is_some_and(u8::is_ascii_digit)
    });
    if !dashed_code {
        return std::borrow::Cow::Borrowed(s);
    }
    let Some(m) = REPLY_LEAD.captures(s) else { return std::borrow::Cow::Borrowed(s) };
    let (Some(whole), Some(code)) = (m.get(0), m.get(1)) else { return std::borrow::Cow::Borrowed(s) };
    let code = code.as_str();
    let enh = m.get(2).map(|e| e.as_str()).unwrap_or("");
    let dashed = format!("{code}-{enh}");
    let mut out = s.get(..whole.end()).unwrap_or("").trim_end().to_string();
    let mut words = s.get(whole.end()..).unwrap_or("").split_whitespace().peekable();
    while let Some(w) = words.next() {
        if !enh.is_empty() && w == dashed {
            continue;
        }
        if !enh.is_empty() && w == code && words.peek() == Some(&enh) {
            words.next();
            continue;
        }
        let w = if enh.is_empty() { w.strip_prefix(dashed.as_str()).filter(|r| !r.is_empty()).unwrap_or(w) } else { w };
        if enh.is_empty() && (w == dashed || w == code) {
            continue;
        }
        if !out.is_empty() && !out.ends_with('-') {
            out.push(' ');
        }
        out.push_str(w);
    }
    std::borrow::Cow::Owned(out)
}

/// A reply that opens with a multi-line code: "550-5.7.1 " or "550-".
static REPLY_LEAD: LazyLock<Gated> = LazyLock::new(|| gated(r"(?:^|\s)([245]\d\d)-(?:([245]\.\d{1,3}\.\d{1,3})\s)?").expect("regex")); // ok: constant pattern, compiled by the unit tests

/// Length of an enhanced code ("5.1.1", "4.7.650") starting at `i`, if one does.
fn enhanced_at(b: &[u8], i: usize) -> Option<usize> {
    if !matches!(b.get(i), Some(b'2' | b'4' | b'5')) || b.get(i + 1) != Some(&b'.') {
        return None;
    }
    if i > 0 && b.get(i - 1).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
        return None;
    }
    let digits = |from: usize| (0..4).take_while(|k| b.get(from + k).is_some_and(u8::is_ascii_digit)).count();
    let d1 = digits(i + 2);
    if d1 == 0 || d1 > 3 || b.get(i + 2 + d1) != Some(&b'.') {
        return None;
    }
    let d2 = digits(i + 3 + d1);
    if d2 == 0 || d2 > 3 {
        return None;
    }
    let end = i + 3 + d1 + d2;
    // Not the start of a longer dotted number (an IP address or a version).
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(end - i)
}

/// Every enhanced status code (RFC 3463) in `s`, in order.
pub fn enhanced_codes(s: &str) -> Vec<&str> {
    enhanced_iter(s).collect()
}

/// The enhanced status codes of `s`, in order, found as they are asked for.
fn enhanced_iter(s: &str) -> impl Iterator<Item = &str> + '_ {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 4 < b.len() + 1 {
            let n = memchr::memchr(b'.', b.get(i + 1..).unwrap_or(&[]))?;
            let at = i + n; // candidate class digit just before the dot
            if let Some(len) = enhanced_at(b, at) {
                i = at + len;
                if let Some(code) = s.get(at..at + len) {
                    return Some(code);
                }
            } else {
                i = at + 1;
            }
        }
        None
    })
}

/// The first plausible enhanced status code in `s`.
pub fn enhanced_code(s: &str) -> Option<&str> {
    enhanced_iter(s).next()
}

/// Positions of SMTP reply codes in `s`: three digits [245][0-5][0-9] at a word start
/// and followed by a space, '-', a bracket or the end.
fn reply_positions(s: &str) -> impl Iterator<Item = (usize, u16)> + '_ {
    let b = s.as_bytes();
    // Candidates start with 2, 4 or 5: memchr skips the text between them.
    memchr::memchr3_iter(b'2', b'4', b'5', b).take_while(move |&i| i + 2 < b.len()).filter_map(move |i| {
        let (c0, c1, c2) = (*b.get(i)?, *b.get(i + 1)?, *b.get(i + 2)?);
        if !matches!(c0, b'2' | b'4' | b'5') || !(b'0'..=b'5').contains(&c1) || !c2.is_ascii_digit() {
            return None;
        }
        if i > 0 && !b.get(i - 1).is_some_and(|p| p.is_ascii_whitespace() || b":([>\"'=#;".contains(p)) {
            return None;
        }
        if !b.get(i + 3).is_none_or(|n| matches!(n, b' ' | b'-' | b')' | b']' | b'\t')) {
            return None;
        }
        Some((i, u16::from(c0 - b'0') * 100 + u16::from(c1 - b'0') * 10 + u16::from(c2 - b'0')))
    })
}

/// The first SMTP reply code in `s` that looks like the start of a reply; a reply the
/// text quotes in angle brackets (see [`quoted_reply`]) first.
pub fn reply_code(s: &str) -> Option<u16> {
    quoted_reply(s).map(|(c, _)| c).or_else(|| reply_positions(s).next().map(|(_, c)| c))
}

/// A remote reply quoted in angle brackets inside an MTA's own message ("554 4.4.7
/// Message expired: unable to deliver in 840 minutes.<421 4.4.2 Connection timed out>"):
/// the MTA's code summarises, the quoted one is what the remote last said.
pub fn quoted_reply(s: &str) -> Option<(u16, &str)> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(n) = memchr::memchr(b'<', b.get(from..)?) {
        let at = from + n + 1;
        from = at;
        let code = b.get(at..at + 3)?;
        if !matches!(code.first(), Some(b'4' | b'5')) || !code.iter().all(u8::is_ascii_digit) || b.get(at + 3) != Some(&b' ') {
            continue;
        }
        if let Some(len) = enhanced_at(b, at + 4) {
            let reply = code.iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
            return Some((reply, s.get(at + 4..at + 4 + len)?));
        }
    }
    None
}

/// Whether an enhanced code says no more than its class (x.0.0).
pub fn is_generic_status(s: &str) -> bool {
    s.is_empty() || s.ends_with(".0.0")
}

/// Enhanced codes written right after a reply code ("550 5.1.1", "550-'5.2.2").
fn codes_after_reply(text: &str) -> impl Iterator<Item = &str> + '_ {
    let b = text.as_bytes();
    reply_positions(text).filter_map(move |(i, _)| {
        let mut j = i + 4;
        if b.get(j) == Some(&b'\'') {
            j += 1;
        }
        enhanced_at(b, j).and_then(|len| text.get(j..j + len))
    })
}

/// The enhanced code an error text states: the one right after a reply code first,
/// else the first specific one; failure codes (4/5) before success codes in a transcript.
pub fn status_in_text(text: &str) -> Option<&str> {
    if let Some((_, c)) = quoted_reply(text) {
        return Some(c);
    }
    // One pass says whether there is a code at all and whether any is a failure's;
    // the choices below walk the codes again (no list is built).
    let mut any = false;
    let mut failing = false;
    for c in enhanced_iter(text) {
        any = true;
        if !c.starts_with('2') {
            failing = true;
            break;
        }
    }
    if !any {
        return None;
    }
    let ok = |c: &&str| !failing || !c.starts_with('2');
    codes_after_reply(text)
        .filter(ok)
        .find(|c| !c.ends_with(".0.0"))
        .or_else(|| enhanced_iter(text).filter(ok).find(|c| !c.ends_with(".0.0")))
        .or_else(|| enhanced_iter(text).find(ok))
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

/// Whether `s` contains `needle`, ignoring ASCII case.
pub fn contains_ci(s: &str, needle: &str) -> bool {
    let (h, n) = (s.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    let Some(last) = h.len().checked_sub(n.len()) else { return false };
    // Candidates are where the needle's rarest byte (in either case) stands: memchr
    // skips the text between them instead of comparing at every offset.
    let (k, b) = n.iter().copied().enumerate().min_by_key(|&(_, b)| byte_rank(b)).unwrap_or((0, 0));
    let Some(window) = h.get(k..=last + k) else { return false };
    let at = |start: usize| h.get(start..start + n.len()).is_some_and(|w| w.eq_ignore_ascii_case(n));
    let (lo, up) = (b.to_ascii_lowercase(), b.to_ascii_uppercase());
    // A byte with no other case (',', '(', a digit) is searched for alone.
    if lo == up {
        memchr::memchr_iter(lo, window).any(at)
    } else {
        memchr::memchr2_iter(lo, up, window).any(at)
    }
}

/// How common a byte is in mail text (lower is rarer), for [`contains_ci`].
fn byte_rank(b: u8) -> u8 {
    BYTE_RANK[usize::from(b)]
}

/// [`byte_rank`] of every byte (a table: it is asked for every byte of every needle).
static BYTE_RANK: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match (i as u8).to_ascii_lowercase() {
            b' ' => 255,
            b'e' => 250,
            b't' | b'a' | b'o' => 240,
            b'i' | b'n' | b's' | b'r' => 230,
            b'h' | b'l' | b'd' | b'c' | b'u' | b'm' => 200,
            b'f' | b'p' | b'g' | b'w' | b'y' | b'b' | b'.' | b'-' => 150,
            b'v' | b'k' | b'0'..=b'9' | b':' | b',' => 100,
            b'x' | b'j' | b'q' | b'z' => 50,
            _ => 80,
        };
        i += 1;
    }
    t
};

/// Whether an address is a mail system's own (mailer-daemon, postmaster).
pub fn is_system_address(a: &str) -> bool {
    let local = a.split('@').next().unwrap_or("");
    // The names are 4, 6 and 10 to 13 bytes long: other lengths are not compared.
    if !matches!(local.len(), 4 | 6 | 10..=13) {
        return false;
    }
    ["mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "root", "daemon"].iter().any(|n| local.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The address scans' loops give what the iterator chains they replaced gave.
        #[test]
        fn address_runs_as_the_iterator_chains(b in proptest::collection::vec(proptest::sample::select(vec![b'a', b'.', b'-', b'@', b' ', b'+', 0xc3, 0xa9, b'Z', b'9']), 0..40), at in 0usize..45) {
            let at = at.min(b.len());
            proptest::prop_assert_eq!(local_start(&b, at), at - b.get(..at).map_or(0, |h| h.iter().rev().take_while(|&&c| is_local_char(c)).count()));
            proptest::prop_assert_eq!(domain_end(&b, at), at + b.get(at..).map_or(0, |t| t.iter().take_while(|&&c| is_domain_char(c)).count()));
        }
    }

    /// [`collapse_ascii`] as it was before the eight-byte skip: the reference.
    fn collapse_ascii_bytewise(s: &str) -> String {
        let b = s.as_bytes();
        let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
        let mut out = String::with_capacity(s.len());
        let mut i = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
        while i < b.len() {
            let mut j = i;
            loop {
                match b.get(j) {
                    Some(c) if !ws(c) => j += 1,
                    Some(b' ') if b.get(j + 1).is_some_and(|n| !ws(n)) => j += 1,
                    _ => break,
                }
            }
            out.push_str(s.get(i..j).unwrap_or(""));
            let next = b.get(j..).and_then(|r| r.iter().position(|c| !ws(c))).map_or(b.len(), |k| j + k);
            if next < b.len() {
                out.push(' ');
            }
            i = next;
        }
        out
    }

    #[test]
    fn collapse_skipping_eight_bytes_matches_the_bytewise_loop() {
        let alphabet: &[u8] = b"ab Z!~ \t\n\r\x0b\x0c\x01\x1f\x20\x21\x7f0.@";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in 0..4000usize {
            let len = n % 70;
            let s: String = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // Long runs of letters now and then, so the eight-byte steps are taken.
                    let k = (seed >> 33) as usize % (alphabet.len() + 6);
                    char::from(alphabet.get(k).copied().unwrap_or(b'x'))
                })
                .collect();
            assert_eq!(collapse_ascii(&s), collapse_ascii_bytewise(&s), "{s:?}");
        }
        for s in ["", " ", "abcdefghijklmnop", "  abcdefgh ijklmnop  \n\tq\x01rstuvwxyz\x0b", "a\x1fbcdefghi jklmnopq  r"] {
            assert_eq!(collapse_ascii(s), collapse_ascii_bytewise(s), "{s:?}");
        }
    }

    #[test]
    fn addresses() {
        let f = find_addresses("to <kijitora@example.jp>: and x@y.com. end 1.2@3.4");
        let a: Vec<_> = f.iter().map(|f| f.addr).collect();
        assert_eq!(a, vec!["kijitora@example.jp", "x@y.com"]);
    }

    #[test]
    fn collapse_joins_words_with_one_space() {
        for t in ["", "  ", "a", " a  b\tc\n\nd \x0b e\r\n", "one two three", "x \ny", "trailing ", "\u{3000}wide\u{a0}space  x"] {
            assert_eq!(collapse(t), t.split_whitespace().collect::<Vec<_>>().join(" "), "{t:?}");
        }
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
    fn a_quoted_remote_reply_wins() {
        let t = "554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.2 Connection timed out>";
        assert_eq!(status_in_text(t), Some("4.4.2"));
        assert_eq!(reply_code(t), Some(421));
        assert_eq!(better_status("4.4.7", t), "4.4.2");
        assert_eq!(quoted_reply("550 5.1.1 <a@b.c>... unknown"), None);
    }

    #[test]
    fn continuation_codes() {
        assert_eq!(strip_continuation_codes("550-5.7.1 Messages with 550 5.7.1 multiple addresses 550-5.7.1 here"), "550-5.7.1 Messages with multiple addresses here");
        assert_eq!(strip_continuation_codes("host x said: 550-Mailbox 550-is 550 gone"), "host x said: 550-Mailbox is gone");
        assert_eq!(strip_continuation_codes("550 5.1.1 unknown"), "550 5.1.1 unknown");
    }
}
