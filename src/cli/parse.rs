//! `rebound parse`: parse messages from files, directories (recursive, maildir
//! included), mbox files or standard input, and print one record per recipient report.
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rebound::classify::Classifier;
use rebound::parse::mbox;
use rebound::pipeline::{self, ProcessedMessage};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per record, one per line.
    Jsonl,
    /// One JSON array of all records.
    Json,
    /// A table for a person.
    Text,
}

/// Arguments of `parse`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  rebound parse bounce.eml\n  rebound parse --format text --explain ~/Maildir\n  cat msg.eml | rebound parse -")]
pub struct ParseArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Add, per record, the rule that decided, the text it matched and where each field came from.
    #[arg(long)]
    pub explain: bool,
    /// Also print one record of kind "none" for each message that yields no record.
    #[arg(long)]
    pub all: bool,
    /// Write to FILE instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Files, directories (read recursively, in name order) or "-" for standard input.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Every regular file below `path` in a stable (sorted) order; `path` itself if a file.
pub fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if e.is_dir() {
            collect_files(&e, out)?;
        } else if e.is_file() {
            out.push(e);
        }
    }
    Ok(())
}

/// Splits file contents into messages: mbox files (first line "From ") are split.
pub fn messages_of(data: &[u8]) -> Vec<&[u8]> {
    if data.starts_with(b"From ") {
        mbox::split_messages(data)
    } else {
        vec![data]
    }
}

/// The JSON records of one processed message (the output contract of `parse`).
pub fn records_json(file: &str, index: usize, p: &ProcessedMessage, explain: bool, all: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for c in &p.records {
        let (r, v) = (&c.record, &c.verdict);
        let mut o = json!({
            "file": file,
            "message": index,
            "kind": r.kind.as_str(),
            "recipient": r.recipient,
            "action": r.action,
            "status": pipeline::reported_status(r, v),
            "reply_code": r.reply_code,
            "reason": v.reason.as_str(),
            "class": v.class.as_str(),
            "fault": v.fault.as_str(),
            "hard": v.hard,
            "feedback_type": r.feedback_type,
            "smtp_command": r.smtp_command,
            "remote_mta": r.remote_mta,
            "reporting_mta": r.reporting_mta,
            "diagnostic": r.diagnostic,
            "return_date": r.return_date,
            "original_message_id": p.parsed.original.message_id,
            "verp": p.parsed.verp_candidates.first().cloned().unwrap_or_default(),
            "rule": v.rule,
            "agent": r.agent,
            "reason_hint": r.reason_hint,
        });
        if explain {
            let prov: serde_json::Map<String, Value> =
                r.provenance.iter().map(|&(k, s)| (k.to_string(), Value::String(s.to_string()))).collect();
            o["explain"] = json!({ "rule": v.rule, "matched": v.matched, "fields": prov });
        }
        out.push(o);
    }
    if out.is_empty() && all {
        out.push(json!({
            "file": file, "message": index, "kind": "none", "recipient": "", "action": "", "status": "",
            "reply_code": null, "reason": "", "class": "", "fault": "none", "hard": false,
            "feedback_type": "", "smtp_command": "", "remote_mta": "", "reporting_mta": "",
            "diagnostic": "", "return_date": "", "original_message_id": p.parsed.original.message_id,
            "verp": p.parsed.verp_candidates.first().cloned().unwrap_or_default(), "rule": "",
        }));
    }
    out
}

fn text_row(o: &Value) -> String {
    let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut line = format!(
        "{}#{}  {:<9} {:<32} {:<8} {:<15} {:<5} {}",
        s("file"),
        o.get("message").and_then(Value::as_u64).unwrap_or(1),
        s("kind"),
        s("recipient"),
        s("status"),
        s("reason"),
        if o.get("hard").and_then(Value::as_bool).unwrap_or(false) { "hard" } else { "soft" },
        s("diagnostic").chars().take(80).collect::<String>()
    );
    if let Some(e) = o.get("explain") {
        line.push_str(&format!("\n    explain: {e}"));
    }
    line
}

/// Parses files and prints records.
pub fn run(g: &super::Globals, a: ParseArgs) -> anyhow::Result<ExitCode> {
    // The operator's rules (config [classify] rules) decide here as they do in serve.
    let classifier = Classifier::from_config(&g.config()?.classify)?;
    let mut failed = false;
    let mut sink: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut all_json: Vec<Value> = Vec::new();
    for path in &a.paths {
        let mut files = Vec::new();
        if path.as_os_str() == "-" {
            files.push(path.clone());
        } else if let Err(e) = collect_files(path, &mut files) {
            eprintln!("rebound parse: {}: {e}", path.display());
            failed = true;
            continue;
        }
        for file in files {
            let data = if file.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf).map(|_| buf)
            } else {
                std::fs::read(&file)
            };
            let data = match data {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("rebound parse: {}: {e}", file.display());
                    failed = true;
                    continue;
                }
            };
            let name = file.display().to_string();
            for (i, msg) in messages_of(&data).into_iter().enumerate() {
                let p = pipeline::process_message(msg, &classifier);
                for o in records_json(&name, i + 1, &p, a.explain, a.all) {
                    match a.format {
                        Format::Jsonl => writeln!(sink, "{o}")?,
                        Format::Json => all_json.push(o),
                        Format::Text => writeln!(sink, "{}", text_row(&o))?,
                    }
                }
            }
        }
    }
    if a.format == Format::Json {
        serde_json::to_writer_pretty(&mut sink, &all_json)?;
        writeln!(sink)?;
    }
    sink.flush()?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
