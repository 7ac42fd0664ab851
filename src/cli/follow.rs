//! `rebound follow`: tails a Postfix or Sendmail log (or standard input) and records
//! each delivery result as an event.
use clap::Args;
use rebound::classify::shared::SharedClassifier;
use rebound::classify::Classifier;
use rebound::maillog::{FollowStats, Follower, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `follow`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  rebound follow --db rebound.db /var/log/mail.log
  rebound follow --once --format postfix /var/log/mail.log      # read to the end, then exit (cron)
  journalctl -f -o cat -u postfix@- | rebound follow -")]
pub struct FollowArgs {
    /// The log file, or - for standard input.
    pub file: PathBuf,
    /// Which MTA wrote the log (auto decides per line from the program name).
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    pub format: LogFormat,
    /// Read to the end of the file, record, and exit.
    #[arg(long)]
    pub once: bool,
    /// On the first run for this file, skip what it already holds.
    #[arg(long)]
    pub from_end: bool,
    /// How often to check for growth and rotation, in milliseconds (config: follow.poll_interval_ms).
    #[arg(long)]
    pub poll_ms: Option<u64>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Follows a Postfix or Sendmail log and records its delivery results.
pub fn run(g: &super::Globals, a: FollowArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let conn = rebound::store::open(&config.store.db)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.store.db.display()))?;
    let classifier = Arc::new(SharedClassifier::new(Classifier::for_server(&config.classify)?));
    let poll = Duration::from_millis(a.poll_ms.unwrap_or(config.follow.poll_interval_ms).max(10));
    let stdin = a.file.as_os_str() == "-";
    if !stdin && !a.file.exists() && a.once {
        eprintln!("rebound: {}: no such file", a.file.display());
        return Ok(ExitCode::from(1));
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let mut f = Follower::open(conn, &a.file, a.format, classifier, config.verp.clone(), &config.follow, a.from_end)?;
    if stdin {
        f.run_stdin(&STOP, poll)?;
    } else if a.once {
        f.read_to_end()?;
    } else {
        f.run(&STOP, poll)?;
    }
    print_stats(&f.stats);
    Ok(ExitCode::SUCCESS)
}

fn print_stats(s: &FollowStats) {
    println!(
        "lines {} results {} events {} unknown {} rotations {} truncations {}",
        s.lines, s.results, s.events, s.unknown, s.rotations, s.truncations
    );
}
