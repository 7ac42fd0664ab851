//! `rebound status`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {}

/// Prints the state of addresses and their last events.
pub fn run(_g: &super::Globals, _a: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("status: not implemented yet")
}
