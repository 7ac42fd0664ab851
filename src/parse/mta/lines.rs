//! The report text read once for the generic reader: its lines (bounded), which of
//! them are end markers, and one ASCII-lower-cased copy that the phrase searches
//! share. The end markers are found with one Aho-Corasick pass over that copy and a
//! check of what stands before each phrase on its line, instead of a regex run over
//! the whole text; the answers are those of the marker regex (see [`marker_starts`]).

use crate::parse::gate::Folded;
use aho_corasick::{AhoCorasick, MatchKind};
use std::sync::LazyLock;

/// Most lines of report text read.
pub const MAX_LINES: usize = 2000;

/// The phrases that open an end marker (after optional white space and a rule of
/// dashes, equals signs or underscores), written in lower case.
const MARKER_PHRASES: [&str; 15] = [
    "below this line is a copy",
    "this is a copy of",
    "original message",
    "the original message",
    "message headers follow",
    "header of the original",
    "headers of the original",
    "header of the returned",
    "headers of the returned",
    "returned mail follows",
    "a copy of the original",
    "undelivered message",
    "original message headers",
    "unsent message",
    "returned message",
];

/// The marker regex the phrase scan answers for: a line that starts (after white
/// space and an optional rule) with one of `MARKER_PHRASES`. Kept for text the
/// ASCII scan cannot speak for, and as the reference of the unit tests.
pub static END_MARKERS: LazyLock<Folded> = LazyLock::new(|| {
    crate::parse::text::folded(
        r"(?im)^\s*(?:-{2,}|={3,}|_{3,})?\s*(?:below this line is a copy|this is a copy of|original message|the original message|message headers follow|headers? of the (?:original|returned)|returned mail follows|a copy of the original|undelivered message|original message headers|unsent message|returned message)",
    )
    .expect("regex") // ok: constant pattern, compiled by the unit tests
});

static PHRASES: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| AhoCorasick::builder().match_kind(MatchKind::LeftmostFirst).build(MARKER_PHRASES).ok());

/// The report text split once.
pub struct ReportLines<'a> {
    /// The lines read (at most [`MAX_LINES`]), without their line ends.
    pub lines: Vec<&'a str>,
    /// Per line, whether it is an end marker.
    pub markers: Vec<bool>,
    /// The text the lines cover.
    pub scope: &'a str,
    /// `scope` lower-cased, when it is ASCII (the folded searches are exact there).
    pub lower: Option<Vec<u8>>,
}

impl<'a> ReportLines<'a> {
    /// Splits `t` into lines and finds the end markers.
    pub fn new(t: &'a str) -> ReportLines<'a> {
        // As `t.split('\n').take(MAX_LINES)`, with the SIMD line-feed search and the
        // vectors sized once.
        let b = t.as_bytes();
        // Sized from the length (mail lines average well over 24 bytes) rather than
        // by a first pass counting the line feeds.
        let cap = (b.len() / 24 + 8).min(MAX_LINES);
        let mut lines = Vec::with_capacity(cap);
        let mut starts = Vec::with_capacity(cap);
        let mut off = 0;
        for end in memchr::memchr_iter(b'\n', b).chain(std::iter::once(b.len())).take(MAX_LINES) {
            let l = t.get(off..end).unwrap_or("");
            starts.push(off);
            lines.push(l.strip_suffix('\r').unwrap_or(l));
            off = end + 1;
        }
        let mut markers = vec![false; lines.len()];
        let scope = crate::parse::text::prefix(t, off.min(t.len()));
        let mut lower = None;
        let found = if scope.is_ascii() {
            let l = scope.as_bytes().to_ascii_lowercase();
            let m = marker_starts(scope, &l);
            lower = Some(l);
            m
        } else if has_ascii_folding(scope) {
            END_MARKERS.starts(scope)
        } else {
            let l = scope.as_bytes().to_ascii_lowercase();
            marker_starts(scope, &l)
        };
        for m in found {
            // A match may begin on the blank prefix of its line; find the line holding it.
            let idx = match starts.binary_search(&m) {
                Ok(i) => i,
                Err(i) => i.saturating_sub(1),
            };
            if let Some(f) = markers.get_mut(idx) {
                *f = true;
            }
        }
        ReportLines { lines, markers, scope, lower }
    }

    /// Whether line `i` is an end marker.
    pub fn is_marker(&self, i: usize) -> bool {
        self.markers.get(i).copied().unwrap_or(false)
    }

    /// The lower-cased copy of the first `max` bytes of the text the lines were read
    /// from (`text`), when the copy covers them and they are ASCII.
    pub fn lower_prefix(&self, text: &str, max: usize) -> Option<&[u8]> {
        let want = crate::parse::text::prefix(text, max).len();
        self.lower.as_deref().filter(|l| l.len() >= want).and_then(|l| l.get(..want))
    }
}

/// Whether `s` holds a character that Unicode case folding maps onto an ASCII letter
/// (LATIN SMALL LETTER LONG S → s, KELVIN SIGN → k): the ASCII phrase scan would miss
/// what the case-insensitive regex finds there.
fn has_ascii_folding(s: &str) -> bool {
    s.contains('\u{17f}') || s.contains('\u{212a}')
}

/// Start offsets of the matches of [`END_MARKERS`] in `scope` (`lower`: its ASCII
/// lower-cased copy; `scope` holds no character that folds onto an ASCII letter).
/// A match is a phrase preceded on its line by `\s*`, an optional rule (`-{2,}`,
/// `={3,}`, `_{3,}`) and `\s*`, where `\s` spans line ends: it starts at the first
/// line start of that blank run. Phrases start with a letter, so a match never holds
/// another phrase's start and the phrases found left to right give every match.
pub fn marker_starts(scope: &str, lower: &[u8]) -> Vec<usize> {
    let Some(ac) = PHRASES.as_ref() else { return END_MARKERS.starts(scope) };
    let mut out = Vec::new();
    for m in ac.find_iter(lower) {
        if let Some(p) = marker_start(scope, m.start()) {
            out.push(p);
        }
    }
    out
}

/// The start of the marker match whose phrase begins at `q`, if there is one.
fn marker_start(s: &str, q: usize) -> Option<usize> {
    let b = s.as_bytes();
    let a = skip_space_back(s, q);
    // With a rule before the blank run: the whole run of its character.
    let ruled = match a.checked_sub(1).and_then(|i| b.get(i)) {
        Some(&c @ (b'-' | b'=' | b'_')) => {
            let mut r = a;
            while r > 0 && b.get(r - 1) == Some(&c) {
                r -= 1;
            }
            let min = if c == b'-' { 2 } else { 3 };
            if a - r >= min {
                let bs = skip_space_back(s, r);
                first_line_start(b, bs, r)
            } else {
                None
            }
        }
        _ => None,
    };
    ruled.or_else(|| first_line_start(b, a, q))
}

/// The first offset in `from..=to` at which a line starts (the text start or after
/// a line feed).
fn first_line_start(b: &[u8], from: usize, to: usize) -> Option<usize> {
    if from == 0 {
        return Some(0);
    }
    let window = b.get(from - 1..to)?;
    memchr::memchr(b'\n', window).map(|i| from + i)
}

/// The start of the run of white space (Unicode, as the regex's `\s`) ending at `at`.
fn skip_space_back(s: &str, at: usize) -> usize {
    let head = s.get(..at).unwrap_or("");
    let kept = head.trim_end_matches(char::is_whitespace);
    kept.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex_starts(t: &str) -> Vec<usize> {
        let r = regex::Regex::new(r"(?im)^\s*(?:-{2,}|={3,}|_{3,})?\s*(?:below this line is a copy|this is a copy of|original message|the original message|message headers follow|headers? of the (?:original|returned)|returned mail follows|a copy of the original|undelivered message|original message headers|unsent message|returned message)").expect("pattern");
        r.find_iter(t).map(|m| m.start()).collect()
    }

    #[test]
    fn the_phrase_scan_finds_what_the_regex_finds() {
        let texts = [
            "Hello\n\n--- Original Message ---\nx",
            "a\n \n  \t== header of the returned\n",
            "=== original message\n==== original message\n",
            "-original message\n- - original message\nx -- original message\n",
            "original message\n\n\n____ unsent message\n",
            "foo --\n original message",
            "foo\n--\n\n  original message headers follow",
            "\u{a0}original message\n\u{3000}\n\u{2003}the original message",
            "line\r\n\r\n--Original Message--\r\n",
            "the original message. the original message\nthis is a copy of\nbelow this line is a copy of",
            "___\n__ Returned message\n",
            "",
            "Original message",
            "x\n\n\n",
            "日本語\n-- Original Message\n",
            "message headers follow\nheaders of the original\n\tUndelivered Message",
        ];
        for t in texts {
            let lower = t.as_bytes().to_ascii_lowercase();
            assert_eq!(marker_starts(t, &lower), regex_starts(t), "{t:?}");
            let r = ReportLines::new(t);
            assert_eq!(r.lines.len(), r.markers.len());
        }
    }

    #[test]
    fn text_with_folding_letters_takes_the_regex() {
        let t = "x\n-- original meſſage\n";
        assert!(has_ascii_folding(t));
        let r = ReportLines::new(t);
        assert_eq!(r.markers, vec![false, true, false]);
    }
}
