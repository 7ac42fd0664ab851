//! `rebound bench`: parse (and optionally classify) every message of a directory held
//! in memory, on one core, for N passes, and print messages per second.
use clap::Args;
use rebound::classify::Classifier;
use rebound::parse::parse_message;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `bench`.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  rebound bench --passes 20 ../shared/corpus/sisimai\n  rebound bench --classify samples/\n  rebound bench --classify --cold ../shared/corpus/sisimai")]
pub struct BenchArgs {
    /// Classify the records too (parse + classify, as the pipeline does).
    #[arg(long)]
    pub classify: bool,
    /// Classify each pass with a freshly compiled rule set (compiled outside the
    /// timing), so every diagnostic is new to the matcher: in production nearly every
    /// text is. (The parser's own regexes stay warm.)
    #[arg(long, requires = "classify")]
    pub cold: bool,
    /// Passes over the whole set; the best pass is reported too.
    #[arg(long, default_value_t = 10)]
    pub passes: u32,
    /// Print a JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Directory (read recursively) or files of messages.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Measures parse throughput over a directory of messages.
pub fn run(_g: &super::Globals, a: BenchArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for p in &a.paths {
        super::parse::collect_files(p, &mut files).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    let mut data = Vec::new();
    for f in &files {
        if f.extension().is_some_and(|e| e == "json" || e == "md" || e == "py") {
            continue;
        }
        data.push(std::fs::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?);
    }
    let messages: Vec<&[u8]> = data.iter().flat_map(|d| super::parse::messages_of(d)).collect();
    if messages.is_empty() {
        anyhow::bail!("bench: no messages found");
    }
    let bytes: usize = messages.iter().map(|m| m.len()).sum();
    let classifier = Classifier::with_default_rules();
    // Steady state, as in a long-running server: the lazily built parts built now.
    classifier.rules().prepare()?;
    let passes = a.passes.max(1);
    let mut records = 0usize;
    let mut best = f64::MAX;
    // One untimed pass: compiles the lazily built patterns and warms the caches.
    for m in &messages {
        let pm = parse_message(black_box(m));
        if a.classify {
            for r in &pm.records {
                black_box(classifier.classify(r));
            }
        }
    }
    let (mut total, mut cpu) = (0.0, 0.0);
    for _ in 0..passes {
        let fresh;
        let classifier = if a.cold {
            fresh = Classifier::with_operator_rules("(cold)", "")?;
            // Compiled before the timing, as they were when the set compiled them all.
            fresh.rules().prepare()?;
            &fresh
        } else {
            &classifier
        };
        let t = Instant::now();
        let cpu_start = thread_cpu_secs();
        for m in &messages {
            let pm = parse_message(black_box(m));
            if a.classify {
                for r in &pm.records {
                    black_box(classifier.classify(r));
                }
            }
            records += pm.records.len();
            black_box(pm);
        }
        // CPU time of this thread: the honest "one core" figure on a loaded machine.
        cpu += thread_cpu_secs() - cpu_start;
        let elapsed = t.elapsed().as_secs_f64();
        total += elapsed;
        best = best.min(elapsed);
    }
    let cpu = f64::max(cpu, 1e-9);
    let cpu_rate = messages.len() as f64 * f64::from(passes) / cpu;
    let n = messages.len() as f64 * f64::from(passes);
    let rate = n / total;
    let best_rate = messages.len() as f64 / best;
    let what = match (a.classify, a.cold) {
        (true, true) => "parse+classify (cold rules)",
        (true, false) => "parse+classify",
        _ => "parse",
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"mode": what, "messages": messages.len(), "bytes": bytes, "passes": passes,
                "records_per_pass": records / passes as usize, "messages_per_sec": rate.round(),
                "best_pass_messages_per_sec": best_rate.round(), "messages_per_cpu_sec": cpu_rate.round(), "mb_per_sec": (bytes as f64 * f64::from(passes) / total / 1e6)})
        );
    } else {
        println!(
            "{what}: {} messages ({:.1} MB), {} passes, {} records/pass: {:.0} messages/s wall (best pass {:.0}/s, {:.1} MB/s), {:.0} messages per CPU second",
            messages.len(),
            bytes as f64 / 1e6,
            passes,
            records / passes as usize,
            rate,
            best_rate,
            bytes as f64 * f64::from(passes) / total / 1e6,
            cpu_rate
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// CPU seconds used by the calling thread.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; the clock id is valid.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
