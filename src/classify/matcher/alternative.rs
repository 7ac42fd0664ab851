//! One alternative of a rule's text read for the scan: a finite set of words the
//! literal scan decides alone, or a regex (compiled here, on first use) gated by the
//! literals every match of it contains.

use crate::parse::gate::{folded_hir, required_literals_of, FlagScan};
use regex_automata::meta::Regex;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind, Look};

/// Most words an alternative may expand to and still be matched by the scan alone.
const MAX_WORDS: usize = 512;

/// One alternative analysed for the set, its regex not yet compiled.
#[derive(Debug)]
pub struct Prepared {
    /// `(?i-u)body`.
    pub(super) pattern: String,
    /// Compiled already (the syntax analysis could not read the pattern).
    pub(super) re: Option<Regex>,
    /// A word set: its words (lower case, in preference order) and boundaries.
    pub(super) words: Option<(Vec<Vec<u8>>, bool, bool)>,
    /// The literals one of which every match contains (None: the regex always runs).
    pub(super) required: Option<crate::parse::gate::Required>,
}

impl Prepared {
    /// Analyses an alternative `(?i-u)body` for the literal scan; a pattern the syntax
    /// analysis cannot read is compiled now, so a bad one fails here with the regex
    /// crate's error (the rest compile on first use; `PatternSet::compile_all` checks).
    pub fn new(pattern: String) -> Result<Prepared, regex::Error> {
        if let Some(words) = plain_word(&pattern) {
            return Ok(Prepared { pattern, re: None, words: Some(words), required: None });
        }
        let Some((hir, flags)) = folded_hir(&pattern, false) else {
            let re = compile(&pattern)?;
            return Ok(Prepared { pattern, re: Some(re), words: None, required: None });
        };
        let words = words_of_hir(&hir, flags);
        let required = if words.is_some() { None } else { required_literals_of(&hir, flags) };
        Ok(Prepared { pattern, re: None, words, required })
    }
}

/// Longest plain literal [`plain_word`] reads itself (the literal extractor truncates
/// at 100 bytes, making a longer one inexact).
const MAX_PLAIN: usize = 64;

/// The word of an alternative `(?i-u)LITERAL`, optionally between `(?-u:\b)`s, whose
/// literal is ASCII without any regex syntax: what [`words_of_hir`] would find, read
/// without parsing (half the default alternatives are such, and the parse and literal
/// extraction were most of a rule set's build).
fn plain_word(pattern: &str) -> Option<(Vec<Vec<u8>>, bool, bool)> {
    const WB: &str = "(?-u:\\b)";
    let body = pattern.strip_prefix("(?i-u)")?;
    let (body, before) = body.strip_prefix(WB).map_or((body, false), |b| (b, true));
    let (body, after) = body.strip_suffix(WB).map_or((body, false), |b| (b, true));
    let plain = |b: u8| b.is_ascii_alphanumeric() || b" ,:;'\"/<>@=!%&~_-".contains(&b);
    if body.is_empty() || body.len() > MAX_PLAIN || !body.bytes().all(plain) {
        return None;
    }
    Some((vec![body.as_bytes().to_ascii_lowercase()], before, after))
}

/// Compiles one alternative's regex (`(?i-u)body`): what `regex::bytes::RegexBuilder`
/// with a 1 MB size limit builds, without the full DFAs it adds for small patterns
/// (a third of the build; the lazy DFA answers as fast once its states are cached,
/// and these regexes only run where the scan saw their literal).
pub(super) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    let config = regex_automata::meta::Config::new()
        .match_kind(regex_automata::MatchKind::LeftmostFirst)
        .utf8_empty(false)
        .nfa_size_limit(Some(1 << 20))
        .hybrid_cache_capacity(2 * (1 << 20))
        .dfa(false)
        .auto_prefilter(false)
        .which_captures(regex_automata::nfa::thompson::WhichCaptures::Implicit);
    regex_automata::meta::Builder::new()
        .configure(config)
        .syntax(regex_automata::util::syntax::Config::new().utf8(false))
        .build(pattern)
        .map_err(|e| match (e.size_limit(), e.syntax_error()) {
            // The errors `regex` gives for the same failures.
            (Some(limit), _) => regex::Error::CompiledTooBig(limit),
            (None, Some(syntax)) => regex::Error::Syntax(syntax.to_string()),
            (None, None) => regex::Error::Syntax(e.to_string()),
        })
}

/// The words of a word-set alternative (lower case, in preference order) and its
/// boundaries, or None when it is not one.
#[cfg(test)]
fn words_of(pattern: &str) -> Option<(Vec<Vec<u8>>, bool, bool)> {
    let (hir, flags) = folded_hir(pattern, false)?;
    words_of_hir(&hir, flags)
}

/// [`words_of`] a pattern already through [`folded_hir`].
fn words_of_hir(hir: &Hir, flags: FlagScan) -> Option<(Vec<Vec<u8>>, bool, bool)> {
    // The whole alternative must fold ASCII case and nothing else.
    if !flags.case_insensitive || flags.case_sensitive || flags.unicode {
        return None;
    }
    let is_wb = |h: &Hir| matches!(h.kind(), HirKind::Look(Look::WordAscii));
    let (body, before, after) = match hir.kind() {
        HirKind::Concat(parts) => {
            let before = parts.first().is_some_and(is_wb);
            let after = parts.len() > 1 && parts.last().is_some_and(is_wb);
            let inner = parts.get(usize::from(before)..parts.len() - usize::from(after))?;
            (Hir::concat(inner.to_vec()), before, after)
        }
        _ => (hir.clone(), false, false),
    };
    if !body.properties().look_set().is_empty() {
        return None;
    }
    let seq = Extractor::new().kind(ExtractKind::Prefix).limit_total(MAX_WORDS).limit_class(16).extract(&body);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.len() > MAX_WORDS || lits.iter().any(|l| !l.is_exact() || l.is_empty()) {
        return None;
    }
    let mut words: Vec<Vec<u8>> = Vec::with_capacity(lits.len());
    for l in lits {
        let w = l.as_bytes().to_ascii_lowercase();
        if !words.contains(&w) {
            words.push(w);
        }
    }
    Some((words, before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_are_read_as_the_parser_reads_them() {
        for p in ["user unknown", "no such user", "550 5 1 1", "a", "don't-<x>@y=z!%&~_,:;/", "\\bunknown\\b", "\\bdnsbl", "spam\\b"] {
            let body = rules_ascii(p);
            let pattern = format!("(?i-u){body}");
            let fast = plain_word(&pattern);
            assert!(fast.is_some(), "{pattern}");
            assert_eq!(fast, words_of(&pattern), "{pattern}");
        }
        for p in ["550 5.1.1", "a|b", "(a)", "a\\d", "\\b\\b", "", "é"] {
            assert_eq!(plain_word(&format!("(?i-u){}", rules_ascii(p))), None, "{p}");
        }
    }

    /// `\b` as the rules loader rewrites it.
    fn rules_ascii(p: &str) -> String {
        p.replace("\\b", "(?-u:\\b)")
    }

    #[test]
    fn word_sets_are_recognised() {
        assert!(words_of(r"(?i-u)(user|mailbox) not found").is_some());
        assert_eq!(words_of(r"(?i-u)(?-u:\b)unknown(?-u:\b)").map(|w| (w.1, w.2)), Some((true, true)));
        assert!(words_of(r"(?i-u)\d+ spam").is_none());
        assert!(words_of(r"(?i-u)user.*unknown").is_none());
    }
}
