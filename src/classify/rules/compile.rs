//! Rule specs → a [`RuleSet`]: each rule validated (the error names file, line and
//! rule), its text patterns analysed for the literal scan (`matcher`).

use super::decide::normalize_command;
use super::spec::RuleSpec;
use super::{RuleSet, RulesError};
use super::super::matcher::{PatternSet, Prepared};
use super::super::status::{ReplyPattern, StatusPattern};
use super::super::verdict::Reason;
use crate::parse::Kind;

/// Where a rule's reason comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum ReasonSpec {
    Fixed(Reason),
    FromHint,
    FromStatus,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// The rule as written.
    pub spec: RuleSpec,
    /// Where it came from (file name) and its line.
    pub origin: (String, usize),
    pub(super) reason: ReasonSpec,
    pub(super) patterns: Vec<usize>,
    pub(super) status: Vec<StatusPattern>,
    pub(super) reply: Vec<ReplyPattern>,
    pub(super) command: Vec<String>,
    pub(super) not_command: Vec<String>,
    pub(super) kind: Vec<Kind>,
    pub(super) host: Vec<String>,
    pub(super) hint: Vec<String>,
    pub(super) temporary: Option<bool>,
}

/// Every record kind, for reading the names rules give.
pub(super) const KINDS: [Kind; 7] =
    [Kind::Bounce, Kind::Delay, Kind::Delivered, Kind::Relayed, Kind::Autoreply, Kind::Complaint, Kind::None];

impl Rule {
    /// The rule id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}

/// Rewrites a pattern so the set stays small and fast: case-insensitive, ASCII classes and
/// word boundaries (Unicode `\b` makes the set many times slower).
fn ascii_pattern(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 16);
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e @ ('b' | 'B' | 'w' | 'W' | 's' | 'S' | 'd' | 'D')) => {
                out.push_str("(?-u:\\");
                out.push(e);
                out.push(')');
            }
            Some(e) => {
                out.push('\\');
                out.push(e);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The joined pattern of a rule's `text` entries (as `ascii_pattern` rewrites them).
fn joined_of(bodies: &[String]) -> String {
    format!("(?i-u){}", bodies.iter().map(|b| format!("(?:{b})")).collect::<Vec<_>>().join("|"))
}

/// One pattern's alternatives as analysed (or the error of the first bad one).
type Analysed = Vec<Result<Prepared, regex::Error>>;

/// Each spec's text pattern (index among the distinct ones, in order of first use;
/// None without text) and every distinct pattern's alternatives analysed
/// ([`Prepared::new`]); on two threads when there are two cores, since this is most of
/// a rule set's build and every command waits for it.
fn prepare_patterns(specs: &[(RuleSpec, String, usize)]) -> (Vec<Option<usize>>, Vec<Analysed>) {
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut work: Vec<Vec<String>> = Vec::new();
    let mut slots = Vec::with_capacity(specs.len());
    for (spec, _, _) in specs {
        if spec.text.is_empty() {
            slots.push(None);
            continue;
        }
        let bodies: Vec<String> = spec.text.iter().map(|p| ascii_pattern(p)).collect();
        let next = work.len();
        let slot = *index.entry(joined_of(&bodies)).or_insert(next);
        if slot == next {
            work.push(bodies);
        }
        slots.push(Some(slot));
    }
    (slots, analyse_patterns(&work))
}

/// [`Prepared::new`] for every alternative of `work`, in order.
fn analyse_patterns(work: &[Vec<String>]) -> Vec<Analysed> {
    let analyse = |chunk: &[Vec<String>]| -> Vec<Analysed> {
        chunk.iter().map(|bodies| bodies.iter().map(|b| Prepared::new(format!("(?i-u){b}"))).collect()).collect()
    };
    let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) && work.len() > 8;
    if !parallel {
        return analyse(work);
    }
    // Split where half the alternatives lie on each side.
    let total: usize = work.iter().map(Vec::len).sum();
    let mut acc = 0;
    let mid = work.iter().position(|b| {
        acc += b.len();
        acc * 2 >= total
    });
    let (first, second) = work.split_at(mid.map_or(work.len(), |m| m + 1));
    std::thread::scope(|s| {
        let other = std::thread::Builder::new().spawn_scoped(s, || analyse(second));
        let mut out = analyse(first);
        match other.ok().and_then(|h| h.join().ok()) {
            Some(rest) => out.extend(rest),
            None => out.extend(analyse(second)),
        }
        out
    })
}

impl RuleSet {
    /// Compiles merged rule specs (spec, file, line).
    pub fn compile(specs: Vec<(RuleSpec, String, usize)>) -> Result<RuleSet, RulesError> {
        let mut rules = Vec::with_capacity(specs.len());
        let mut alternatives: Vec<Vec<Prepared>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let (slots, prepared) = prepare_patterns(&specs);
        let mut prepared = prepared.into_iter();
        for ((spec, file, line), slot) in specs.into_iter().zip(slots) {
            let err = |message: String| RulesError::Rule { file: file.clone(), line, id: spec.id.clone(), message };
            if spec.id.trim().is_empty() {
                return Err(err("empty id".into()));
            }
            if !seen.insert(spec.id.clone()) {
                return Err(err("duplicate id".into()));
            }
            let reason = match spec.reason.as_str() {
                "from-hint" => ReasonSpec::FromHint,
                "from-status" => ReasonSpec::FromStatus,
                n => ReasonSpec::Fixed(Reason::from_name(n).ok_or_else(|| err(format!("unknown reason {n:?}")))?),
            };
            // One pattern per rule (its alternatives, matched as if joined). Each
            // alternative is checked here, where an error can name the rule; its regex
            // is compiled on first use (`compile_regexes` compiles them all).
            // A pattern seen before (same alternatives) was checked then.
            let mut idx = Vec::new();
            if let Some(i) = slot {
                if i == alternatives.len() {
                    // First use: analysed in `prepare_patterns`, in this same order.
                    let results = prepared.next().unwrap_or_default();
                    let mut alts = Vec::with_capacity(spec.text.len());
                    for (p, r) in spec.text.iter().zip(results) {
                        alts.push(r.map_err(|e| err(format!("text {p:?}: {e}")))?);
                    }
                    alternatives.push(alts);
                }
                idx.push(i);
            }
            let status = spec.status.iter()
                .map(|s| StatusPattern::parse(s).ok_or_else(|| err(format!("bad status pattern {s:?}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let reply = spec.reply.iter()
                .map(|s| ReplyPattern::parse(s).ok_or_else(|| err(format!("bad reply pattern {s:?}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let kind = spec.kind.iter()
                .map(|k| KINDS.iter().copied().find(|x| x.as_str() == k.as_str()).ok_or_else(|| err(format!("unknown kind {k:?}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let temporary = match spec.severity.as_deref() {
                None => None,
                Some("temporary") => Some(true),
                Some("permanent") => Some(false),
                Some(s) => return Err(err(format!("severity {s:?}: temporary or permanent"))),
            };
            for h in &spec.hint {
                if h != "*" && Reason::from_name(h).is_none() {
                    return Err(err(format!("hint {h:?} is not a reason")));
                }
            }
            if spec.examples.is_empty() {
                return Err(err("a rule needs at least one example".into()));
            }
            let upper = |v: &Vec<String>| v.iter().map(|c| normalize_command(c).into_owned()).collect();
            rules.push(Rule {
                reason,
                patterns: idx,
                status,
                reply,
                command: upper(&spec.command),
                not_command: upper(&spec.not_command),
                kind,
                host: spec.host.iter().map(|h| h.trim().trim_start_matches("*.").to_ascii_lowercase()).collect(),
                hint: spec.hint.clone(),
                temporary,
                origin: (file, line),
                spec,
            });
        }
        let patterns = PatternSet::with_alternatives(alternatives);
        Ok(RuleSet::new(rules, patterns))
    }

    /// The set of `rules` over `patterns`, with its per-kind candidate lists.
    pub(super) fn new(rules: Vec<Rule>, patterns: PatternSet) -> RuleSet {
        let candidates = (0..KINDS.len() * 2)
            .map(|slot| {
                let (kind, temporary) = (KINDS.get(slot / 2).copied(), slot % 2 == 1);
                rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        (r.kind.is_empty() || kind.is_some_and(|k| r.kind.contains(&k))) && r.temporary.is_none_or(|t| t == temporary)
                    })
                    .map(|(i, r)| match r.patterns.as_slice() {
                        [p] => (i as u32, *p as u32),
                        _ => (i as u32, super::NO_PATTERN),
                    })
                    .collect()
            })
            .collect();
        RuleSet { rules, patterns, candidates }
    }

    /// Compiles the text patterns of the rules `which` selects now (they are otherwise
    /// compiled on first use); the error names the rule and the text.
    pub(super) fn compile_regexes_of(&self, which: impl Fn(&Rule) -> bool, all: bool) -> Result<(), RulesError> {
        for rule in self.rules.iter().filter(|r| which(r)) {
            for &p in &rule.patterns {
                self.patterns.compile_pattern(p, all).map_err(|(alt, e)| RulesError::Rule {
                    file: rule.origin.0.clone(),
                    line: rule.origin.1,
                    id: rule.spec.id.clone(),
                    message: format!("text {:?}: {e}", rule.spec.text.get(alt).map_or("", String::as_str)),
                })?;
            }
        }
        Ok(())
    }

    /// Compiles every rule's text patterns now (checks; benchmarks that time matching
    /// alone): what would otherwise happen on first use.
    pub fn compile_regexes(&self) -> Result<(), RulesError> {
        self.compile_regexes_of(|_| true, true)
    }

    /// Prepares for a long run: every regex that can run compiled (otherwise each is
    /// on first use). A word-set alternative is decided by the literal scan and never
    /// runs its regex: compiling those was 95 % of a server's start-up.
    pub fn prepare(&self) -> Result<(), RulesError> {
        self.compile_regexes_of(|_| true, false)
    }
}
