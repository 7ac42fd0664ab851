//! The TOML configuration: one section per subsystem, every field with a default.
//! `packaging/rebound.toml` is the commented example.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite store lives and how long evidence is kept.
    pub store: crate::store::StoreConfig,
    /// The LMTP server.
    pub lmtp: crate::lmtp::LmtpConfig,
    /// Return-path tokens.
    pub verp: crate::verp::VerpConfig,
    /// When an address is suppressed.
    pub policy: crate::policy::PolicyConfig,
    /// Classification rules.
    pub classify: crate::classify::ClassifyConfig,
    /// Mail logs followed inside `serve`.
    pub follow: crate::maillog::FollowConfig,
    /// The milter server.
    pub milter: crate::milter::MilterConfig,
    /// The Prometheus endpoint.
    pub metrics: crate::metrics::MetricsConfig,
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// Path of the configuration file.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config {path}: {source}")]
    Parse {
        /// Path of the configuration file.
        path: PathBuf,
        /// The TOML error (with its line and column).
        source: toml::de::Error,
    },
}

impl Config {
    /// Reads a config file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
    }

    /// Parses config text.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}
