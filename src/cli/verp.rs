//! `rebound verp`.
use clap::Subcommand;
use std::process::ExitCode;

/// Subcommands of `verp`.
#[derive(Subcommand, Debug)]
pub enum VerpCommand {
    /// Not implemented yet.
    Todo,
}

/// Signs and checks VERP addresses.
pub fn run(_g: &super::Globals, _c: VerpCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("verp: not implemented yet")
}
