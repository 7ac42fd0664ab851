//! `rebound follow`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `follow`.
#[derive(Args, Debug)]
pub struct FollowArgs {}

/// Follows a Postfix or Sendmail log and records its delivery results.
pub fn run(_g: &super::Globals, _a: FollowArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("follow: not implemented yet")
}
