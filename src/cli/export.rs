//! `rebound export`.
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// What to export.
#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// The addresses that must not be mailed.
    Suppressions(SuppressionsArgs),
}

/// Arguments of `export suppressions`.
#[derive(Args, Debug)]
pub struct SuppressionsArgs {}

/// Writes the suppression list atomically.
pub fn run(_g: &super::Globals, _a: ExportCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("export: not implemented yet")
}
