//! Record → [`Verdict`]: reason, class, fault, hard/soft and the rule that decided. Pure.

pub mod verdict;

pub use verdict::{Class, Fault, Reason, Verdict};

use crate::parse::{Kind, Record};

/// Classifies parsed records with a compiled rule set.
#[derive(Debug, Default)]
pub struct Classifier {}

impl Classifier {
    /// The classifier with the embedded default rules.
    pub fn with_default_rules() -> Classifier {
        Classifier {}
    }

    /// Classifies one record.
    pub fn classify(&self, record: &Record) -> Verdict {
        let (reason, class, fault) = match record.kind {
            Kind::Autoreply => (Reason::Vacation, Class::AutoReply, Fault::None),
            Kind::Complaint => (Reason::Feedback, Class::Complaint, Fault::None),
            Kind::Delivered | Kind::Relayed => (Reason::Delivered, Class::Delivered, Fault::None),
            _ => (Reason::Undefined, Class::Unknown, Fault::None),
        };
        Verdict { reason, class, fault, hard: false, rule: "stub".into(), matched: String::new() }
    }
}

/// The `[classify]` section.
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyConfig {}
