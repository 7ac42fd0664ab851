//! `rebound db`: schema migrate/check here; backup and prune in `db_maint.rs`.
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands of `db`.
#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Create the database if needed and apply the schema migrations it lacks.
    Migrate,
    /// Report the schema version and run SQLite's integrity check.
    Check,
    /// Write a consistent copy of the database (safe while serve runs).
    Backup(super::db_maint::BackupArgs),
    /// Drop raw message bytes past retention; events are kept.
    Prune(super::db_maint::PruneArgs),
}

/// Arguments naming a file.
#[derive(Args, Debug)]
pub struct FileArg {
    /// The file.
    pub file: PathBuf,
}

/// Manages the database.
pub fn run(g: &super::Globals, c: DbCommand) -> anyhow::Result<ExitCode> {
    match c {
        DbCommand::Migrate => anyhow::bail!("db migrate: not implemented yet"),
        DbCommand::Check => anyhow::bail!("db check: not implemented yet"),
        DbCommand::Backup(a) => super::db_maint::backup(g, a),
        DbCommand::Prune(a) => super::db_maint::prune(g, a),
    }
}
