//! LMTP server settings.

use serde::Deserialize;

/// The `[lmtp]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmtpConfig {
    /// TCP addresses to listen on.
    pub listen: Vec<String>,
}

impl Default for LmtpConfig {
    fn default() -> Self {
        LmtpConfig { listen: vec!["127.0.0.1:2424".into()] }
    }
}
