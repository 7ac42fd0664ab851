//! `rebound parse`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `parse`.
#[derive(Args, Debug)]
pub struct ParseArgs {}

/// Parses files and prints records.
pub fn run(_g: &super::Globals, _a: ParseArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("parse: not implemented yet")
}
