//! `rebound export`.
use clap::{Args, Subcommand, ValueEnum};
use rebound::export::{write_atomic, write_suppressions, ExportFormat, ExportOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What to export.
#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// The addresses that must not be mailed.
    #[command(after_help = "Examples:
  rebound export suppressions --format postfix --output /etc/postfix/rebound_suppressed \\
      && postmap /etc/postfix/rebound_suppressed
  rebound export suppressions --since 7d --state complained,unsubscribed --format csv

The file named by --output is replaced atomically (temp file in the same directory,
fsync, rename), so a reader never sees half a list. Rows are sorted by address.")]
    Suppressions(SuppressionsArgs),
}

/// Output format of `export suppressions`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    /// One address per line.
    Txt,
    /// address,state,reason,class,since,suppressed_until.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Postfix access(5) table (`address REJECT 5.1.1 text`) for postmap.
    Postfix,
}

/// Address states that can be exported.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateArg {
    /// Hard-bounced, or soft-bounced past the policy's threshold.
    Suppressed,
    /// The recipient complained (ARF).
    Complained,
    /// The recipient unsubscribed or opted out.
    Unsubscribed,
    /// Soft bounces below the threshold.
    #[value(name = "soft_bouncing")]
    SoftBouncing,
    /// Mailable.
    Active,
}

impl StateArg {
    fn as_str(self) -> &'static str {
        match self {
            StateArg::Suppressed => "suppressed",
            StateArg::Complained => "complained",
            StateArg::Unsubscribed => "unsubscribed",
            StateArg::SoftBouncing => "soft_bouncing",
            StateArg::Active => "active",
        }
    }
}

/// Arguments of `export suppressions`.
#[derive(Args, Debug)]
pub struct SuppressionsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Txt)]
    pub format: FormatArg,
    /// Only addresses that entered their state since then (7d, 2026-11-01, RFC 3339, @UNIX).
    #[arg(long)]
    pub since: Option<String>,
    /// States to include, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "suppressed,complained,unsubscribed")]
    pub state: Vec<StateArg>,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Writes the suppression list atomically.
pub fn run(g: &super::Globals, c: ExportCommand) -> anyhow::Result<ExitCode> {
    let ExportCommand::Suppressions(a) = c;
    let now = chrono::Utc::now().timestamp();
    let since = match &a.since {
        Some(s) => match rebound::report::parse_time(s, now) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("rebound: --since: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        None => i64::MIN,
    };
    let mut states: Vec<String> = a.state.iter().map(|s| s.as_str().to_string()).collect();
    states.sort();
    states.dedup();
    let format = match a.format {
        FormatArg::Txt => ExportFormat::Txt,
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Json => ExportFormat::Json,
        FormatArg::Postfix => ExportFormat::Postfix,
    };
    let opts = ExportOptions { format, states, since, now };
    let db = g.config()?.store.db;
    let conn = rebound::store::open_current(&db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    // One read transaction: the list is a consistent snapshot even while serve writes.
    conn.execute_batch("BEGIN")?;
    let summary = match &a.output {
        Some(path) => write_atomic(path, |w| write_suppressions(&conn, &opts, w, path))?,
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            let s = write_suppressions(&conn, &opts, &mut w, Path::new("<stdout>"))?;
            std::io::Write::flush(&mut w)?;
            s
        }
    };
    conn.execute_batch("COMMIT")?;
    if summary.skipped > 0 {
        eprintln!("rebound: {} address(es) left out: not representable in this format", summary.skipped);
    }
    tracing::debug!(written = summary.written, skipped = summary.skipped, "suppression list exported");
    Ok(ExitCode::SUCCESS)
}
