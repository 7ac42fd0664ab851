//! `rebound generate`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {}

/// Writes the man page or shell completions.
pub fn run(_g: &super::Globals, _a: GenerateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("generate: not implemented yet")
}
