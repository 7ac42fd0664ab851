//! `rebound rules`: check a rules file and its examples, list the rules in force, try
//! one reply against them.
use clap::{Args, Subcommand, ValueEnum};
use rebound::classify::rules::RuleSet;
use rebound::classify::Classifier;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands of `rules`.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Validate a rules file (merged over the defaults) and check every rule's examples.
    #[command(after_help = "Examples:\n  rebound rules check /etc/rebound/rules.toml\n  rebound rules check          # the embedded defaults (or [classify] rules)")]
    Check(CheckArgs),
    /// List the rules in evaluation order.
    #[command(after_help = "Examples:\n  rebound rules list\n  rebound rules list --format jsonl /etc/rebound/rules.toml")]
    List(ListArgs),
    /// Classify one SMTP reply and show the rule that decided.
    #[command(after_help = "Example:\n  rebound rules try --code 550 --status 5.7.1 '550 5.7.1 blocked using zen.spamhaus.org'")]
    Try(TryArgs),
}

/// Arguments of `rules check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Operator rules file; default: the config's [classify] rules, else only the defaults.
    pub file: Option<PathBuf>,
}

/// Output formats of `rules list`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// One line per rule.
    Text,
    /// One JSON object per rule.
    Jsonl,
}

/// Arguments of `rules list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Operator rules file merged over the defaults.
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Arguments of `rules try`.
#[derive(Args, Debug)]
pub struct TryArgs {
    /// SMTP reply code (e.g. 550).
    #[arg(long)]
    pub code: Option<u16>,
    /// Enhanced status code (e.g. 5.1.1).
    #[arg(long, default_value = "")]
    pub status: String,
    /// Operator rules file merged over the defaults.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// The reply text.
    pub text: String,
}

/// Runs a `rules` subcommand.
pub fn run(g: &super::Globals, c: RulesCommand) -> anyhow::Result<ExitCode> {
    match c {
        RulesCommand::Check(a) => check(g, a),
        RulesCommand::List(a) => list(a),
        RulesCommand::Try(a) => try_reply(a),
    }
}

/// Loads the defaults plus `file`; errors go to stderr with file and line.
fn load(file: Option<&PathBuf>) -> Result<RuleSet, ExitCode> {
    let loaded = match file {
        None => RuleSet::load(None),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => RuleSet::load(Some((&path.display().to_string(), &text))),
            Err(e) => {
                eprintln!("rebound: {}: {e}", path.display());
                return Err(ExitCode::from(1));
            }
        },
    };
    loaded.and_then(|set| set.compile_regexes().map(|()| set)).map_err(|e| {
        eprintln!("rebound: {e}");
        ExitCode::from(1)
    })
}

fn check(g: &super::Globals, a: CheckArgs) -> anyhow::Result<ExitCode> {
    let file = match a.file {
        Some(f) => Some(f),
        None => g.config()?.classify.rules,
    };
    let set = match load(file.as_ref()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let (n, failures) = set.check_examples();
    for f in &failures {
        eprintln!("{}:{}: rule {}: example {:?}: {}", f.origin.0, f.origin.1, f.rule, f.text, f.message);
    }
    let source = file.as_ref().map_or("embedded defaults".to_string(), |p| format!("{} over the defaults", p.display()));
    if failures.is_empty() {
        println!("{source}: {} rules, {n} examples, all decided by their own rule", set.rules().len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{source}: {} of {n} examples failed", failures.len());
        Ok(ExitCode::from(1))
    }
}

fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let set = match load(a.file.as_ref()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    for r in set.rules() {
        let s = &r.spec;
        match a.format {
            ListFormat::Jsonl => {
                let v = serde_json::json!({
                    "id": s.id, "reason": s.reason, "file": r.origin.0, "line": r.origin.1,
                    "status": s.status, "reply": s.reply, "command": s.command, "not_command": s.not_command,
                    "kind": s.kind, "host": s.host, "hint": s.hint, "severity": s.severity,
                    "patterns": s.text.len(), "examples": s.examples.len(), "note": s.note,
                });
                writeln!(out, "{v}")?;
            }
            ListFormat::Text => {
                let mut m = Vec::new();
                for (name, v) in [("kind", &s.kind), ("status", &s.status), ("reply", &s.reply), ("command", &s.command), ("hint", &s.hint), ("host", &s.host)] {
                    if !v.is_empty() {
                        m.push(format!("{name}={}", v.join(",")));
                    }
                }
                if !s.text.is_empty() {
                    m.push(format!("text={} patterns", s.text.len()));
                }
                writeln!(out, "{:<40} {:<16} {}", s.id, s.reason, m.join(" "))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn try_reply(a: TryArgs) -> anyhow::Result<ExitCode> {
    let classifier = match &a.rules {
        None => Classifier::with_default_rules(),
        Some(p) => match Classifier::from_config(&rebound::classify::ClassifyConfig { rules: Some(p.clone()) }) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("rebound: {e}");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let v = classifier.classify_reply(a.code, &a.status, &a.text);
    println!("{}", serde_json::to_string(&v)?);
    Ok(ExitCode::SUCCESS)
}
