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

mod alternative;

pub use alternative::Prepared;

use crate::parse::gate::with_lower;
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use alternative::compile;
use regex_automata::meta::Regex;
use std::sync::OnceLock;

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
    /// The first `PREFIX` bytes of every literal (distinct), as a full DFA: the
    /// ~1,900 default literals have a few hundred such prefixes, whose DFA (under
    /// 1 MB) builds about as fast as the whole literals' contiguous NFA (~300 KB) and
    /// scans in fewer instructions, and in no more time on a busy machine. (The whole
    /// literals' DFA is 5 MB and ~130M instructions to build.)
    ac: Option<AhoCorasick>,
    /// Per prefix of `ac`: the literals that start with it.
    prefixed: Vec<Vec<u32>>,
    /// The literals (lower case).
    lits: Vec<Vec<u8>>,
    /// Per literal: (alternative, preference among its words; 0 for a regex's).
    owners: Vec<Vec<(u32, u32)>>,
}

/// Literals are found by their first `PREFIX` bytes, then compared whole. Shorter
/// prefixes build faster and scan slower (more literals to compare per prefix found):
/// per message (parse+classify) and `parse` of one file, 6: 102.4k, 41.0M; 8: 101.0k,
/// 47.0M; 9: 99.9k, 51.7M; 10: 99.3k, 56.9M; 12: 98.9k, 68.9M instructions (the whole
/// literals' NFA: 101.9k, 49.7M).
const PREFIX: usize = 9;

/// The DFA of the distinct `PREFIX`-byte prefixes of `lits` (the NFA should the DFA
/// not build), and per prefix the literals that start with it.
fn prefix_automaton(lits: &[Vec<u8>]) -> (Option<AhoCorasick>, Vec<Vec<u32>>) {
    let mut index: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    let mut prefixes: Vec<&[u8]> = Vec::new();
    let mut prefixed: Vec<Vec<u32>> = Vec::new();
    for (i, l) in lits.iter().enumerate() {
        let p = l.get(..PREFIX).unwrap_or(l);
        let slot = *index.entry(p).or_insert_with(|| {
            prefixes.push(p);
            prefixed.push(Vec::new());
            prefixed.len() - 1
        });
        if let Some(g) = prefixed.get_mut(slot) {
            g.push(i as u32);
        }
    }
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&prefixes)
        .or_else(|_| AhoCorasick::builder().match_kind(MatchKind::Standard).build(&prefixes))
        .ok();
    (ac, prefixed)
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
            (set.ac, set.prefixed) = prefix_automaton(&lits);
            if set.ac.is_none() {
                // No automaton: every alternative runs its regex.
                for a in &mut set.alts {
                    (a.words, a.open) = (None, true);
                }
            }
        }
        set.lits = lits;
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
            prefixed: Vec::new(),
            lits: Vec::new(),
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
                    let s = m.start();
                    // Every literal starting with the prefix found, if it is all here.
                    for &lit in self.prefixed.get(m.pattern().as_usize()).map(Vec::as_slice).unwrap_or(&[]) {
                        let Some(l) = self.lits.get(lit as usize) else { continue };
                        // Most differ at the byte after the prefix: test it before the rest.
                        if l.get(PREFIX).is_some_and(|b| lower.get(s + PREFIX) != Some(b)) || lower.get(s..s + l.len()) != Some(l.as_slice()) {
                            continue;
                        }
                        let e = s + l.len();
                        for &(alt, pref) in self.owners.get(lit as usize).map(Vec::as_slice).unwrap_or(&[]) {
                            if let Some((before, after)) = self.alts.get(alt as usize).and_then(|a| a.words) {
                                if before && !boundary(hay, s) || after && !boundary(hay, e) {
                                    continue;
                                }
                            }
                            hits.push((alt, s as u32, e as u32, pref));
                        }
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
            // Literals longer than `PREFIX` sharing their first bytes.
            vec![r"recipient address rejected".into(), r"recipient addresses? (unknown|invalid)".into(), r"(?-u:\b)recipient(?-u:\b)".into()],
        ];
        let set = PatternSet::new(&pats).expect("patterns");
        let texts = ["550 User Not Found", "unknownuser", "the user is UNKNOWN.", "Mailbox is full, over quota", "over the quota", "554 SPAM", "x ab y", "ab", "cab", "NO SUCH ADDRESS no such user", "", "é unknown",
            "Recipient address unknown", "recipient addresses invalid", "RECIPIENT ADDRESS REJECTED", "recipients", "the recipient.", "recipient address rejecte", "recipient addrecipient address rejected"];
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
}
