//! `rebound send`: record sends and print the return path each must use.
use super::verp::{now, parse_validity, Format};
use anyhow::Context;
use clap::{Args, Subcommand};
use rebound::store::sends::{put_send, Send};
use rebound::verp::{self, Keys};
use serde_json::json;
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// Subcommands of `send`.
#[derive(Subcommand, Debug)]
pub enum SendCommand {
    /// Record one send and print its return path.
    #[command(after_help = "Example:\n  rebound send add --id 8f3a-42 --recipient alice@example.org --campaign welcome")]
    Add(AddArgs),
    /// Record sends from JSONL on stdin (keys: id, recipient, campaign, sender, sent_at,
    /// expires, metadata) and print one {id, return_path} line per send.
    #[command(after_help = "Example:\n  echo '{\"id\":\"8f3a-42\",\"recipient\":\"alice@example.org\"}' | rebound send import")]
    Import(ImportArgs),
}

/// Arguments of `send add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The send id (letters, digits, '-', '_').
    #[arg(long)]
    pub id: String,
    /// The address mailed.
    #[arg(long)]
    pub recipient: String,
    /// Campaign or stream name.
    #[arg(long, default_value = "")]
    pub campaign: String,
    /// Sender (From or envelope sender).
    #[arg(long, default_value = "")]
    pub sender: String,
    /// Token validity (30d, 12h); default the config's verp.expiry_days.
    #[arg(long, value_parser = parse_validity)]
    pub expires: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Arguments of `send import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Print nothing but the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// One JSONL line of `send import`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SendLine {
    id: String,
    recipient: String,
    #[serde(default)]
    campaign: String,
    #[serde(default)]
    sender: String,
    sent_at: Option<i64>,
    expires: Option<String>,
    metadata: Option<serde_json::Value>,
}

/// Records sends.
pub fn run(g: &super::Globals, c: SendCommand) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let keys = rebound::verp_keys::load_or_create(&config.verp)?;
    let mut conn = rebound::store::open(&config.store.db)?;
    let default_valid = i64::from(config.verp.expiry_days) * verp::DAY_SECS;
    let maker = SendMaker { keys: &keys, cfg: &config.verp, default_valid, now: now() };
    match c {
        SendCommand::Add(a) => {
            let s = maker.make(&a.id, &a.recipient, a.campaign, a.sender, None, a.expires, String::new())?;
            put_send(&conn, &s)?;
            match a.format {
                Format::Text => println!("{}", s.return_path),
                Format::Json => println!("{}", json!({"id": s.id, "return_path": s.return_path, "expires_at": s.expires_at})),
            }
            Ok(ExitCode::SUCCESS)
        }
        SendCommand::Import(a) => import(&mut conn, &maker, a.quiet),
    }
}

struct SendMaker<'a> {
    keys: &'a Keys,
    cfg: &'a verp::VerpConfig,
    default_valid: i64,
    now: i64,
}

impl SendMaker<'_> {
    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        id: &str,
        recipient: &str,
        campaign: String,
        sender: String,
        sent_at: Option<i64>,
        valid: Option<i64>,
        metadata: String,
    ) -> anyhow::Result<Send> {
        let recipient = recipient.trim();
        anyhow::ensure!(recipient.contains('@'), "recipient {recipient:?} is not an address");
        let sent_at = sent_at.unwrap_or(self.now);
        let day = verp::expiry_day_for(sent_at, valid.unwrap_or(self.default_valid));
        let return_path = self.keys.sign(&self.cfg.prefix, &self.cfg.domain, id, day)?;
        Ok(Send {
            id: id.to_string(),
            recipient: recipient.to_string(),
            sender,
            campaign,
            sent_at,
            expires_at: Some(day * verp::DAY_SECS),
            return_path,
            metadata,
        })
    }
}

fn import(conn: &mut rusqlite::Connection, maker: &SendMaker<'_>, quiet: bool) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    // One big transaction: keep its dirty pages in memory instead of spilling them.
    conn.pragma_update(None, "cache_size", -262_144)?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let tx = conn.transaction()?;
    let (mut ok, mut bad) = (0u64, 0u64);
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let made = serde_json::from_str::<SendLine>(&line).map_err(anyhow::Error::from).and_then(|l| {
            let valid = l.expires.as_deref().map(parse_validity).transpose().map_err(anyhow::Error::msg)?;
            let metadata = l.metadata.map(|m| m.to_string()).unwrap_or_default();
            maker.make(&l.id, &l.recipient, l.campaign, l.sender, l.sent_at, valid, metadata)
        });
        match made {
            Ok(s) => {
                put_send(&tx, &s)?;
                ok += 1;
                if !quiet {
                    serde_json::to_writer(&mut out, &json!({"id": s.id, "return_path": s.return_path}))?;
                    out.write_all(b"\n")?;
                }
            }
            Err(e) => {
                bad += 1;
                eprintln!("stdin:{}: {e:#}", i + 1);
            }
        }
    }
    tx.commit()?;
    out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs();
    eprintln!(
        "imported {ok} sends ({bad} bad lines) in {secs:.3}s: {:.0} sends/s ({cpu:.3}s CPU: {:.0} sends/CPU-s)",
        ok as f64 / secs.max(1e-9),
        ok as f64 / cpu.max(1e-9)
    );
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// User + system CPU time of this process so far, in seconds (0 if unknown): on a
/// shared machine it says more about the import's cost than the wall clock.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}
