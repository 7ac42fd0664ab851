//! First-match-wins evaluation: what a record offers the matchers ([`Facts`]), whether
//! a rule applies, and the rule that decides.

use super::compile::{ReasonSpec, Rule, KINDS};
use super::RuleSet;
use super::super::matcher::Scan;
use super::super::status::StatusCode;
use super::super::verdict::Reason;
use crate::parse::{Kind, Record};
use regex::bytes::Regex;
use std::borrow::Cow;

/// What a record offers the matchers, computed once per record.
pub(crate) struct Facts<'a> {
    pub(crate) status: Option<StatusCode>,
    pub(crate) temporary: bool,
    /// The SMTP command, found on first use: few rules ask, and reading it from the
    /// text runs regexes.
    command: std::cell::OnceCell<Cow<'static, str>>,
    pub(crate) record: &'a Record,
    /// Remote and reporting MTA, trimmed, without a final dot (for host matchers,
    /// which ignore ASCII case).
    hosts: [&'a str; 2],
}

/// Whether a record reports a temporary failure (status class, else reply code, else kind).
fn temporary_of(status: Option<StatusCode>, record: &Record) -> bool {
    match (status, record.reply_code) {
        (Some(s), _) if s.class != 2 => s.class == 4,
        (_, Some(c)) if (400..600).contains(&c) => c < 500,
        _ => record.kind == Kind::Delay,
    }
}

impl<'a> Facts<'a> {
    pub(crate) fn of(record: &'a Record) -> Facts<'a> {
        let status = StatusCode::parse(&record.status);
        let temporary = temporary_of(status, record);
        let host = |h: &'a str| h.trim().trim_end_matches('.');
        let command = std::cell::OnceCell::new();
        Facts { status, temporary, command, record, hosts: [host(&record.remote_mta), host(&record.reporting_mta)] }
    }

    /// The SMTP command the error answered (upper case; "" when unknown).
    pub(crate) fn command(&self) -> &str {
        self.command.get_or_init(|| {
            let command = normalize_command(&self.record.smtp_command);
            if command.is_empty() {
                Cow::Borrowed(command_in_text(&self.record.diagnostic))
            } else {
                command
            }
        })
    }
}

/// The index of `kind` in [`KINDS`] (rules keep per-kind candidate lists).
pub(super) fn kind_index(kind: Kind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// The SMTP command an error text names when the parser could not tell ("in reply to
/// RCPT TO command", Yahoo's "[RCPT_TO]", Exim's "after MAIL FROM", ...), or "".
fn command_in_text(text: &str) -> &'static str {
    static MARKERS: std::sync::OnceLock<Option<Vec<Regex>>> = std::sync::OnceLock::new();
    const COMMANDS: [&str; 4] = ["RCPT", "MAIL", "DATA", "CONN"];
    let set = MARKERS.get_or_init(|| {
        [
            r"(?i-u)(in reply to|after|did not like our) rcpt to|\[rcpt_to\]|does not like recipient|smtp:rcpt\b",
            r"(?i-u)(in reply to|after) mail from|\[mail_from\]|sender was rejected|smtp:mail\b",
            r"(?i-u)(in reply to|after) (end of )?data|did not like our (final )?data",
            r"(?i-u)refused to talk to me|after initial connection|my name was rejected|while performing the (helo|ehlo)",
        ]
        .iter()
        // `(?i-u)` folds ASCII letters only and the words are lower case: the same
        // matches as a case-sensitive search of the lower-cased text, where the regex's
        // own literal prefilter works (it has none for `(?i)`).
        .map(|p| Regex::new(&p.replacen("(?i-u)", "(?-u)", 1)).ok())
        .collect()
    });
    let Some(set) = set else { return "" };
    if text.is_empty() {
        return "";
    }
    // The first marker that matches names the command (as a set's lowest match would).
    let t = text.as_bytes();
    crate::parse::gate::with_lower(t, |lower| set.iter().position(|re| re.is_match(lower)))
        .and_then(|i| COMMANDS.get(i).copied())
        .unwrap_or("")
}

/// RCPT, MAIL, DATA, HELO, EHLO, CONN, QUIT ... from the many ways bounces name them
/// (upper case; the usual names without a copy).
pub(super) fn normalize_command(c: &str) -> Cow<'static, str> {
    const NAMES: [(&str, &str); 16] = [
        ("RCPT", "RCPT"), ("MAIL", "MAIL"), ("DATA", "DATA"), ("EHLO", "EHLO"), ("HELO", "HELO"), ("CONN", "CONN"),
        ("QUIT", "QUIT"), ("RSET", "RSET"), ("STARTTLS", "STARTTLS"), ("AUTH", "AUTH"),
        ("END", "DATA"), ("BODY", "DATA"),
        ("CONNECT", "CONN"), ("CONNECTION", "CONN"), ("INITIAL", "CONN"), ("BANNER", "CONN"),
    ];
    let first = c.trim().split(|ch: char| !ch.is_ascii_alphabetic()).find(|w| !w.is_empty()).unwrap_or("");
    if first.is_empty() {
        return Cow::Borrowed("");
    }
    if first.eq_ignore_ascii_case("GREETING") {
        return Cow::Borrowed("CONN");
    }
    match NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(first)) {
        Some((_, name)) => Cow::Borrowed(name),
        None => Cow::Owned(first.to_ascii_uppercase()),
    }
}

/// The rule that decided and what it concluded.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'r> {
    /// The rule.
    pub rule: &'r Rule,
    /// The reason it gives for this record.
    pub reason: Reason,
    /// The pattern that matched, if the rule has text patterns.
    pub pattern: Option<usize>,
    /// Where it matched in the diagnostic (byte range).
    pub span: Option<(usize, usize)>,
}

impl Rule {
    /// The reason the rule gives for this record (None: a hint or status it cannot read).
    fn reason_for(&self, f: &Facts) -> Option<Reason> {
        match self.reason {
            ReasonSpec::Fixed(r) => Some(r),
            ReasonSpec::FromHint => Reason::from_name(f.record.reason_hint.trim()),
            ReasonSpec::FromStatus => f.status.filter(|s| !s.is_generic()).and_then(StatusCode::reason),
        }
    }

    /// Whether the rule applies to a record of its kinds and severity (see
    /// `RuleSet::candidates`); `hit` says whether a pattern matches the diagnostic.
    /// Returns the pattern that matched (None for a rule without text).
    fn applies(&self, f: &Facts, hit: &mut impl FnMut(usize) -> bool) -> Option<Option<usize>> {
        let r = f.record;
        if !self.status.is_empty() && !f.status.is_some_and(|s| self.status.iter().any(|p| p.matches(s))) {
            return None;
        }
        if !self.reply.is_empty() && !r.reply_code.is_some_and(|c| self.reply.iter().any(|p| p.matches(c))) {
            return None;
        }
        if !self.command.is_empty() && !self.command.iter().any(|c| c == f.command()) {
            return None;
        }
        if !self.not_command.is_empty() && self.not_command.iter().any(|c| c == f.command()) {
            return None;
        }
        if !self.hint.is_empty() {
            let h = r.reason_hint.trim();
            if h.is_empty() || !self.hint.iter().any(|x| x == "*" || x.eq_ignore_ascii_case(h)) {
                return None;
            }
        }
        if !self.host.is_empty() && !f.hosts.iter().any(|h| host_matches(&self.host, h)) {
            return None;
        }
        if self.patterns.is_empty() {
            return Some(None);
        }
        self.patterns.iter().copied().find(|&i| hit(i)).map(Some)
    }
}

/// Whether `host` (trimmed) is one of `patterns` (lower case) or below one, ignoring
/// ASCII case.
fn host_matches(patterns: &[String], host: &str) -> bool {
    let h = host.as_bytes();
    !h.is_empty()
        && patterns.iter().any(|p| {
            let Some(cut) = h.len().checked_sub(p.len()) else { return false };
            h.get(cut..).is_some_and(|tail| tail.eq_ignore_ascii_case(p.as_bytes())) && (cut == 0 || h.get(cut - 1) == Some(&b'.'))
        })
}

impl RuleSet {
    /// Finds the first rule that decides this record.
    pub fn decide(&self, record: &Record) -> Option<Decision<'_>> {
        let facts = Facts::of(record);
        let diag = record.diagnostic.as_bytes();
        // Scanned when a rule first asks about its text (a rule without text, such as
        // the auto-reply and complaint ones, often decides first). An empty diagnostic
        // matches no pattern.
        let scan: std::cell::OnceCell<Option<Scan<'_>>> = std::cell::OnceCell::new();
        let scanned = || scan.get_or_init(|| (!diag.is_empty()).then(|| self.patterns.scan(diag))).as_ref();
        // Per pattern, once asked: whether it matches (bits: asked, then answers; on
        // the stack for up to 256 patterns).
        let words = self.patterns.len().div_ceil(64);
        let mut small = [0u64; 8];
        let mut big: Vec<u64>;
        let memo: &mut [u64] = match small.get_mut(..2 * words) {
            Some(m) => m,
            None => {
                big = vec![0u64; 2 * words];
                &mut big
            }
        };
        let mut hit = |i: usize| -> bool {
            let Some(scan) = scanned() else { return false };
            let (w, bit) = (i / 64, 1u64 << (i % 64));
            let Some(asked) = memo.get(w).copied() else { return false };
            if asked & bit != 0 {
                return memo.get(words + w).is_some_and(|a| a & bit != 0);
            }
            let answer = scan.is_match(i);
            if let Some(a) = memo.get_mut(w) {
                *a |= bit;
            }
            if let (true, Some(a)) = (answer, memo.get_mut(words + w)) {
                *a |= bit;
            }
            answer
        };
        // Only the rules for this kind and severity (in order) are tried.
        let slot = kind_index(record.kind) * 2 + usize::from(facts.temporary);
        let candidates = self.candidates.get(slot).map(Vec::as_slice).unwrap_or(&[]);
        let (rule, reason, pattern) = candidates.iter().find_map(|&(i, p)| {
            // A rule whose pattern cannot match this text (none of its literals are in
            // it) is passed over without asking its other matchers.
            if p != super::NO_PATTERN && !scanned().is_some_and(|scan| scan.may_match(p as usize)) {
                return None;
            }
            let rule = self.rules.get(i as usize)?;
            let pattern = rule.applies(&facts, &mut hit)?;
            let reason = rule.reason_for(&facts)?;
            Some((rule, reason, pattern))
        })?;
        let span = pattern.and_then(|p| scan.get()?.as_ref()?.find(p));
        Some(Decision { rule, reason, pattern, span })
    }

    /// The text a pattern matched in `haystack`, for explanations.
    pub fn matched_text(&self, pattern: usize, haystack: &str) -> String {
        let hay = haystack.as_bytes();
        self.patterns
            .scan(hay)
            .find(pattern)
            .map(|span| excerpt(haystack, span))
            .unwrap_or_default()
    }

    /// Facts the record offers (status class etc.), for the verdict.
    pub(crate) fn is_temporary(record: &Record) -> bool {
        temporary_of(StatusCode::parse(&record.status), record)
    }
}

/// The text at `span` of `text`, at most 200 characters (lossy at a split character).
pub(crate) fn excerpt(text: &str, (start, end): (usize, usize)) -> String {
    match text.get(start..end) {
        // Whole characters, and no more than 200 of them: the text itself.
        Some(t) if t.len() <= 200 => t.to_string(),
        _ => text.as_bytes().get(start..end).map(|m| String::from_utf8_lossy(m).chars().take(200).collect()).unwrap_or_default(),
    }
}
