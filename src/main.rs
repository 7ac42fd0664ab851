//! The `rebound` command line: argument definitions, dispatch and exit codes only.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of the system allocator: parsing makes ~90 short-lived allocations
/// per message, and glibc malloc/free took ~10 % of parse + classify (perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for the process (`PR_SET_THP_DISABLE`). mimalloc
/// asks for them (`MADV_HUGEPAGE`), and the kernel then zeroes, on a virtual machine
/// often after compacting, 2 MiB on a first touch: for ingest's threads, which churn
/// through fresh memory, those faults were 3-15 % of the CPU against under 1 % with
/// 4 KiB pages, and a server's resident size grows by whole 2 MiB pages.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// rebound: inbound bounce processor (LMTP server, DSN/ARF/auto-reply parser, VERP
/// correlation, SQLite disposition store).
#[derive(Parser, Debug)]
#[command(name = "rebound", version, about, long_about = None, after_help = "Examples:
  rebound serve --listen 127.0.0.1:2424 --db /var/lib/rebound/rebound.db
  rebound verp sign --id 8f3a-42 --domain bounce.example.com
  rebound parse bounce.eml
  rebound status alice@example.org

Each command has its own --help with examples; man rebound-COMMAND.")]
struct Cli {
    #[command(flatten)]
    global: cli::Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the LMTP server (TCP and unix sockets) that records every message it is given.
    Serve(cli::serve::ServeArgs),
    /// Manage the database: migrate, check, backup, prune.
    #[command(subcommand)]
    Db(cli::db::DbCommand),
    /// Parse messages offline and print their records and verdicts.
    Parse(cli::parse::ParseArgs),
    /// Check classification rules and their examples.
    #[command(subcommand)]
    Rules(cli::rules::RulesCommand),
    /// Sign and check VERP return-path addresses.
    #[command(subcommand)]
    Verp(cli::verp::VerpCommand),
    /// Record sends (what was sent to whom, and its return path).
    #[command(subcommand)]
    Send(cli::send::SendCommand),
    /// Record synchronous rejects (what an SMTP server answered at send time).
    Reject(cli::reject::RejectArgs),
    /// Show the state of addresses and why.
    Status(cli::status::StatusArgs),
    /// Show a stored event, its message and the rule trace.
    Explain(cli::explain::ExplainArgs),
    /// Events and rates per domain, provider, reason, class or campaign.
    Report(cli::report::ReportArgs),
    /// Export suppression lists (txt, csv, json, postfix access table).
    #[command(subcommand)]
    Export(cli::export::ExportCommand),
    /// Backfill from mbox files, maildirs and directories of messages.
    Ingest(cli::ingest::IngestArgs),
    /// Follow a Postfix or Sendmail log and record delivery results.
    Follow(cli::follow::FollowArgs),
    /// Run a Sendmail milter (v6) server that verifies VERP and records bounces.
    Milter(cli::milter::MilterArgs),
    /// Measure parse throughput.
    Bench(cli::bench::BenchArgs),
    /// Generate the man page or shell completions.
    #[command(hide = true)]
    Generate(cli::generate::GenerateArgs),
}

fn main() -> ExitCode {
    no_huge_pages();
    let cli = Cli::parse();
    cli::init_logging(&cli.global);
    let result = match cli.command {
        Command::Serve(a) => cli::serve::run(&cli.global, a),
        Command::Db(a) => cli::db::run(&cli.global, a),
        Command::Parse(a) => cli::parse::run(&cli.global, a),
        Command::Rules(a) => cli::rules::run(&cli.global, a),
        Command::Verp(a) => cli::verp::run(&cli.global, a),
        Command::Send(a) => cli::send::run(&cli.global, a),
        Command::Reject(a) => cli::reject::run(&cli.global, a),
        Command::Status(a) => cli::status::run(&cli.global, a),
        Command::Explain(a) => cli::explain::run(&cli.global, a),
        Command::Report(a) => cli::report::run(&cli.global, a),
        Command::Export(a) => cli::export::run(&cli.global, a),
        Command::Ingest(a) => cli::ingest::run(&cli.global, a),
        Command::Follow(a) => cli::follow::run(&cli.global, a),
        Command::Milter(a) => cli::milter::run(&cli.global, a),
        Command::Bench(a) => cli::bench::run(&cli.global, a),
        Command::Generate(a) => cli::generate::run(&cli.global, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rebound: {e:#}");
            ExitCode::from(1)
        }
    }
}
