//! Mail logs: Postfix and Sendmail line parsers, the queue-id join, and the follower.

/// The `[follow]` section.
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FollowConfig {}
