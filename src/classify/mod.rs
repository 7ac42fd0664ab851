//! Record → [`Verdict`]: reason, class, fault, hard/soft and the rule that decided. Pure.
//!
//! The rules are data (`rules/default.toml`, embedded; an operator file adds or overrides
//! them by id). They are tried in file order and the first that applies decides: the
//! record kind first (auto-reply, complaint, delivered), then unambiguous wording, specific
//! RFC 3463 status codes, the parser's reason hint, weaker wording, and last the meaning of
//! generic status and reply codes. A literal prefilter scans a record's diagnostic once for
//! the words every rule's pattern needs, so only the rules it may match run their regex.

mod matcher;
pub mod rules;
pub mod shared;
pub mod status;
pub mod verdict;

pub use verdict::{Class, Fault, Reason, Verdict};

use crate::parse::{Kind, Record};
use rules::{RuleSet, RulesError};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Errors building a classifier.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The operator rules file could not be read.
    #[error("rules file {path}: {source}")]
    Read {
        /// Path of the operator rules file (`[classify] rules`).
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The rules do not load or compile.
    #[error(transparent)]
    Rules(#[from] RulesError),
}

/// Classifies parsed records with a compiled rule set (cheap to clone).
#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Arc<RuleSet>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::with_default_rules()
    }
}

fn default_rules() -> Arc<RuleSet> {
    static DEFAULT: OnceLock<Arc<RuleSet>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| match RuleSet::load(None) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                // The embedded rules are checked by the test suite; this cannot happen in
                // a released build, and an empty set still gives verdicts (undefined).
                tracing::error!(error = %e, "embedded classification rules do not compile");
                Arc::new(RuleSet::empty())
            }
        })
        .clone()
}

impl Classifier {
    /// The classifier with the embedded default rules.
    pub fn with_default_rules() -> Classifier {
        Classifier { rules: default_rules() }
    }

    /// The default rules plus an operator rules file given as text (`name` for messages).
    pub fn with_operator_rules(name: &str, text: &str) -> Result<Classifier, ClassifyError> {
        Ok(Classifier { rules: Arc::new(RuleSet::load(Some((name, text)))?) })
    }

    /// The classifier the `[classify]` section asks for.
    pub fn from_config(config: &ClassifyConfig) -> Result<Classifier, ClassifyError> {
        match &config.rules {
            None => Ok(Classifier::with_default_rules()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ClassifyError::Read { path: path.clone(), source })?;
                Classifier::with_operator_rules(&path.display().to_string(), &text)
            }
        }
    }

    /// The classifier for a long-running server: every pattern compiled now, so the
    /// first messages are not the slow ones.
    pub fn for_server(config: &ClassifyConfig) -> Result<Classifier, ClassifyError> {
        let c = Classifier::from_config(config)?;
        c.rules.prepare()?;
        Ok(c)
    }

    /// The compiled rules, in evaluation order.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Classifies one record.
    pub fn classify(&self, record: &Record) -> Verdict {
        let Some(d) = self.rules.decide(record) else {
            return Verdict {
                reason: Reason::Undefined,
                class: Class::Unknown,
                fault: Fault::None,
                hard: false,
                rule: "none".into(),
                matched: String::new(),
            };
        };
        let spec = &d.rule.spec;
        // A 4xx is soft while it is retried and as a direct reply; once the MTA has given
        // up (a bounce) on a reply that said the address does not exist, the address is
        // dead whatever class the last reply had (Postfix's 450 4.1.1 "User unknown in
        // virtual alias table"). A domain that refuses mail (notaccept) needs a 5xx.
        let failure = matches!(record.kind, Kind::Bounce | Kind::None);
        let given_up = record.kind == Kind::Bounce && d.reason != Reason::NotAccept;
        let hard = d.reason.is_address_failure() && failure && (given_up || !RuleSet::is_temporary(record));
        let matched = d.span.map(|span| rules::excerpt(&record.diagnostic, span)).unwrap_or_default();
        Verdict {
            reason: d.reason,
            class: spec.class.unwrap_or(d.reason.class()),
            fault: spec.fault.unwrap_or(d.reason.fault()),
            hard,
            rule: spec.id.clone(),
            matched,
        }
    }

    /// Classifies an SMTP reply seen directly (a synchronous reject or a log line): a 4xx
    /// is a delay, a 5xx a bounce; the command is taken as RCPT unless the text names
    /// another, since that is where most rejects happen.
    pub fn classify_reply(&self, code: Option<u16>, status: &str, text: &str) -> Verdict {
        self.classify(&reply_record(code, status, text))
    }
}

/// The record a bare SMTP reply stands for.
pub fn reply_record(code: Option<u16>, status: &str, text: &str) -> Record {
    let lower = text.to_ascii_lowercase();
    let command = if lower.contains("end of data") || lower.contains("after data") || lower.contains("final data") {
        "DATA"
    } else if lower.contains("mail from") {
        "MAIL"
    } else {
        "RCPT"
    };
    let temporary = status.trim().starts_with('4') || code.is_some_and(|c| (400..500).contains(&c));
    Record {
        kind: if temporary { Kind::Delay } else { Kind::Bounce },
        action: if temporary { "delayed" } else { "failed" }.into(),
        status: status.trim().to_string(),
        reply_code: code,
        diagnostic: text.split_whitespace().collect::<Vec<_>>().join(" "),
        smtp_command: command.into(),
        ..Default::default()
    }
}

/// Classifies an SMTP reply (code, enhanced status, text) with the default rules.
pub fn classify_reply(code: Option<u16>, status: &str, text: &str) -> Verdict {
    Classifier::with_default_rules().classify_reply(code, status, text)
}

/// The `[classify]` section.
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyConfig {
    /// Operator rules file (TOML, same format as the embedded rules) whose rules add to
    /// or replace (by id) the defaults; `rebound rules check FILE` validates it.
    pub rules: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_compile_and_every_example_is_decided_by_its_rule() {
        let set = RuleSet::load(None).expect("default rules compile");
        set.compile_regexes().expect("every default text pattern compiles");
        let (n, failures) = set.check_examples();
        assert!(n > 100, "only {n} examples");
        let report: Vec<String> =
            failures.iter().map(|f| format!("{}:{} {}: {:?}: {}", f.origin.0, f.origin.1, f.rule, f.text, f.message)).collect();
        assert!(report.is_empty(), "{} failing examples:\n{}", report.len(), report.join("\n"));
    }

    #[test]
    fn blocklisting_is_never_a_dead_address() {
        let v = classify_reply(Some(550), "5.7.1", "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org");
        assert_eq!((v.reason, v.fault, v.hard), (Reason::Blocked, Fault::Sender, false));
        let v = classify_reply(Some(550), "5.1.1", "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown");
        assert_eq!((v.reason, v.fault, v.hard), (Reason::UserUnknown, Fault::Recipient, true));
    }

    #[test]
    fn a_temporary_failure_is_hard_only_once_the_mta_gave_up() {
        let text = "450 4.1.1 <a@example.org>: Recipient address rejected: User unknown in virtual alias table";
        let v = classify_reply(Some(450), "4.1.1", text);
        assert_eq!(v.reason, Reason::UserUnknown);
        assert!(!v.hard, "a direct 4xx reply is retried");
        let mut r = reply_record(Some(450), "4.1.1", text);
        r.kind = Kind::Delay;
        assert!(!Classifier::with_default_rules().classify(&r).hard, "still being retried");
        r.kind = Kind::Bounce;
        assert!(Classifier::with_default_rules().classify(&r).hard, "returned after the retries");
        // A sender-side 4xx stays soft even when the MTA gives up.
        let mut b = reply_record(Some(450), "4.7.1", "450 4.7.1 Client host rejected: cannot find your hostname");
        b.kind = Kind::Bounce;
        assert!(!Classifier::with_default_rules().classify(&b).hard);
    }

    #[test]
    fn kind_decides_first() {
        let r = Record { kind: Kind::Autoreply, diagnostic: "user unknown".into(), ..Default::default() };
        assert_eq!(Classifier::with_default_rules().classify(&r).reason, Reason::Vacation);
    }
}

#[cfg(test)]
mod cost {
    use super::*;

    /// CPU time of this thread, in nanoseconds (wall time is meaningless on a shared machine).
    pub(super) fn cpu_ns() -> u128 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
    }

    /// Prints the classification cost per record (a measurement, not a timed assertion):
    /// `cargo test --release --lib classify::cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement"]
    fn classify_cost_per_record() {
        let texts = [
            ("5.1.1", "550 5.1.1 <kijitora@example.jp>... User Unknown"),
            ("5.7.1", "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org"),
            ("4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.192 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"),
            ("5.0.0", "host mx.example.jp[192.0.2.22] said: 550 Unknown user kijitora@example.net (in reply to end of DATA command)"),
            ("", "Delivery to the following recipient failed permanently: Technical details of permanent failure: Google tried to deliver your message, but it was rejected by the server for the recipient domain example.jp by mx.example.jp. [192.0.2.1]. The error that the other server returned was: 550 5.2.2 mailbox full"),
        ];
        let c = Classifier::with_default_rules();
        let records: Vec<Record> = texts.iter().map(|(s, t)| reply_record(Some(550), s, t)).collect();
        let n = 200_000;
        let mut hard = 0;
        for r in &records {
            hard += usize::from(c.classify(r).hard);
        }
        let start = cpu_ns();
        for i in 0..n {
            hard += usize::from(c.classify(&records[i % records.len()]).hard);
        }
        let per = (cpu_ns() - start) as f64 / n as f64;
        let start = cpu_ns();
        for i in 0..n {
            hard += usize::from(c.rules().decide(&records[i % records.len()]).is_some());
        }
        let decide = (cpu_ns() - start) as f64 / n as f64;
        eprintln!("classify: {per:.0} ns CPU per record (decide alone {decide:.0} ns; {hard})");
    }
}

#[cfg(test)]
mod corpus_cost {
    use super::*;

    /// Classification CPU cost over the records the parser makes of the Sisimai corpus:
    /// `cargo test --release --lib classify::corpus_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement"]
    fn classify_cost_on_corpus_records() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/sisimai");
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let mut records = Vec::new();
        for e in entries.flatten() {
            if let Ok(raw) = std::fs::read(e.path()) {
                records.extend(crate::parse::parse_message(&raw).records);
            }
        }
        let c = Classifier::with_default_rules();
        let passes = 50;
        let mut n = 0;
        // The first pass builds the lazy DFA states for these texts: report it apart.
        let start = super::cost::cpu_ns();
        for r in &records {
            n += usize::from(c.classify(r).hard);
        }
        eprintln!("first (cold) pass: {:.0} ns CPU per record", (super::cost::cpu_ns() - start) as f64 / records.len().max(1) as f64);
        let start = super::cost::cpu_ns();
        for _ in 0..passes {
            for r in &records {
                n += usize::from(c.classify(r).hard);
            }
        }
        let total = (super::cost::cpu_ns() - start) as f64;
        let bytes: usize = records.iter().map(|r| r.diagnostic.len()).sum();
        eprintln!("{} records, mean diagnostic {} bytes: {:.0} ns CPU per record ({n})",
            records.len(), bytes / records.len().max(1), total / (passes * records.len()) as f64);
        let start = super::cost::cpu_ns();
        for _ in 0..passes {
            for r in &records {
                n += usize::from(c.rules().decide(r).is_some());
            }
        }
        eprintln!("decide alone: {:.0} ns", (super::cost::cpu_ns() - start) as f64 / (passes * records.len()) as f64);
        let start = super::cost::cpu_ns();
        for _ in 0..passes {
            for r in &records {
                n += rules::Facts::of(r).command().len();
            }
        }
        eprintln!("facts alone: {:.0} ns ({n})", (super::cost::cpu_ns() - start) as f64 / (passes * records.len()) as f64);
        let decided: Vec<_> = records.iter().map(|r| (r, c.rules().decide(r).and_then(|d| d.pattern))).collect();
        let start = super::cost::cpu_ns();
        for _ in 0..passes {
            for (r, p) in &decided {
                if let Some(p) = p { n += c.rules().matched_text(*p, &r.diagnostic).len(); }
            }
        }
        eprintln!("matched_text alone: {:.0} ns ({n})", (super::cost::cpu_ns() - start) as f64 / (passes * records.len()) as f64);
    }
}
