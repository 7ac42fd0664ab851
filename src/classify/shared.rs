//! A classifier that can be replaced while servers run (SIGHUP reloads the operator's
//! rules): each message takes the classifier in force when it starts.
use super::{ClassifyConfig, ClassifyError, Classifier};
use std::sync::{Arc, RwLock};

/// The classifier in force, swappable as a whole.
pub struct SharedClassifier {
    current: RwLock<Arc<Classifier>>,
}

impl SharedClassifier {
    /// Wraps a classifier.
    pub fn new(classifier: Classifier) -> SharedClassifier {
        SharedClassifier { current: RwLock::new(Arc::new(classifier)) }
    }

    /// The classifier in force now.
    pub fn current(&self) -> Arc<Classifier> {
        // A poisoned lock still holds a complete classifier: a swap is one pointer store.
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `classifier` in force for messages that start after this call.
    pub fn replace(&self, classifier: Classifier) {
        let new = Arc::new(classifier);
        match self.current.write() {
            Ok(mut c) => *c = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Rebuilds the classifier from `config`; on error the old one stays in force.
    pub fn reload(&self, config: &ClassifyConfig) -> Result<usize, ClassifyError> {
        let classifier = Classifier::for_server(config)?;
        let rules = classifier.rules().rules().len();
        self.replace(classifier);
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reload_keeps_the_rules_in_force() {
        let shared = SharedClassifier::new(Classifier::with_default_rules());
        let before = shared.current().rules().rules().len();
        let dir = tempfile::tempdir().unwrap();
        let missing = ClassifyConfig { rules: Some(dir.path().join("absent.toml")) };
        assert!(shared.reload(&missing).is_err());
        assert_eq!(shared.current().rules().rules().len(), before);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[[rule]\nname = ").unwrap();
        assert!(shared.reload(&ClassifyConfig { rules: Some(bad) }).is_err());
        assert_eq!(shared.current().rules().rules().len(), before);
    }
}
