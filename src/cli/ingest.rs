//! `rebound ingest`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {}

/// Backfills messages from mbox files, maildirs and directories.
pub fn run(_g: &super::Globals, _a: IngestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ingest: not implemented yet")
}
