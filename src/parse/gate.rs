//! Literal prefilters for case-insensitive regexes. The `regex` crate cannot build a
//! fast prefilter for `(?i)` alternations (every letter doubles the literal set), so
//! it runs its lazy DFA over every byte, and a DFA meeting text it has not seen before
//! builds states, which is slow. A pattern usually names words that any match must
//! contain ("mailbox", "rcpt", ...): we find them once, at compile time, from the
//! pattern's syntax (case folding switched off), and look for them with Aho-Corasick
//! in a lower-cased copy of the text. No literal there means no match: the regex is
//! not run at all. Exact: the literal sets are sound by construction (see
//! `required`), and text the ASCII folding cannot speak for skips the gate.

use aho_corasick::{AhoCorasick, MatchKind};
use regex_syntax::ast::{self, Ast};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind};
use std::cell::RefCell;

/// Most literals kept for one pattern; more means the gate would rarely say no.
const MAX_LITERALS: usize = 256;

/// Literals at least one of which every match of a pattern contains (ASCII lower
/// case), and whether that holds only for ASCII text (Unicode case folding maps
/// `ſ` to `s`, `K` to `k`, `Ä` to `ä`: folded text would not contain the literal).
#[derive(Debug, Clone)]
pub struct Required {
    /// The literals, lower case, none containing another.
    pub literals: Vec<Vec<u8>>,
    /// The literals speak only for ASCII text.
    pub ascii_only: bool,
}

/// The required literals of `pattern`, or None when the pattern guarantees none
/// (it may match empty text, or starts and ends with open classes). `unicode` says
/// whether the pattern is compiled with Unicode mode on by default.
pub fn required_literals(pattern: &str, unicode: bool) -> Option<Required> {
    let (hir, flags) = folded_hir(pattern, unicode)?;
    required_literals_of(&hir, flags)
}

/// [`required_literals`] of a pattern already through [`folded_hir`].
pub fn required_literals_of(hir: &Hir, flags: FlagScan) -> Option<Required> {
    let lits = required(hir)?;
    let mut lower: Vec<Vec<u8>> = lits.into_iter().map(|l| l.to_ascii_lowercase()).collect();
    lower.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    lower.dedup();
    // A literal containing a shorter one adds nothing: the shorter is found first.
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(lower.len());
    for l in lower {
        if !kept.iter().any(|k| memchr::memmem::find(&l, k).is_some()) {
            kept.push(l);
        }
    }
    if kept.is_empty() {
        return None;
    }
    let ascii_only = flags.case_insensitive && flags.unicode;
    Some(Required { literals: kept, ascii_only })
}

/// The syntax of `pattern` with case folding switched off (bytes, not UTF-8), and what
/// its flags turn on somewhere.
pub fn folded_hir(pattern: &str, unicode: bool) -> Option<(Hir, FlagScan)> {
    let mut ast = ast::parse::ParserBuilder::new().build().parse(pattern).ok()?;
    let mut flags = FlagScan { case_insensitive: false, case_sensitive: false, unicode };
    strip_case_insensitive(&mut ast, &mut flags);
    let hir = regex_syntax::hir::translate::TranslatorBuilder::new().utf8(false).build().translate(pattern, &ast).ok()?;
    Some((hir, flags))
}

/// What the flags of a pattern turn on somewhere.
#[derive(Debug, Clone, Copy)]
pub struct FlagScan {
    /// Some part folds case (`i`).
    pub case_insensitive: bool,
    /// Some part turns folding back off (`-i`).
    pub case_sensitive: bool,
    /// Unicode mode is on somewhere (by default or by a flag or class).
    pub unicode: bool,
}

/// Removes every `i` flag (recording that one was set) and notes any `u` flag turned on.
fn strip_case_insensitive(ast: &mut Ast, scan: &mut FlagScan) {
    fn flags(f: &mut ast::Flags, scan: &mut FlagScan) {
        let mut negated = false;
        for item in &f.items {
            match item.kind {
                ast::FlagsItemKind::Negation => negated = true,
                ast::FlagsItemKind::Flag(ast::Flag::CaseInsensitive) if !negated => scan.case_insensitive = true,
                ast::FlagsItemKind::Flag(ast::Flag::CaseInsensitive) => scan.case_sensitive = true,
                ast::FlagsItemKind::Flag(ast::Flag::Unicode) if !negated => scan.unicode = true,
                _ => {}
            }
        }
        f.items.retain(|i| i.kind != ast::FlagsItemKind::Flag(ast::Flag::CaseInsensitive));
    }
    match ast {
        Ast::Flags(set) => flags(&mut set.flags, scan),
        Ast::ClassUnicode(_) => scan.unicode = true,
        Ast::Group(g) => {
            if let ast::GroupKind::NonCapturing(f) = &mut g.kind {
                flags(f, scan);
            }
            strip_case_insensitive(&mut g.ast, scan);
        }
        Ast::Repetition(r) => strip_case_insensitive(&mut r.ast, scan),
        Ast::Alternation(a) => a.asts.iter_mut().for_each(|x| strip_case_insensitive(x, scan)),
        Ast::Concat(c) => c.asts.iter_mut().for_each(|x| strip_case_insensitive(x, scan)),
        _ => {}
    }
}

/// Literals one of which every match of `hir` contains. Sound by construction: an
/// alternation's set is the union of its branches' sets; otherwise the best of the
/// prefix set (every match starts with one), the suffix set (every match ends with
/// one) and, for a concatenation or a repetition of at least one, any part's set
/// (every match contains a match of each part). A set holding the empty literal
/// says nothing and is refused.
fn required(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Alternation(alts) => {
            let mut out = Vec::new();
            for a in alts {
                out.extend(required(a)?);
                if out.len() > MAX_LITERALS {
                    return None;
                }
            }
            Some(out)
        }
        HirKind::Capture(c) => required(&c.sub),
        kind => {
            let mut best = extract(hir, ExtractKind::Prefix);
            best = better(best, extract(hir, ExtractKind::Suffix));
            match kind {
                HirKind::Concat(parts) => {
                    for p in parts {
                        best = better(best, required(p));
                    }
                }
                HirKind::Repetition(r) if r.min >= 1 => best = better(best, required(&r.sub)),
                _ => {}
            }
            best
        }
    }
}

fn extract(hir: &Hir, kind: ExtractKind) -> Option<Vec<Vec<u8>>> {
    let seq = Extractor::new().kind(kind).extract(hir);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.len() > MAX_LITERALS || lits.iter().any(|l| l.is_empty()) {
        return None;
    }
    Some(lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// The more selective of two literal sets: longer shortest literal, then fewer.
fn better(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    // Four bytes are selective enough; past that, fewer literals scan faster and say
    // "no" more often ("rcpt" beats "after" | "in reply to").
    let score = |s: &Vec<Vec<u8>>| {
        let min = s.iter().map(Vec::len).min().unwrap_or(0);
        (min.min(4), usize::MAX - s.len(), min)
    };
    match (a, b) {
        (Some(a), Some(b)) => Some(if score(&b) > score(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

thread_local! {
    /// Lower-cased copy of the text being gated (reused: no allocation per call).
    static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` over an ASCII-lower-cased copy of `hay`.
pub fn with_lower<R>(hay: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    LOWER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            buf.extend_from_slice(hay);
            buf.make_ascii_lowercase();
            f(&buf)
        }
        // Not reentrant in practice; stay correct if it ever is.
        Err(_) => f(&hay.to_ascii_lowercase()),
    })
}

/// The prefilter of one pattern.
#[derive(Debug, Clone)]
pub struct Gate {
    ac: Option<AhoCorasick>,
    ascii_only: bool,
}

impl Gate {
    /// The gate of `pattern` (one that always opens when no literal is required).
    pub fn new(pattern: &str, unicode: bool) -> Gate {
        let Some(req) = required_literals(pattern, unicode) else { return Gate { ac: None, ascii_only: false } };
        let ac = AhoCorasick::builder().match_kind(MatchKind::LeftmostFirst).build(&req.literals).ok();
        Gate { ac, ascii_only: req.ascii_only }
    }

    /// Whether the pattern may match `hay` (false: it certainly does not).
    pub fn may_match(&self, hay: &[u8]) -> bool {
        let Some(ac) = &self.ac else { return true };
        if self.ascii_only && !hay.is_ascii() {
            return true;
        }
        with_lower(hay, |l| ac.is_match(l))
    }

    /// [`Gate::may_match`] given the text already lower-cased (`ascii`: whether it is).
    pub fn may_match_lower(&self, lower: &[u8], ascii: bool) -> bool {
        let Some(ac) = &self.ac else { return true };
        self.ascii_only && !ascii || ac.is_match(lower)
    }

    /// Whether the gate can ever say no.
    pub fn is_active(&self) -> bool {
        self.ac.is_some()
    }
}

/// A `regex::Regex` behind its gate; same answers, fewer runs.
#[derive(Debug, Clone)]
pub struct Gated {
    re: regex::Regex,
    gate: Gate,
}

impl Gated {
    /// Compiles `pattern` (Unicode mode, as `Regex::new`) with its gate.
    pub fn new(pattern: &str) -> Result<Gated, regex::Error> {
        Ok(Gated { re: regex::Regex::new(pattern)?, gate: Gate::new(pattern, true) })
    }

    /// As `Regex::is_match`.
    pub fn is_match(&self, s: &str) -> bool {
        self.gate.may_match(s.as_bytes()) && self.re.is_match(s)
    }

    /// As `Regex::find`.
    pub fn find<'h>(&self, s: &'h str) -> Option<regex::Match<'h>> {
        if !self.gate.may_match(s.as_bytes()) {
            return None;
        }
        self.re.find(s)
    }

    /// As `Regex::captures`.
    pub fn captures<'h>(&self, s: &'h str) -> Option<regex::Captures<'h>> {
        if !self.gate.may_match(s.as_bytes()) {
            return None;
        }
        self.re.captures(s)
    }

    /// As `Regex::find_iter` (no match at all when the gate is shut).
    pub fn find_iter<'r, 'h>(&'r self, s: &'h str) -> regex::Matches<'r, 'h> {
        // A gated pattern cannot match empty text, so an empty haystack yields nothing.
        let hay = if self.gate.may_match(s.as_bytes()) { s } else { s.get(..0).unwrap_or("") };
        self.re.find_iter(hay)
    }

    /// The regex itself.
    pub fn regex(&self) -> &regex::Regex {
        &self.re
    }
}

/// A case-insensitive pattern whose words are written in lower case, for long texts.
/// The `regex` crate has no fast literal prefilter for `(?i)` (see above), so on ASCII
/// text (nearly every report) the pattern runs case-sensitively over a lower-cased copy,
/// where the crate's own prefilter skips to the words: for ASCII text and a pattern
/// with no upper-case letter, `(?i)P` matches text T exactly where `P` matches
/// lower(T), at the same byte offsets. Other text takes the gated `(?i)` regex.
#[derive(Debug, Clone)]
pub struct Folded {
    ci: Gated,
    /// The pattern without its `i` flag; None when it holds an upper-case letter.
    lower: Option<regex::bytes::Regex>,
}

impl Folded {
    /// Compiles `pattern`, which starts with `(?i)` or `(?im)` (Unicode mode, as
    /// `Regex::new`).
    pub fn new(pattern: &str) -> Result<Folded, regex::Error> {
        let ci = Gated::new(pattern)?;
        let body = pattern.strip_prefix("(?i)").map(str::to_string).or_else(|| pattern.strip_prefix("(?im)").map(|b| format!("(?m){b}")));
        // An upper-case letter not escaped (`\D`, `\S`, `\W`, `\B` are classes) would
        // need folding: keep such a pattern on the case-insensitive path only.
        let cased = |p: &str| {
            let b = p.as_bytes();
            (0..b.len()).any(|i| b.get(i).is_some_and(u8::is_ascii_uppercase) && (i == 0 || b.get(i - 1) != Some(&b'\\')))
        };
        let lower = body.filter(|b| !cased(b)).and_then(|b| regex::bytes::Regex::new(&b).ok());
        Ok(Folded { ci, lower })
    }

    /// As `Regex::is_match` of the `(?i)` pattern.
    pub fn is_match(&self, s: &str) -> bool {
        match &self.lower {
            Some(re) if s.is_ascii() => with_lower(s.as_bytes(), |l| re.is_match(l)),
            _ => self.ci.is_match(s),
        }
    }

    /// Start offsets of the matches `Regex::find_iter` of the `(?i)` pattern gives.
    pub fn starts(&self, s: &str) -> Vec<usize> {
        match &self.lower {
            Some(re) if s.is_ascii() => with_lower(s.as_bytes(), |l| re.find_iter(l).map(|m| m.start()).collect()),
            _ => self.ci.find_iter(s).map(|m| m.start()).collect(),
        }
    }

    /// Whether the fast path exists (the pattern is all lower case).
    pub fn is_folded(&self) -> bool {
        self.lower.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_answers_as_the_case_insensitive_regex() {
        let texts = ["Delivery Is DELAYED", "warning: Message 123 Delayed\nx", "", "nothing", "line\n  -- Original Message --", "Ärger DELAYED", "K delayed"];
        for p in [r"(?i)\b(?:delivery is delayed|warning: message .* delayed)", r"(?im)^\s*(?:-{2,})?\s*original message", r"(?i)k delayed"] {
            let f = Folded::new(p).expect("pattern");
            assert!(f.is_folded(), "{p}");
            let r = regex::Regex::new(p).expect("pattern");
            for t in texts {
                assert_eq!(f.is_match(t), r.is_match(t), "{p:?} on {t:?}");
                assert_eq!(f.starts(t), r.find_iter(t).map(|m| m.start()).collect::<Vec<_>>(), "{p:?} on {t:?}");
            }
        }
        assert!(!Folded::new(r"(?i)RCPT").expect("pattern").is_folded());
    }

    fn lits(p: &str) -> Option<Vec<String>> {
        required_literals(p, true).map(|r| {
            let mut v: Vec<String> = r.literals.into_iter().map(|l| String::from_utf8_lossy(&l).into_owned()).collect();
            v.sort();
            v
        })
    }

    #[test]
    fn literals_of_common_shapes() {
        assert_eq!(lits(r"(?i)user unknown|no such user"), Some(vec!["no such user".into(), "user unknown".into()]));
        assert_eq!(lits(r"(?i)\b(?:after|in reply to)\s+(?:the\s+)?RCPT\b"), Some(vec!["rcpt".into()]));
        assert_eq!(lits(r"(?im)^\s*(?:-{2,})?\s*(?:original message|returned mail)"), Some(vec!["original message".into(), "returned mail".into()]));
        assert_eq!(lits(r"\d+"), None);
        assert_eq!(lits(r"(?i)a|\w*"), None);
    }

    #[test]
    fn gated_regex_answers_as_the_regex() {
        let texts = ["550 5.1.1 User Unknown", "after RCPT TO:<a@b.c>", "", "mailbox FULL", "ſome K text", "Ärger über Empfänger", "in reply to the rcpt"];
        for p in [r"(?i)user unknown|mailbox full", r"(?i)\b(?:after|in reply to)\s+(?:the\s+)?RCPT\b", r"(?i)some|empf(?:ä|ae)nger", r"(?i)ärger", r"[0-9]{3} [0-9]"] {
            let g = Gated::new(p).expect("pattern");
            let r = regex::Regex::new(p).expect("pattern");
            for t in texts {
                assert_eq!(g.is_match(t), r.is_match(t), "{p:?} on {t:?}");
                assert_eq!(g.find(t).map(|m| m.range()), r.find(t).map(|m| m.range()), "{p:?} on {t:?}");
            }
        }
    }
}
