//! `rebound send`.
use clap::Subcommand;
use std::process::ExitCode;

/// Subcommands of `send`.
#[derive(Subcommand, Debug)]
pub enum SendCommand {
    /// Not implemented yet.
    Todo,
}

/// Records sends.
pub fn run(_g: &super::Globals, _c: SendCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("send: not implemented yet")
}
