//! `rebound db backup` and `rebound db prune`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `db backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {}

/// Arguments of `db prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {}

/// Writes a consistent copy of the database.
pub fn backup(_g: &super::Globals, _a: BackupArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("db backup: not implemented yet")
}

/// Drops raw message bytes past retention.
pub fn prune(_g: &super::Globals, _a: PruneArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("db prune: not implemented yet")
}
