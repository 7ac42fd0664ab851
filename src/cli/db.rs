//! `rebound db`.
use clap::Subcommand;
use std::process::ExitCode;

/// Subcommands of `db`.
#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Not implemented yet.
    Todo,
}

/// Manages the database.
pub fn run(_g: &super::Globals, _c: DbCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("db: not implemented yet")
}
