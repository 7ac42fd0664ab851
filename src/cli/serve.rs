//! `rebound serve`.
use clap::Args;
use std::process::ExitCode;

/// Arguments of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {}

/// Runs the LMTP server until SIGTERM or Ctrl-C.
pub fn run(_g: &super::Globals, _a: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("serve: not implemented yet")
}
