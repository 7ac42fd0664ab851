//! `rebound report`.
use clap::{Args, ValueEnum};
use rebound::report::{build_report, parse_time, render_csv, render_table, GroupBy};
use std::path::PathBuf;
use std::process::ExitCode;

/// Grouping of `report`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ByArg {
    /// Recipient domain.
    Domain,
    /// Mailbox provider (gmail.com and googlemail.com are google).
    Provider,
    /// Sisimai reason.
    Reason,
    /// Coarse class.
    Class,
    /// Campaign of the correlated send.
    Campaign,
}

/// Output format of `report`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ReportFormat {
    /// Aligned text.
    Table,
    /// One JSON object.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Arguments of `report`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  rebound report                              # last 7 days by domain
  rebound report --since 30d --by provider
  rebound report --since 2026-11-01 --until 2026-11-08 --by campaign --format csv

Rates are against the sends recorded in the window (`rebound send`): per group for
domain, provider and campaign; against all sends for reason and class. Flags: complaint
rate over 0.1 % (warning) and 0.3 % (critical), and sender-fault blocks (reputation,
authentication, policy), listed per provider, which call for the sender to act.")]
pub struct ReportArgs {
    /// Start of the window (7d, 2026-11-01, RFC 3339, @UNIX).
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// End of the window (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Grouping.
    #[arg(long, value_enum, default_value_t = ByArg::Domain)]
    pub by: ByArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Prints events and rates per group.
pub fn run(g: &super::Globals, a: ReportArgs) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now().timestamp();
    let window = parse_time(&a.since, now).and_then(|s| Ok((s, a.until.as_deref().map(|u| parse_time(u, now)).transpose()?)));
    let (since, until) = match window {
        Ok((s, u)) => (s, u.unwrap_or(now + 1)),
        Err(e) => {
            eprintln!("rebound: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let by = match a.by {
        ByArg::Domain => GroupBy::Domain,
        ByArg::Provider => GroupBy::Provider,
        ByArg::Reason => GroupBy::Reason,
        ByArg::Class => GroupBy::Class,
        ByArg::Campaign => GroupBy::Campaign,
    };
    let db = g.config()?.store.db;
    let conn = rebound::store::open_current(&db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    let report = build_report(&conn, since, until, by)?;
    let text = match a.format {
        ReportFormat::Table => render_table(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Csv => render_csv(&report),
    };
    match &a.output {
        Some(path) => rebound::export::write_atomic(path, |w| {
            w.write_all(text.as_bytes())
                .map_err(|source| rebound::export::ExportError::Io { path: path.clone(), source })
        })?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
