//! `rebound generate` (hidden): man pages and shell completions, both rendered from the
//! same clap definitions as `--help`, so they cannot drift. packaging/build-deb.sh runs it.
use clap::{Args, CommandFactory, Subcommand};
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `generate`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rebound generate man target/man                # rebound.1, rebound-serve.1, ...\n  \
    rebound generate completions bash target/completions")]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: GenerateCommand,
}

/// What to generate.
#[derive(Subcommand, Debug)]
enum GenerateCommand {
    /// Man pages: rebound.1 and one page per command (rebound-serve.1, ...).
    #[command(after_help = "Example:\n  rebound generate man target/man && man -l target/man/rebound.1")]
    Man {
        /// Directory to write the pages into (created if missing).
        dir: PathBuf,
    },
    /// Shell completions for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:\n  rebound generate completions zsh target/completions   # writes _rebound")]
    Completions {
        /// The shell.
        shell: Shell,
        /// Directory to write the completion script into (created if missing).
        dir: PathBuf,
    },
}

/// Writes the man pages or shell completions.
pub fn run(_g: &super::Globals, a: GenerateArgs) -> anyhow::Result<ExitCode> {
    let cmd = crate::Cli::command();
    match a.what {
        GenerateCommand::Man { dir } => {
            create_dir(&dir)?;
            clap_mangen::generate_to(cmd, &dir)
                .map_err(|e| anyhow::anyhow!("generate man: {}: {e}", dir.display()))?;
            println!("{}", dir.join("rebound.1").display());
        }
        GenerateCommand::Completions { shell, dir } => {
            create_dir(&dir)?;
            let mut cmd = cmd;
            let path = clap_complete::generate_to(shell, &mut cmd, "rebound", &dir)
                .map_err(|e| anyhow::anyhow!("generate completions: {}: {e}", dir.display()))?;
            println!("{}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
}
