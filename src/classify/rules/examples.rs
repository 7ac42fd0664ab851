//! The rules' own examples: the record each stands for, and the check that every one
//! is decided by its rule (`cargo test`, `rebound rules check`).

use super::compile::{ReasonSpec, Rule, KINDS};
use super::spec::{Example, ExampleSpec};
use super::RuleSet;
use crate::parse::{Kind, Record};

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
