//! `rebound reject`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `reject`.
#[derive(Args, Debug)]
pub struct RejectArgs {}

/// Records synchronous rejects.
pub fn run(_g: &super::Globals, _a: RejectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("reject: not implemented yet")
}
