//! `rebound bench`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {}

/// Measures parse throughput over a directory of messages.
pub fn run(_g: &super::Globals, _a: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("bench: not implemented yet")
}
