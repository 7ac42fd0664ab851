//! `rebound ingest`.
use clap::Args;
use rebound::ingest::{ingest, IngestOptions, IngestSummary, LazyClassifier};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Arguments of `ingest`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  rebound ingest /var/mail/bounces                 # an mbox file
  rebound ingest ~/Maildir/.Bounces ./samples/*.eml

Files named are read as given (an mbox when the first line starts with \"From \", else one
message); directories are walked, maildir tmp/ and hidden files skipped. A message already
stored (same SHA-256) is skipped, so running ingest twice stores each message once.
Exit status: 0 when every file was read, 1 when some could not be (see the summary).")]
pub struct IngestArgs {
    /// mbox files, maildirs, directories of .eml files, or single messages.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Worker threads for parsing (default: the number of CPUs, at most 8).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Messages per transaction.
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    /// Do not keep the raw messages as evidence (events only).
    #[arg(long)]
    pub no_raw: bool,
    /// Skip messages larger than this many bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_message_bytes: usize,
    /// No progress bar or progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Backfills messages from mbox files, maildirs and directories.
pub fn run(g: &super::Globals, a: IngestArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let db = config.store.db.clone();
    let mut conn = rebound::store::open(&db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    let mut opts = IngestOptions { batch_messages: a.batch.max(1), keep_raw: !a.no_raw, max_message_bytes: a.max_message_bytes, ..Default::default() };
    if let Some(j) = a.jobs {
        opts.workers = j.max(1);
    }
    // The rules serve uses (the [classify] section), compiled only once a message not
    // yet stored needs them.
    let classifier = LazyClassifier::new(|| rebound::classify::Classifier::from_config(&config.classify));
    let bar = (!a.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_line = Instant::now();
    let quiet = a.quiet;
    let mut progress = |s: &IngestSummary| {
        let msg = format!("{} messages, {} stored, {} duplicates, {:.0}/s", s.messages, s.stored, s.duplicates, s.rate());
        if let Some(bar) = &bar {
            bar.set_length(s.bytes_total);
            bar.set_position(s.bytes_read);
            bar.set_message(msg);
        } else if !quiet && last_line.elapsed() >= Duration::from_secs(5) {
            last_line = Instant::now();
            eprintln!("ingest: {} of {} bytes, {msg}", s.bytes_read, s.bytes_total);
        }
    };
    let summary = ingest(&mut conn, &db, &a.paths, &classifier, &config.verp, &opts, &mut progress)?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    print_summary(&summary);
    Ok(if summary.errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn print_summary(s: &IngestSummary) {
    for e in &s.error_messages {
        eprintln!("rebound: ingest: {e}");
    }
    println!("files:       {}", s.files);
    println!("messages:    {}", s.messages);
    println!("stored:      {}", s.stored);
    println!("duplicates:  {}", s.duplicates);
    println!("no record:   {}", s.without_records);
    let kinds: Vec<String> = s.records_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("records:     {}{}", s.records_by_kind.values().sum::<u64>(), if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) });
    println!("errors:      {}", s.errors);
    println!("time:        {:.2}s, {:.0} messages/s, {:.1} MB/s", s.elapsed_secs, s.rate(), s.bytes_read as f64 / 1e6 / s.elapsed_secs.max(1e-9));
}
