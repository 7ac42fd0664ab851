//! `rebound status`.
use clap::{Args, ValueEnum};
use rebound::export::rfc3339;
use rebound::policy::AddressStatus;
use rebound::store::query::{last_events, EventRow};
use rebound::store::status::get_status;
use serde::Serialize;
use std::fmt::Write as _;
use std::process::ExitCode;

/// Output format of `status`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    /// Readable text.
    Text,
    /// One JSON array.
    Json,
}

/// Arguments of `status`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  rebound status alice@example.org bob@example.net
  rebound status --format json alice@example.org | jq .[0].state

State is one of active, soft_bouncing, suppressed, complained, unsubscribed, or unknown
(rebound has no status row and no event for the address).
Exit status: 0 when every address is known, 1 when any is unknown (or on an error),
2 on a usage error.")]
pub struct StatusArgs {
    /// Addresses to look up (case-insensitive).
    #[arg(required = true)]
    pub addresses: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// How many recent events to show per address.
    #[arg(long, default_value_t = 5)]
    pub events: u32,
}

/// What `status` says about one address.
#[derive(Serialize)]
struct AddressReport {
    address: String,
    state: String,
    status: Option<AddressStatus>,
    events: Vec<EventRow>,
}

/// Prints the state of addresses and their last events.
pub fn run(g: &super::Globals, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let db = g.config()?.store.db;
    let conn = rebound::store::open_current(&db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    let mut reports = Vec::new();
    for address in &a.addresses {
        let status = get_status(&conn, address)?;
        let events = last_events(&conn, address, a.events)?;
        let state = match (&status, events.is_empty()) {
            (Some(s), _) => s.state.as_str().to_string(),
            // Events that never changed the address (sender-fault blocks, delays...).
            (None, false) => "active".to_string(),
            (None, true) => "unknown".to_string(),
        };
        reports.push(AddressReport { address: address.trim().to_lowercase(), state, status, events });
    }
    let unknown = reports.iter().any(|r| r.state == "unknown");
    let out = match a.format {
        StatusFormat::Json => serde_json::to_string_pretty(&reports)? + "\n",
        StatusFormat::Text => reports.iter().map(render).collect::<Vec<_>>().join("\n"),
    };
    print!("{out}");
    Ok(if unknown { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn render(r: &AddressReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}: {}", r.address, r.state);
    if let Some(s) = &r.status {
        let _ = writeln!(o, "  since     {}", rfc3339(s.since));
        if !s.reason.is_empty() || !s.class.is_empty() {
            let _ = writeln!(o, "  why       reason {}, class {}, rule {}", s.reason, s.class, or_dash(&s.rule));
        }
        let until = match (s.state.as_str(), s.suppressed_until) {
            ("suppressed" | "complained" | "unsubscribed", None) => ", until further notice".to_string(),
            (_, Some(t)) => format!(", until {}", rfc3339(t)),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  counts    hard {}, soft {}, complaints {}, delivered {}{until}",
            s.hard_count, s.soft_count, s.complaint_count, s.delivered_count
        );
        let _ = writeln!(o, "  events    first {}, last {}", rfc3339(s.first_event_at), rfc3339(s.last_event_at));
    }
    if r.status.is_none() && !r.events.is_empty() {
        // Unverified bounces (no valid VERP token) and sender-fault or transient
        // failures are recorded but never change an address.
        let _ = writeln!(o, "  no status row: none of its events changed the address");
    }
    if r.events.is_empty() {
        let _ = writeln!(o, "  no events");
    }
    for e in &r.events {
        let code = e.reply_code.map(|c| format!(" {c}")).unwrap_or_default();
        let _ = writeln!(
            o,
            "  event {}  {}  {} {}{}  {} ({}, fault {}{})  source {}{}",
            e.id,
            rfc3339(e.occurred_at),
            e.kind,
            or_dash(&e.status),
            code,
            e.reason,
            e.class,
            e.fault,
            if e.hard { ", hard" } else { "" },
            e.source,
            if e.verified { ", verified" } else { ", unverified" }
        );
        if !e.diagnostic.is_empty() {
            let _ = writeln!(o, "      diagnostic  {}", e.diagnostic);
        }
        if !e.remote_mta.is_empty() {
            let _ = writeln!(o, "      remote MTA  {}", e.remote_mta);
        }
        if !e.original_message_id.is_empty() {
            let _ = writeln!(o, "      message-id  <{}>", e.original_message_id.trim_matches(|c| c == '<' || c == '>'));
        }
        if let Some(send) = &e.send_id {
            let _ = writeln!(o, "      send        {send}");
        }
    }
    o
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}
