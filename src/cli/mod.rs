//! One module per command group: its clap arguments and its `run`.

pub mod bench;
pub mod db;
pub mod db_maint;
pub mod explain;
pub mod export;
pub mod follow;
pub mod generate;
pub mod ingest;
pub mod milter;
pub mod parse;
pub mod reject;
pub mod report;
pub mod rules;
pub mod send;
pub mod serve;
pub mod status;
pub mod verp;

use clap::{Args, ValueEnum};
use rebound::config::Config;
use std::path::PathBuf;

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct Globals {
    /// Configuration file (TOML); defaults are used for what it leaves out.
    #[arg(long, global = true, env = "REBOUND_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite database (overrides the config's store.db).
    #[arg(long, global = true, env = "REBOUND_DB")]
    pub db: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human format on a terminal, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl Globals {
    /// The configuration with command-line overrides applied.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(db) = &self.db {
            config.store.db = db.clone();
        }
        // Every command that stores events judges them by the configured policy.
        rebound::store::hooks::set_policy(config.policy.clone());
        Ok(config)
    }
}

/// Sets up tracing on standard error (RUST_LOG filters; default info).
pub fn init_logging(g: &Globals) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match g.log_format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
