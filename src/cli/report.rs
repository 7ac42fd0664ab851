//! `rebound report`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `report`.
#[derive(Args, Debug)]
pub struct ReportArgs {}

/// Prints events and rates per group.
pub fn run(_g: &super::Globals, _a: ReportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("report: not implemented yet")
}
