//! `rebound reject`: record synchronous rejects, from flags or JSONL on stdin.
use super::verp::{now, Format};
use anyhow::Context;
use clap::Args;
use rebound::classify::Classifier;
use rebound::store::rejects::{insert_reject, Reject};
use serde_json::json;
use std::io::BufRead;
use std::process::ExitCode;

/// Arguments of `reject`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  rebound reject --recipient bob@example.org --reply-code 550 --status 5.1.1 --text 'user unknown'\n  \
    echo '{\"recipient\":\"bob@example.org\",\"reply_code\":421,\"status\":\"4.7.0\",\"text\":\"try later\"}' | rebound reject")]
pub struct RejectArgs {
    /// The refused address; without it, rejects are read as JSONL from stdin (keys:
    /// recipient, reply_code, status, text, smtp_command, remote_mta, send_id, time).
    #[arg(long)]
    pub recipient: Option<String>,
    /// SMTP reply code, e.g. 550.
    #[arg(long)]
    pub reply_code: Option<u16>,
    /// Enhanced status code, e.g. 5.1.1.
    #[arg(long, default_value = "")]
    pub status: String,
    /// The server's text.
    #[arg(long, default_value = "")]
    pub text: String,
    /// The SMTP command it answered (RCPT, DATA ...).
    #[arg(long, default_value = "")]
    pub smtp_command: String,
    /// The server that answered.
    #[arg(long, default_value = "")]
    pub remote_mta: String,
    /// The send it belongs to.
    #[arg(long)]
    pub send_id: Option<String>,
    /// When it happened: Unix seconds or RFC 3339 (default now).
    #[arg(long, value_parser = parse_time)]
    pub time: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// One JSONL line of `reject`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectLine {
    recipient: String,
    reply_code: Option<u16>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    smtp_command: String,
    #[serde(default)]
    remote_mta: String,
    send_id: Option<String>,
    time: Option<serde_json::Value>,
}

/// Parses Unix seconds or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    s.parse::<i64>()
        .ok()
        .or_else(|| chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp()))
        .ok_or_else(|| format!("{s:?}: expected Unix seconds or RFC 3339"))
}

fn line_reject(line: &str) -> anyhow::Result<Reject> {
    let l: RejectLine = serde_json::from_str(line)?;
    let time = match l.time {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(n.as_i64().context("time: not an integer")?),
        Some(serde_json::Value::String(s)) => Some(parse_time(&s).map_err(anyhow::Error::msg)?),
        Some(_) => anyhow::bail!("time: expected Unix seconds or RFC 3339"),
    };
    Ok(Reject {
        recipient: l.recipient,
        reply_code: l.reply_code,
        status: l.status,
        text: l.text,
        smtp_command: l.smtp_command,
        remote_mta: l.remote_mta,
        send_id: l.send_id,
        time,
    })
}

/// Records synchronous rejects.
pub fn run(g: &super::Globals, a: RejectArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let mut conn = rebound::store::open(&config.store.db)?;
    let classifier = Classifier::from_config(&config.classify)?;
    let format = a.format;
    let tx = conn.transaction()?;
    let mut bad = 0u64;
    let record = |r: Reject, at: &str| -> anyhow::Result<bool> {
        if !r.recipient.contains('@') {
            eprintln!("{at}: recipient {:?} is not an address", r.recipient);
            return Ok(false);
        }
        let (id, e) = insert_reject(&tx, &classifier, &r, now())?;
        let state = rebound::store::status::get_status(&tx, &e.recipient)?
            .map(|s| s.state.as_str())
            .unwrap_or("active");
        match format {
            Format::Text => println!(
                "{}: {} {} fault={} hard={} verified={} state={state}",
                e.recipient, e.reason, e.class, e.fault, e.hard, e.verified
            ),
            Format::Json => println!(
                "{}",
                json!({"event_id": id, "recipient": e.recipient, "kind": e.kind, "reason": e.reason, "class": e.class,
                       "fault": e.fault, "hard": e.hard, "rule": e.rule, "verified": e.verified, "send_id": e.send_id,
                       "state": state})
            ),
        }
        Ok(true)
    };
    if let Some(recipient) = a.recipient {
        let r = Reject {
            recipient,
            reply_code: a.reply_code,
            status: a.status,
            text: a.text,
            smtp_command: a.smtp_command,
            remote_mta: a.remote_mta,
            send_id: a.send_id,
            time: a.time,
        };
        bad += u64::from(!record(r, "--recipient")?);
    } else {
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            let line = line.context("reading stdin")?;
            if line.trim().is_empty() {
                continue;
            }
            match line_reject(&line) {
                Ok(r) => bad += u64::from(!record(r, &format!("stdin:{}", i + 1))?),
                Err(e) => {
                    bad += 1;
                    eprintln!("stdin:{}: {e:#}", i + 1);
                }
            }
        }
    }
    tx.commit()?;
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
