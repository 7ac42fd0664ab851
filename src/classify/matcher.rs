//! Matching the rules' text patterns against a diagnostic, fast on text never seen
//! before. A rule's pattern is a list of alternatives (its `text` entries), matched
//! case-insensitively with leftmost-first semantics, as one regex
//! `(?:a1)|(?:a2)|...` would be.
//!
//! One Aho-Corasick scan of the lower-cased text finds every literal the alternatives
//! are made of. An alternative that is a finite set of words (`(user|mailbox) not
//! found`, optionally between ASCII word boundaries) is decided by that scan alone; any
//! other runs its own small regex, and only when the scan found a word every match of
//! it must contain. The answers (whether a pattern matches, and where) are those of the
//! joined regex: the leftmost start among the alternatives, the first alternative at it.

use crate::parse::gate::{folded_hir, required_literals_of, with_lower, FlagScan};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_automata::meta::Regex;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind, Look};
use std::sync::OnceLock;

/// Most words an alternative may expand to and still be matched by the scan alone.
const MAX_WORDS: usize = 512;

/// One alternative: its regex, and how the literal scan speaks for it.
#[derive(Debug)]
struct Alt {
    /// `(?i-u)body`, the source of `re`.
    pattern: String,
    /// Compiled on first use: most alternatives are decided by the scan, or never
    /// reached, and compiling all ~600 was 80 % of every command's start-up.
    re: OnceLock<Option<Regex>>,
    /// A finite set of words (boundaries required before, after): the scan decides.
    words: Option<(bool, bool)>,
    /// No literal is required: the regex always runs.
    open: bool,
    /// The literals speak only for ASCII text.
    ascii_only: bool,
}


/// One alternative analysed for the set, its regex not yet compiled.
#[derive(Debug)]
pub struct Prepared {
    pattern: String,
    /// Compiled already (the syntax analysis could not read the pattern).
    re: Option<Regex>,
    words: Option<(Vec<Vec<u8>>, bool, bool)>,
    required: Option<crate::parse::gate::Required>,
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

/// A literal occurrence of an alternative's word: (alternative, start, end, preference).
type Hit = (u32, u32, u32, u32);

/// The compiled text patterns of a rule set.
#[derive(Debug)]
pub struct PatternSet {
    /// Per pattern: its alternatives' ids, in order (consecutive).
    patterns: Vec<std::ops::Range<usize>>,
    /// Per pattern: those of its alternatives that are regexes (not word sets).
    regex_alts: Vec<Vec<usize>>,
    /// Per alternative: its pattern.
    alt_pattern: Vec<u32>,
    /// Per pattern: whether a regex alternative runs without a literal hit: one that
    /// requires no literal (`OPEN`), or whose literals speak only for ASCII text
    /// (`ASCII_ONLY`, on other text).
    unhit: Vec<u8>,
    alts: Vec<Alt>,
    /// The literals of every alternative, as a contiguous NFA. A full DFA of the same
    /// literals (~1,900 of them) runs fewer instructions per scan, but its tables are
    /// megabytes against the NFA's ~300 KB: on a busy machine (a shared cache) the NFA
    /// scans faster, and it is ten times cheaper to build.
    ac: Option<AhoCorasick>,
    /// Per literal of `ac`: (alternative, preference among its words; 0 for a regex's).
    owners: Vec<Vec<(u32, u32)>>,
}

/// What one scan of a text found; ask it per pattern.
pub struct Scan<'a> {
    set: &'a PatternSet,
    hay: &'a [u8],
    ascii: bool,
    /// Word hits whose boundaries hold and regex literal sightings, sorted.
    hits: Vec<Hit>,
    /// Per pattern (a bit each): whether any of its alternatives has a hit.
    hit_patterns: Vec<u64>,
}

/// See `PatternSet::unhit`.
const OPEN: u8 = 1;
/// See `PatternSet::unhit`.
const ASCII_ONLY: u8 = 2;

fn is_word_byte(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// An ASCII word boundary at `pos` of `hay` (what `(?-u:\b)` tests).
fn boundary(hay: &[u8], pos: usize) -> bool {
    let before = pos.checked_sub(1).and_then(|p| hay.get(p));
    is_word_byte(before) != is_word_byte(hay.get(pos))
}

/// Compiles one alternative's regex (`(?i-u)body`): what `regex::bytes::RegexBuilder`
/// with a 1 MB size limit builds, without the full DFAs it adds for small patterns
/// (a third of the build; the lazy DFA answers as fast once its states are cached,
/// and these regexes only run where the scan saw their literal).
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
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

impl PatternSet {
    /// Compiles patterns, each a list of alternatives (regex syntax, matched with
    /// `(?i-u)`); fails on the first alternative that does not compile.
    #[cfg(test)]
    pub fn new(patterns: &[Vec<String>]) -> Result<PatternSet, regex::Error> {
        let prepared = patterns
            .iter()
            .map(|alts| alts.iter().map(|b| Prepared::new(format!("(?i-u){b}"))).collect::<Result<Vec<_>, regex::Error>>())
            .collect::<Result<Vec<_>, _>>()?;
        let set = PatternSet::with_alternatives(prepared);
        (0..set.len()).try_for_each(|p| set.compile_pattern(p, true).map_err(|(_, e)| e))?;
        Ok(set)
    }

    /// Builds the set from patterns, each a list of analysed alternatives.
    pub fn with_alternatives(patterns: Vec<Vec<Prepared>>) -> PatternSet {
        let mut set = PatternSet::empty();
        let mut lits: Vec<Vec<u8>> = Vec::new();
        let mut index: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::with_capacity(2048);
        let mut own = |lit: Vec<u8>, alt: usize, pref: usize, owners: &mut Vec<Vec<(u32, u32)>>| {
            let id = *index.entry(lit.clone()).or_insert_with(|| {
                lits.push(lit);
                owners.push(Vec::new());
                lits.len() - 1
            });
            if let Some(o) = owners.get_mut(id) {
                o.push((alt as u32, pref as u32));
            }
        };
        for alternatives in patterns {
            let first = set.alts.len();
            for prep in alternatives {
                let Prepared { pattern, re, words, required } = prep;
                let alt = set.alts.len();
                let cell = OnceLock::new();
                if let Some(re) = re {
                    let _ = cell.set(Some(re));
                }
                if let Some((words, before, after)) = words {
                    for (pref, w) in words.into_iter().enumerate() {
                        own(w, alt, pref, &mut set.owners);
                    }
                    set.alts.push(Alt { pattern, re: cell, words: Some((before, after)), open: false, ascii_only: false });
                } else {
                    let ascii_only = required.as_ref().is_some_and(|r| r.ascii_only);
                    let open = required.is_none();
                    for l in required.map(|r| r.literals).unwrap_or_default() {
                        own(l, alt, 0, &mut set.owners);
                    }
                    set.alts.push(Alt { pattern, re: cell, words: None, open, ascii_only });
                }
            }
            set.patterns.push(first..set.alts.len());
        }
        if !lits.is_empty() {
            // A contiguous NFA (see `ac`).
            set.ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .build(&lits)
                .or_else(|_| AhoCorasick::builder().match_kind(MatchKind::Standard).build(&lits))
                .ok();
            if set.ac.is_none() {
                // No automaton: every alternative runs its regex.
                for a in &mut set.alts {
                    (a.words, a.open) = (None, true);
                }
            }
        }
        set.regex_alts = set.patterns.iter().map(|r| r.clone().filter(|&a| set.alts.get(a).is_some_and(|x| x.words.is_none())).collect()).collect();
        set.alt_pattern = vec![0; set.alts.len()];
        for (p, r) in set.patterns.iter().enumerate() {
            for a in r.clone() {
                if let Some(slot) = set.alt_pattern.get_mut(a) {
                    *slot = p as u32;
                }
            }
        }
        set.unhit = set
            .regex_alts
            .iter()
            .map(|r| {
                r.iter().filter_map(|&a| set.alts.get(a)).fold(0, |f, a| f | if a.open { OPEN } else { 0 } | if a.ascii_only { ASCII_ONLY } else { 0 })
            })
            .collect();
        set
    }

    /// A set with no patterns.
    pub fn empty() -> PatternSet {
        PatternSet {
            patterns: Vec::new(),
            regex_alts: Vec::new(),
            alt_pattern: Vec::new(),
            unhit: Vec::new(),
            alts: Vec::new(),
            ac: None,
            owners: Vec::new(),
        }
    }

    /// Number of patterns.
    pub(crate) fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Compiles every alternative of pattern `p` not compiled yet (with `all` false,
    /// only those whose regex can ever run: a word set is decided by the scan alone);
    /// the error names the alternative (index within the pattern).
    pub fn compile_pattern(&self, p: usize, all: bool) -> Result<(), (usize, regex::Error)> {
        let Some(range) = self.patterns.get(p) else { return Ok(()) };
        for (i, alt) in self.alts.get(range.clone()).unwrap_or(&[]).iter().enumerate() {
            if alt.re.get().is_none() && (all || alt.words.is_none()) {
                let re = compile(&alt.pattern).map_err(|e| (i, e))?;
                let _ = alt.re.set(Some(re));
            }
        }
        Ok(())
    }

    /// Scans `hay` once for every literal.
    pub fn scan<'a>(&'a self, hay: &'a [u8]) -> Scan<'a> {
        let mut hits: Vec<Hit> = Vec::new();
        if let Some(ac) = &self.ac {
            with_lower(hay, |lower| {
                for m in ac.find_overlapping_iter(lower) {
                    let (s, e) = (m.start(), m.end());
                    for &(alt, pref) in self.owners.get(m.pattern().as_usize()).map(Vec::as_slice).unwrap_or(&[]) {
                        if let Some((before, after)) = self.alts.get(alt as usize).and_then(|a| a.words) {
                            if before && !boundary(hay, s) || after && !boundary(hay, e) {
                                continue;
                            }
                        }
                        hits.push((alt, s as u32, e as u32, pref));
                    }
                }
            });
        }
        hits.sort_unstable();
        let mut hit_patterns = vec![0u64; self.patterns.len().div_ceil(64)];
        for h in &hits {
            let p = self.alt_pattern.get(h.0 as usize).copied().unwrap_or(0) as usize;
            if let Some(w) = hit_patterns.get_mut(p / 64) {
                *w |= 1 << (p % 64);
            }
        }
        Scan { set: self, hay, ascii: hay.is_ascii(), hits, hit_patterns }
    }
}

impl Alt {
    /// The regex, compiled on first use (None if it does not compile: `rules check`
    /// and the tests compile every default and operator alternative up front).
    fn regex(&self) -> Option<&Regex> {
        self.re
            .get_or_init(|| match compile(&self.pattern) {
                Ok(re) => Some(re),
                Err(e) => {
                    tracing::error!(pattern = %self.pattern, error = %e, "rule text pattern does not compile");
                    None
                }
            })
            .as_ref()
    }
}

impl Scan<'_> {
    /// The hits of alternatives in `alts`.
    fn hits_in(&self, alts: &std::ops::Range<usize>) -> &[Hit] {
        let (a, b) = (alts.start as u32, alts.end as u32);
        let lo = self.hits.partition_point(|h| h.0 < a);
        let hi = lo + self.hits.get(lo..).unwrap_or(&[]).partition_point(|h| h.0 < b);
        self.hits.get(lo..hi).unwrap_or(&[])
    }

    /// Where alternative `alt` first matches (leftmost start, preferred word there),
    /// given hits holding its own.
    fn alt_find(&self, alt: usize, hits: &[Hit], need_span: bool) -> Option<(usize, usize)> {
        let a = alt as u32;
        let lo = hits.partition_point(|h| h.0 < a);
        let hits = hits.get(lo..).unwrap_or(&[]);
        let hits = hits.get(..hits.partition_point(|h| h.0 == a)).unwrap_or(&[]);
        let info = self.set.alts.get(alt)?;
        if info.words.is_some() {
            // Sorted by (start, end, preference): the preferred word at the first start.
            let first = hits.first()?;
            let best = hits.iter().take_while(|h| h.1 == first.1).min_by_key(|h| h.3)?;
            return Some((best.1 as usize, best.2 as usize));
        }
        if !info.open && hits.is_empty() && (self.ascii || !info.ascii_only) {
            return None;
        }
        let re = info.regex()?;
        if need_span {
            re.find(self.hay).map(|m| (m.start(), m.end()))
        } else {
            re.is_match(self.hay).then_some((0, 0))
        }
    }

    /// Whether pattern `p` may match only where the scan saw one of its literals (no
    /// regex alternative of it runs without one on this text).
    fn needs_hit(&self, p: usize) -> bool {
        let f = self.set.unhit.get(p).copied().unwrap_or(OPEN);
        f & OPEN == 0 && (self.ascii || f & ASCII_ONLY == 0)
    }

    /// Whether the scan saw a literal of pattern `p`.
    fn was_hit(&self, p: usize) -> bool {
        self.hit_patterns.get(p / 64).is_some_and(|w| w & (1 << (p % 64)) != 0)
    }

    /// Whether pattern `p` may match: the scan saw one of its literals, or it has an
    /// alternative that runs without one. (False means [`Scan::is_match`] is false.)
    pub fn may_match(&self, p: usize) -> bool {
        self.was_hit(p) || !self.needs_hit(p)
    }

    /// Whether pattern `p` matches.
    pub fn is_match(&self, p: usize) -> bool {
        let Some(alts) = self.set.patterns.get(p) else { return false };
        // Most patterns have no literal in a text: no alternative of theirs is asked.
        if !self.was_hit(p) && self.needs_hit(p) {
            return false;
        }
        let hits = self.hits_in(alts);
        // A word hit is a match (its boundaries were checked in the scan).
        if hits.iter().any(|h| self.set.alts.get(h.0 as usize).is_some_and(|a| a.words.is_some())) {
            return true;
        }
        self.set.regex_alts.get(p).is_some_and(|r| r.iter().any(|&a| self.alt_find(a, hits, false).is_some()))
    }

    /// Where pattern `p` matches, as the joined regex would report it.
    pub fn find(&self, p: usize) -> Option<(usize, usize)> {
        let alts = self.set.patterns.get(p)?;
        let hits = self.hits_in(alts);
        let mut best: Option<(usize, usize)> = None;
        let mut consider = |a: usize| {
            if let Some(m) = self.alt_find(a, hits, true) {
                // Strictly earlier only: at the same start the earlier alternative wins.
                if best.is_none_or(|b| m.0 < b.0) {
                    best = Some(m);
                }
            }
        };
        if self.needs_hit(p) {
            // Alternatives without a hit find nothing here: only those with one are
            // asked, in order (`hits` is sorted by alternative).
            let mut last = None;
            for h in hits {
                if last != Some(h.0) {
                    last = Some(h.0);
                    consider(h.0 as usize);
                }
            }
        } else {
            for a in alts.clone() {
                consider(a);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set's answers equal the joined regex's on every text.
    #[test]
    fn same_answers_as_the_joined_regex() {
        let pats: Vec<Vec<String>> = vec![
            vec![r"(user|mailbox|recipient) not found".into(), r"(?-u:\b)unknown(?-u:\b)".into(), r"no such (user|address)".into()],
            vec![r"mailbox (is )?full".into(), r"quota".into(), r"over (the )?quota".into()],
            vec![r"\d{3} spam".into(), r"a|ab".into()],
            vec![r"(?-u:\b)(a|ab)(?-u:\b)".into()],
        ];
        let set = PatternSet::new(&pats).expect("patterns");
        let texts = ["550 User Not Found", "unknownuser", "the user is UNKNOWN.", "Mailbox is full, over quota", "over the quota", "554 SPAM", "x ab y", "ab", "cab", "NO SUCH ADDRESS no such user", "", "é unknown"];
        for (p, alts) in pats.iter().enumerate() {
            let joined = format!("(?i-u){}", alts.iter().map(|a| format!("(?:{a})")).collect::<Vec<_>>().join("|"));
            let re = regex::bytes::Regex::new(&joined).expect("joined");
            for t in texts {
                let scan = set.scan(t.as_bytes());
                assert_eq!(scan.is_match(p), re.is_match(t.as_bytes()), "{joined} on {t:?}");
                assert_eq!(scan.find(p), re.find(t.as_bytes()).map(|m| (m.start(), m.end())), "{joined} on {t:?}");
            }
        }
    }

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
