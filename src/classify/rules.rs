//! Classification rules as data: the TOML format, loading (the embedded defaults plus an
//! operator file that adds or overrides rules by id), compilation of the text patterns
//! (`matcher`), and first-match-wins evaluation in file order.
//!
//! Speed: a record's diagnostic is scanned once for the words of every pattern; a
//! rule's pattern is only asked about when the rule is reached in order and its other
//! matchers hold, and most patterns are answered by that scan without a regex. (One
//! `RegexSet` of all rules spent ~300 µs on each text it had not seen before.)

use super::status::{ReplyPattern, StatusCode, StatusPattern};
use super::verdict::{Class, Fault, Reason};
use super::matcher::{PatternSet, Prepared, Scan};
use crate::parse::{Kind, Record};
use regex::bytes::Regex;
use serde::Deserialize;
use std::borrow::Cow;

/// The rules compiled into the binary.
pub const DEFAULT_RULES: &str = include_str!("rules/default.toml");

/// Errors loading or compiling rules.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file is not valid TOML for the rules format.
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    /// A rule is invalid (bad regex, unknown reason, bad status pattern ...).
    #[error("{file}:{line}: rule {id}: {message}")]
    Rule { file: String, line: usize, id: String, message: String },
    /// The patterns do not compile together.
    #[error("rules: {0}")]
    Set(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    /// Named pattern lists a rule's `text` can include as "@name".
    #[serde(default)]
    lists: std::collections::BTreeMap<String, Vec<String>>,
}

/// Named pattern lists (`[lists]`), shared by rules as `"@name"` in `text`.
pub type Lists = std::collections::BTreeMap<String, Vec<String>>;

/// One rule as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique id; an operator rule with the id of a default rule replaces it.
    pub id: String,
    /// A reason name, `from-hint` (the parser's reason hint) or `from-status` (RFC 3463).
    pub reason: String,
    /// Regexes on the diagnostic text (case-insensitive; any one must match).
    #[serde(default)]
    pub text: Vec<String>,
    /// Enhanced status code patterns ("5.1.1", "5.7.*"; any one must match).
    #[serde(default)]
    pub status: Vec<String>,
    /// Reply code patterns ("550", "5xx").
    #[serde(default)]
    pub reply: Vec<String>,
    /// SMTP commands the error answered (RCPT, DATA, ... ; "" for unknown).
    #[serde(default)]
    pub command: Vec<String>,
    /// SMTP commands that exclude the rule.
    #[serde(default)]
    pub not_command: Vec<String>,
    /// Record kinds (bounce, delay, delivered, relayed, autoreply, complaint).
    #[serde(default)]
    pub kind: Vec<String>,
    /// Remote or reporting MTA host names (the name itself or any subdomain).
    #[serde(default)]
    pub host: Vec<String>,
    /// Parser reason hints; `*` for any.
    #[serde(default)]
    pub hint: Vec<String>,
    /// `temporary` (4xx) or `permanent` (5xx).
    #[serde(default)]
    pub severity: Option<String>,
    /// Class override (default: the reason's).
    #[serde(default)]
    pub class: Option<Class>,
    /// Fault override (default: the reason's).
    #[serde(default)]
    pub fault: Option<Fault>,
    /// Example diagnostics this rule must decide.
    #[serde(default)]
    pub examples: Vec<Example>,
    /// Why the rule exists.
    #[serde(default)]
    pub note: String,
    /// In an operator file: place the new rule before this id (default: first).
    #[serde(default)]
    pub before: Option<String>,
    /// In an operator file: drop the default rule with this id.
    #[serde(default)]
    pub disabled: bool,
}

/// An example: a diagnostic text, or a table giving the other record fields too.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Example {
    /// Just the text; the other fields come from the rule's own matchers.
    Text(String),
    /// A fuller record.
    Full(ExampleSpec),
}

/// The record fields an example may set.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExampleSpec {
    /// Diagnostic text.
    #[serde(default)]
    pub text: String,
    /// Enhanced status code.
    pub status: Option<String>,
    /// Reply code.
    pub reply: Option<u16>,
    /// SMTP command.
    pub command: Option<String>,
    /// Record kind.
    pub kind: Option<String>,
    /// Remote MTA.
    pub host: Option<String>,
    /// Parser reason hint.
    pub hint: Option<String>,
    /// The rule id expected to decide (default: the rule holding the example).
    pub expect: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum ReasonSpec {
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
    reason: ReasonSpec,
    patterns: Vec<usize>,
    status: Vec<StatusPattern>,
    reply: Vec<ReplyPattern>,
    command: Vec<String>,
    not_command: Vec<String>,
    kind: Vec<Kind>,
    host: Vec<String>,
    hint: Vec<String>,
    temporary: Option<bool>,
}

/// What a record offers the matchers, computed once per record.
pub(crate) struct Facts<'a> {
    pub(crate) status: Option<StatusCode>,
    pub(crate) temporary: bool,
    pub(crate) command: Cow<'static, str>,
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
        let mut command = normalize_command(&record.smtp_command);
        if command.is_empty() {
            command = Cow::Borrowed(command_in_text(&record.diagnostic));
        }
        let host = |h: &'a str| h.trim().trim_end_matches('.');
        Facts { status, temporary, command, record, hosts: [host(&record.remote_mta), host(&record.reporting_mta)] }
    }
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
fn normalize_command(c: &str) -> Cow<'static, str> {
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

const KINDS: [Kind; 7] =
    [Kind::Bounce, Kind::Delay, Kind::Delivered, Kind::Relayed, Kind::Autoreply, Kind::Complaint, Kind::None];

/// The compiled rule list.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// The distinct text patterns (a rule's `text` entries are one pattern).
    patterns: PatternSet,
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
    /// The rule id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    fn reason_for(&self, f: &Facts) -> Option<Reason> {
        match self.reason {
            ReasonSpec::Fixed(r) => Some(r),
            ReasonSpec::FromHint => Reason::from_name(f.record.reason_hint.trim()),
            ReasonSpec::FromStatus => f.status.filter(|s| !s.is_generic()).and_then(StatusCode::reason),
        }
    }

    /// Whether the rule applies; `hit` says whether a pattern matches the diagnostic.
    /// Returns the pattern that matched (None for a rule without text).
    fn applies(&self, f: &Facts, hit: &mut impl FnMut(usize) -> bool) -> Option<Option<usize>> {
        let r = f.record;
        if !self.kind.is_empty() && !self.kind.contains(&r.kind) {
            return None;
        }
        if let Some(t) = self.temporary {
            if t != f.temporary {
                return None;
            }
        }
        if !self.status.is_empty() && !f.status.is_some_and(|s| self.status.iter().any(|p| p.matches(s))) {
            return None;
        }
        if !self.reply.is_empty() && !r.reply_code.is_some_and(|c| self.reply.iter().any(|p| p.matches(c))) {
            return None;
        }
        if !self.command.is_empty() && !self.command.iter().any(|c| *c == *f.command) {
            return None;
        }
        if self.not_command.iter().any(|c| *c == *f.command) {
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

/// The line (1-based) of the first `id` line naming `id`, among `id_lines` (line
/// number, text): found once per file, not per rule.
fn line_of(id_lines: &[(usize, &str)], id: &str) -> usize {
    let needle = format!("\"{id}\"");
    id_lines.iter().find(|(_, l)| l.contains(&needle)).map_or(0, |(n, _)| n + 1)
}

/// Parses a rules file into specs (each with its line) and its pattern lists.
pub fn parse_specs(file: &str, text: &str) -> Result<(Vec<(RuleSpec, usize)>, Lists), RulesError> {
    let parsed: RulesFile =
        toml::from_str(text).map_err(|e| RulesError::Parse { file: file.into(), message: e.to_string() })?;
    let id_lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| l.trim_start().starts_with("id")).collect();
    let specs = parsed.rule.into_iter().map(|r| { let l = line_of(&id_lines, &r.id); (r, l) }).collect();
    Ok((specs, parsed.lists))
}

/// Replaces "@name" entries of every rule's `text` with the named list.
pub fn expand_lists(specs: &mut [(RuleSpec, String, usize)], lists: &Lists) -> Result<(), RulesError> {
    for (spec, file, line) in specs.iter_mut() {
        if !spec.text.iter().any(|t| t.starts_with('@')) {
            continue;
        }
        let mut out = Vec::new();
        for t in &spec.text {
            match t.strip_prefix('@') {
                Some(name) => out.extend(lists.get(name).cloned().ok_or_else(|| RulesError::Rule {
                    file: file.clone(),
                    line: *line,
                    id: spec.id.clone(),
                    message: format!("no pattern list named {name:?}"),
                })?),
                None => out.push(t.clone()),
            }
        }
        spec.text = out;
    }
    Ok(())
}

/// Merges operator rules into the defaults: same id replaces (or with `disabled`
/// removes); a new id goes before `before` or, by default, first.
pub fn merge(
    defaults: Vec<(RuleSpec, String, usize)>,
    operator: Vec<(RuleSpec, String, usize)>,
) -> Vec<(RuleSpec, String, usize)> {
    let mut out = defaults;
    let mut front = 0;
    for item in operator {
        if let Some(pos) = out.iter().position(|(r, _, _)| r.id == item.0.id) {
            if item.0.disabled {
                out.remove(pos);
                if pos < front {
                    front -= 1;
                }
            } else {
                out[pos] = item;
            }
        } else if item.0.disabled {
            continue;
        } else if let Some(pos) = item.0.before.as_ref().and_then(|b| out.iter().position(|(r, _, _)| &r.id == b)) {
            out.insert(pos, item);
            if pos < front {
                front += 1;
            }
        } else {
            out.insert(front, item);
            front += 1;
        }
    }
    out
}

/// The joined pattern of a rule's `text` entries (as `ascii_pattern` rewrites them).
fn joined_of(bodies: &[String]) -> String {
    format!("(?i-u){}", bodies.iter().map(|b| format!("(?:{b})")).collect::<Vec<_>>().join("|"))
}

/// Every distinct text pattern of `specs`, in order of first use, its alternatives
/// analysed ([`Prepared::new`]); on two threads when there are two cores, since this
/// is most of a rule set's build and every command waits for it.
fn prepare_patterns(specs: &[(RuleSpec, String, usize)]) -> Vec<Vec<Result<Prepared, regex::Error>>> {
    let mut seen = std::collections::HashSet::new();
    let mut work: Vec<Vec<String>> = Vec::new();
    for (spec, _, _) in specs {
        let bodies: Vec<String> = spec.text.iter().map(|p| ascii_pattern(p)).collect();
        if !bodies.is_empty() && seen.insert(joined_of(&bodies)) {
            work.push(bodies);
        }
    }
    let analyse = |chunk: &[Vec<String>]| -> Vec<Vec<Result<Prepared, regex::Error>>> {
        chunk.iter().map(|bodies| bodies.iter().map(|b| Prepared::new(format!("(?i-u){b}"))).collect()).collect()
    };
    let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) && work.len() > 8;
    if !parallel {
        return analyse(&work);
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
        let mut patterns: Vec<String> = Vec::new();
        let mut alternatives: Vec<Vec<Prepared>> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut prepared = prepare_patterns(&specs).into_iter();
        for (spec, file, line) in specs {
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
            let bodies: Vec<String> = spec.text.iter().map(|p| ascii_pattern(p)).collect();
            if !bodies.is_empty() {
                let joined = joined_of(&bodies);
                if let Some(&i) = index.get(&joined) {
                    idx.push(i);
                } else {
                    // Analysed in `prepare_patterns`, in this same order of first use.
                    let results = prepared.next().unwrap_or_default();
                    let mut alts = Vec::with_capacity(bodies.len());
                    for (p, r) in spec.text.iter().zip(results) {
                        alts.push(r.map_err(|e| err(format!("text {p:?}: {e}")))?);
                    }
                    index.insert(joined.clone(), patterns.len());
                    idx.push(patterns.len());
                    patterns.push(joined);
                    alternatives.push(alts);
                }
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
        Ok(RuleSet { rules, patterns })
    }

    /// Compiles the text patterns of the rules `which` selects now (they are otherwise
    /// compiled on first use); the error names the rule and the text.
    fn compile_regexes_of(&self, which: impl Fn(&Rule) -> bool, all: bool) -> Result<(), RulesError> {
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

    /// Loads the embedded defaults plus an optional operator file (name, text).
    pub fn load(operator: Option<(&str, &str)>) -> Result<RuleSet, RulesError> {
        let tag = |v: Vec<(RuleSpec, usize)>, f: &str| v.into_iter().map(|(r, l)| (r, f.to_string(), l)).collect();
        let (specs, mut lists) = parse_specs("default.toml", DEFAULT_RULES)?;
        let defaults = tag(specs, "default.toml");
        let extra = match operator {
            Some((name, text)) => {
                let (specs, more) = parse_specs(name, text)?;
                lists.extend(more);
                tag(specs, name)
            }
            None => Vec::new(),
        };
        let mut merged = merge(defaults, extra);
        expand_lists(&mut merged, &lists)?;
        let set = RuleSet::compile(merged)?;
        // An operator's patterns are new: compile them now so a bad one (too big) fails
        // at load, not silently at first use. The defaults are checked by the tests.
        if let Some((name, _)) = operator {
            set.compile_regexes_of(|r| r.origin.0 == name, true)?;
        }
        Ok(set)
    }

    /// A set with no rules (everything is undefined).
    pub fn empty() -> RuleSet {
        RuleSet { rules: Vec::new(), patterns: PatternSet::empty() }
    }

    /// The rules in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Finds the first rule that decides this record.
    pub fn decide(&self, record: &Record) -> Option<Decision<'_>> {
        let facts = Facts::of(record);
        let diag = record.diagnostic.as_bytes();
        // Scanned when a rule first asks about its text (a rule without text, such as
        // the auto-reply and complaint ones, often decides first). An empty diagnostic
        // matches no pattern.
        let scan: std::cell::OnceCell<Option<Scan<'_>>> = std::cell::OnceCell::new();
        let scanned = || scan.get_or_init(|| (!diag.is_empty()).then(|| self.patterns.scan(diag))).as_ref();
        // Per pattern, once asked: whether it matches.
        let mut known: Vec<Option<bool>> = Vec::new();
        let mut hit = |i: usize| -> bool {
            let Some(scan) = scanned() else { return false };
            if known.is_empty() {
                known = vec![None; self.patterns.len()];
            }
            let Some(slot) = known.get_mut(i) else { return false };
            *slot.get_or_insert_with(|| scan.is_match(i))
        };
        let (rule, reason, pattern) = self.rules.iter().find_map(|rule| {
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
            .and_then(|(s, e)| hay.get(s..e))
            .map(|m| String::from_utf8_lossy(m).chars().take(200).collect())
            .unwrap_or_default()
    }

    /// Facts the record offers (status class etc.), for the verdict.
    pub(crate) fn is_temporary(record: &Record) -> bool {
        temporary_of(StatusCode::parse(&record.status), record)
    }
}

/// An example that did not come out as its rule says.
#[derive(Debug, Clone)]
pub struct ExampleFailure {
    /// Rule holding the example.
    pub rule: String,
    /// Its file and line.
    pub origin: (String, usize),
    /// The example text.
    pub text: String,
    /// What happened instead.
    pub message: String,
}

impl RuleSet {
    /// Runs every rule's examples through the whole set; each must be decided by its own
    /// rule (or the rule it names in `expect`).
    pub fn check_examples(&self) -> (usize, Vec<ExampleFailure>) {
        let mut failures = Vec::new();
        let mut count = 0;
        for rule in &self.rules {
            for ex in &rule.spec.examples {
                count += 1;
                let (record, expect) = example_record(rule, ex);
                let got = self.decide(&record);
                let got_id = got.map(|d| d.rule.id()).unwrap_or("(none)");
                if got_id != expect {
                    failures.push(ExampleFailure {
                        rule: rule.id().to_string(),
                        origin: rule.origin.clone(),
                        text: record.diagnostic.clone(),
                        message: format!("decided by {got_id}, expected {expect}"),
                    });
                }
            }
        }
        (count, failures)
    }
}

/// The record an example stands for, and the rule id expected to decide it.
pub fn example_record(rule: &Rule, ex: &Example) -> (Record, String) {
    let spec = match ex {
        Example::Text(t) => ExampleSpec { text: t.clone(), ..Default::default() },
        Example::Full(s) => s.clone(),
    };
    let mut r = Record { diagnostic: spec.text.clone(), ..Default::default() };
    r.status = spec.status.clone().unwrap_or_else(|| rule.status.first().map(|p| p.example()).unwrap_or_default());
    r.reply_code = spec.reply.or_else(|| rule.reply.first().map(|p| p.example()));
    r.smtp_command = spec.command.clone().unwrap_or_else(|| rule.command.first().cloned().unwrap_or_default());
    r.remote_mta = spec.host.clone().unwrap_or_else(|| rule.host.first().map(|h| format!("mx.{h}")).unwrap_or_default());
    r.reason_hint = spec.hint.clone().unwrap_or_else(|| match (rule.hint.first(), rule.reason) {
        (Some(h), ReasonSpec::Fixed(reason)) if h == "*" => reason.as_str().to_string(),
        (Some(h), _) if h == "*" => "userunknown".into(),
        (Some(h), _) => h.clone(),
        (None, _) => String::new(),
    });
    let temporary = rule.temporary == Some(true)
        || r.status.starts_with('4')
        || r.reply_code.is_some_and(|c| (400..500).contains(&c));
    r.kind = match spec.kind.as_deref().or(rule.spec.kind.first().map(String::as_str)) {
        Some(k) => KINDS.iter().copied().find(|x| x.as_str() == k).unwrap_or(Kind::Bounce),
        None if temporary => Kind::Delay,
        None => Kind::Bounce,
    };
    if rule.temporary == Some(true) && r.status.is_empty() && r.reply_code.is_none() {
        r.status = "4.0.0".into();
    }
    if rule.temporary == Some(false) && r.status.is_empty() && r.reply_code.is_none() {
        r.status = "5.0.0".into();
    }
    (r, spec.expect.clone().unwrap_or_else(|| rule.id().to_string()))
}
