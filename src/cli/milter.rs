//! `rebound milter`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `milter`.
#[derive(Args, Debug)]
pub struct MilterArgs {}

/// Runs the milter server until SIGTERM or Ctrl-C.
pub fn run(_g: &super::Globals, _a: MilterArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("milter: not implemented yet")
}
