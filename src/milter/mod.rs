//! Sendmail milter protocol (v6) server: codec, pure protocol state machine, sessions.

/// The `[milter]` section.
#[derive(Debug, Clone, serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MilterConfig {}
