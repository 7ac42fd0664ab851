//! The SQLite disposition store: opening and migrating (`mod.rs`), the single writer
//! thread with group commit (`writer.rs`), and the reads (`query.rs`).

use serde::Deserialize;
use std::path::PathBuf;

/// The `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Path of the SQLite database.
    pub db: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { db: PathBuf::from("rebound.db") }
    }
}
