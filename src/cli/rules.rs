//! `rebound rules`.
use clap::Subcommand;
use std::process::ExitCode;

/// Subcommands of `rules`.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Not implemented yet.
    Todo,
}

/// Checks rules.
pub fn run(_g: &super::Globals, _c: RulesCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("rules: not implemented yet")
}
