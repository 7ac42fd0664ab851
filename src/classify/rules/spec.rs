//! The rules file format (TOML): rule specs, named pattern lists, and merging an
//! operator file over the defaults by id.

use super::RulesError;
use super::super::verdict::{Class, Fault};
use serde::Deserialize;

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
