//! Classification rules as data: the TOML format (`spec`: loading, lists, merging an
//! operator file over the defaults by id), compilation into a [`RuleSet`] (`compile`:
//! validation with file and line, the text patterns of `matcher`), first-match-wins
//! evaluation in file order (`decide`), and the rules' own examples (`examples`).
//!
//! Speed: a record's diagnostic is scanned once for the words of every pattern; a
//! rule's pattern is only asked about when the rule is reached in order and its other
//! matchers hold, and most patterns are answered by that scan without a regex. (One
//! `RegexSet` of all rules spent ~300 µs on each text it had not seen before.)

mod compile;
mod decide;
mod examples;
mod spec;

pub use compile::Rule;
#[cfg(test)]
pub(crate) use decide::Facts;
pub use decide::Decision;
pub(crate) use decide::excerpt;
pub use examples::{example_record, ExampleFailure};
pub use spec::{expand_lists, merge, parse_specs, Example, ExampleSpec, Lists, RuleSpec};

use super::matcher::PatternSet;

/// The rules compiled into the binary.
pub const DEFAULT_RULES: &str = include_str!("rules/default.toml");

/// Errors loading or compiling rules.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file is not valid TOML for the rules format.
    #[error("{file}: {message}")]
    Parse {
        /// Name of the rules file ("default.toml" for the embedded rules).
        file: String,
        /// The TOML parser's error message.
        message: String,
    },
    /// A rule is invalid (bad regex, unknown reason, bad status pattern ...).
    #[error("{file}:{line}: rule {id}: {message}")]
    Rule {
        /// Name of the rules file that holds the rule ("default.toml" for the embedded rules).
        file: String,
        /// 1-based line of the rule's `id` in that file (0 when it cannot be found).
        line: usize,
        /// The rule's `id`.
        id: String,
        /// What is wrong with it.
        message: String,
    },
    /// The patterns do not compile together.
    #[error("rules: {0}")]
    Set(String),
}

/// The compiled rule list.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// The distinct text patterns (a rule's `text` entries are one pattern).
    patterns: PatternSet,
    /// Per record kind (index in `KINDS`) and severity (`2 * kind + temporary`): the
    /// rules whose `kind` and `severity` admit it, in order, each with its text pattern
    /// (`NO_PATTERN` for none), so a rule the scan rules out costs one bit test.
    candidates: Vec<Vec<(u32, u32)>>,
}

/// A rule without a text pattern (in `RuleSet::candidates`).
const NO_PATTERN: u32 = u32::MAX;

impl RuleSet {
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
        RuleSet::new(Vec::new(), PatternSet::empty())
    }

    /// The rules in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}
