//! Event + current address status → new status: the suppression rules. Pure.

use serde::Deserialize;

/// The `[policy]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {}
