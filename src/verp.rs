//! Return-path tokens (VERP): signed `bounce+ID.EXP.MAC@domain` and classic
//! `bounce+local=domain@domain`. Pure: keys are passed in.

use serde::Deserialize;

/// The `[verp]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct VerpConfig {}
