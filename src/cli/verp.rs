//! `rebound verp`: sign and check return-path addresses.
use clap::{Args, Subcommand, ValueEnum};
use rebound::verp::{self, ReturnPath, VerpError};
use serde_json::json;
use std::process::ExitCode;

/// Output format of the verp, send and reject commands.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Lines for people.
    #[default]
    Text,
    /// JSON (one object per line).
    Json,
}

/// Subcommands of `verp`.
#[derive(Subcommand, Debug)]
pub enum VerpCommand {
    /// Print a signed return-path address for a send id.
    #[command(after_help = "Example:\n  rebound verp sign --id 8f3a-42 --expires 30d\n  bounce+8f3a-42.ukr.7auexqvrmygr@bounce.example.com")]
    Sign(SignArgs),
    /// Check a return-path address: exit 0 only when its token is valid.
    #[command(after_help = "Example:\n  rebound verp check bounce+8f3a-42.ukr.7auexqvrmygr@bounce.example.com --format json")]
    Check(CheckArgs),
}

/// Arguments of `verp sign`.
#[derive(Args, Debug)]
pub struct SignArgs {
    /// The send id (letters, digits, '-', '_'; at most 64).
    #[arg(long)]
    pub id: String,
    /// How long the token stays valid: days or hours (30d, 12h); 0d is already expired.
    #[arg(long, value_parser = parse_validity)]
    pub expires: Option<i64>,
    /// Domain of the address (default: the config's verp.domain).
    #[arg(long)]
    pub domain: Option<String>,
    /// Local-part prefix (default: the config's verp.prefix).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Arguments of `verp check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The return-path address to check.
    pub address: String,
    /// Local-part prefix (default: the config's verp.prefix).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Parses a validity like `30d`, `12h` or `7` (days) into seconds.
pub fn parse_validity(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, 'd')) | Some((i, 'D')) => (&s[..i], verp::DAY_SECS),
        Some((i, 'h')) | Some((i, 'H')) => (&s[..i], 3600),
        _ => (s, verp::DAY_SECS),
    };
    let n: i64 = num.parse().map_err(|_| format!("{s:?}: expected days or hours, e.g. 30d or 12h"))?;
    if !(0..=36_500).contains(&n) {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(n * unit)
}

/// The current Unix time.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A day number as YYYY-MM-DD.
pub fn day_text(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(verp::DAY_SECS), 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| day.to_string())
}

/// Signs and checks VERP addresses.
pub fn run(g: &super::Globals, c: VerpCommand) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    match c {
        VerpCommand::Sign(a) => {
            let keys = rebound::verp_keys::load_or_create(&config.verp)?;
            let valid = a.expires.unwrap_or(i64::from(config.verp.expiry_days) * verp::DAY_SECS);
            let day = verp::expiry_day_for(now(), valid);
            let prefix = a.prefix.as_deref().unwrap_or(&config.verp.prefix);
            let domain = a.domain.as_deref().unwrap_or(&config.verp.domain);
            let address = keys.sign(prefix, domain, &a.id, day)?;
            match a.format {
                Format::Text => println!("{address}"),
                Format::Json => println!(
                    "{}",
                    json!({"id": a.id, "return_path": address, "expires": day_text(day), "expires_at": day * verp::DAY_SECS})
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        VerpCommand::Check(a) => check(&config, a),
    }
}

fn check(config: &rebound::config::Config, a: CheckArgs) -> anyhow::Result<ExitCode> {
    let prefix = a.prefix.as_deref().unwrap_or(&config.verp.prefix);
    let keys = rebound::verp_keys::load_or_create(&config.verp)?;
    let mut out = json!({"address": a.address, "valid": false});
    let (valid, text) = match verp::parse_return_path(&a.address, prefix) {
        Ok(ReturnPath::Signed { id, expiry_day, mac }) => {
            out["kind"] = json!("signed");
            out["id"] = json!(id);
            out["expires"] = json!(day_text(expiry_day));
            match keys.verify_parts(&id, expiry_day, &mac, now()) {
                Ok(_) => (true, format!("valid: send {id}, expires {}", day_text(expiry_day))),
                Err(VerpError::Expired { id, expiry_day }) => {
                    out["error"] = json!("expired");
                    (false, format!("invalid: expired: send {id}, expired on {}", day_text(expiry_day)))
                }
                Err(e) => {
                    out["error"] = json!(error_name(&e));
                    (false, format!("invalid: {e}"))
                }
            }
        }
        Ok(ReturnPath::Classic { recipient }) => {
            out["kind"] = json!("classic");
            out["recipient"] = json!(recipient);
            // Classic VERP is unsigned: it is valid only for an address we mailed.
            let send = match config.store.db.exists() {
                true => rebound::store::sends::latest_send_to(&rebound::store::open_current(&config.store.db)?, &recipient, now())?,
                false => None,
            };
            match send {
                Some(s) => {
                    out["id"] = json!(s.id);
                    (true, format!("valid: classic VERP for {recipient}, send {}", s.id))
                }
                None => {
                    out["error"] = json!("unmatched");
                    (false, format!("invalid: classic VERP for {recipient} with no matching send"))
                }
            }
        }
        Err(e) => {
            out["error"] = json!(error_name(&e));
            (false, format!("invalid: {e}"))
        }
    };
    out["valid"] = json!(valid);
    match a.format {
        Format::Text => println!("{text}"),
        Format::Json => println!("{out}"),
    }
    Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn error_name(e: &VerpError) -> &'static str {
    match e {
        VerpError::Forged => "forged",
        VerpError::Expired { .. } => "expired",
        VerpError::Malformed(_) | VerpError::InvalidId(_) | VerpError::NoKey => "malformed",
    }
}
