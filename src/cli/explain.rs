//! `rebound explain`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {}

/// Shows a stored event, its message and the rule trace.
pub fn run(_g: &super::Globals, _a: ExplainArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("explain: not implemented yet")
}
