//! `rebound explain`.
use clap::Args;
use rebound::export::rfc3339;
use rebound::store::query::{event_by_id, events_of_message, message_by_id};
use std::fmt::Write as _;
use std::process::ExitCode;

/// Arguments of `explain`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  rebound explain 1234            # the event, its message's headers, the rule trace
  rebound explain --raw 1234      # and the whole stored message

Event ids appear in `rebound status ADDRESS`. The rule trace re-runs today's parser and
rules on the stored message; a different rule than the stored one means the rules have
changed since. Exit status 1 when there is no such event.")]
pub struct ExplainArgs {
    /// Id of the event.
    pub event_id: i64,
    /// Print the whole stored message, not only its headers.
    #[arg(long)]
    pub raw: bool,
}

/// Shows a stored event, its message and the rule trace.
pub fn run(g: &super::Globals, a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let db = config.store.db;
    let conn = rebound::store::open_current(&db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    let Some(e) = event_by_id(&conn, a.event_id)? else {
        eprintln!("rebound: explain: no event {}", a.event_id);
        return Ok(ExitCode::from(1));
    };
    let mut o = String::new();
    let _ = writeln!(o, "event {}  {}  source {}", e.id, rfc3339(e.occurred_at), e.source);
    let fields: [(&str, String); 17] = [
        ("recipient", e.recipient.clone()),
        ("kind", e.kind.clone()),
        ("action", e.action.clone()),
        ("status", e.status.clone()),
        ("reply code", e.reply_code.map(|c| c.to_string()).unwrap_or_default()),
        ("diagnostic", e.diagnostic.clone()),
        ("remote MTA", e.remote_mta.clone()),
        ("reporting MTA", e.reporting_mta.clone()),
        ("smtp command", e.smtp_command.clone()),
        ("feedback type", e.feedback_type.clone()),
        ("return date", e.return_date.clone()),
        ("message-id", e.original_message_id.clone()),
        ("verdict", format!("{} / {} / fault {}{}", e.reason, e.class, e.fault, if e.hard { " / hard" } else { "" })),
        ("rule", e.rule.clone()),
        ("send", e.send_id.clone().unwrap_or_default()),
        ("return path", e.envelope_recipient.clone()),
        ("verp token", if e.verp.is_empty() { String::new() } else { format!("{} ({})", e.verp, if e.verified { "verified" } else { "not verified" }) }),
    ];
    for (k, v) in fields.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(o, "  {k:<14} {v}");
    }
    let message = match e.message_id {
        Some(id) => message_by_id(&conn, id)?,
        None => None,
    };
    let Some(m) = message else {
        let _ = writeln!(o, "\nno stored message (the event came from {})", e.source);
        print!("{o}");
        return Ok(ExitCode::SUCCESS);
    };
    let _ = writeln!(
        o,
        "\nmessage {}  received {}  via {}  {} bytes  sha256 {}",
        m.id,
        rfc3339(m.received_at),
        m.source,
        m.size_bytes,
        m.sha256
    );
    let Some(raw) = m.raw_bytes() else {
        let _ = writeln!(o, "  raw bytes pruned (past retention) or unreadable: no rule trace");
        print!("{o}");
        return Ok(ExitCode::SUCCESS);
    };
    let shown = if a.raw { &raw[..] } else { header_block(&raw) };
    o.push('\n');
    o.push_str(&String::from_utf8_lossy(shown));
    if !o.ends_with('\n') {
        o.push('\n');
    }
    o.push_str(&rule_trace(&conn, &e, &raw, &rebound::classify::Classifier::from_config(&config.classify)?)?);
    print!("{o}");
    Ok(ExitCode::SUCCESS)
}

/// The message's header block (up to the empty line).
fn header_block(raw: &[u8]) -> &[u8] {
    let end = memchr::memmem::find(raw, b"\n\n")
        .map(|n| n + 1)
        .or_else(|| memchr::memmem::find(raw, b"\r\n\r\n").map(|n| n + 2))
        .unwrap_or(raw.len());
    raw.get(..end).unwrap_or(raw)
}

/// Re-runs parse and classify on the message and shows what decided this event.
fn rule_trace(
    conn: &rusqlite::Connection,
    e: &rebound::store::query::EventRow,
    raw: &[u8],
    classifier: &rebound::classify::Classifier,
) -> anyhow::Result<String> {
    let mut o = String::from("\nrule trace (today's parser and rules)\n");
    let p = rebound::pipeline::process_message(raw, classifier);
    // The event's position among its message's events picks the record when the
    // recipient alone does not (the same address reported twice).
    let siblings = match e.message_id {
        Some(id) => events_of_message(conn, id)?,
        None => Vec::new(),
    };
    let index = siblings.iter().position(|s| s.id == e.id);
    let record = p
        .records
        .iter()
        .enumerate()
        .filter(|(_, c)| c.record.recipient.eq_ignore_ascii_case(&e.recipient))
        .min_by_key(|(i, _)| index.map(|x| x.abs_diff(*i)).unwrap_or(0))
        .map(|(_, c)| c);
    let Some(c) = record else {
        let _ = writeln!(o, "  the parser finds {} record(s) today, none for {}", p.records.len(), e.recipient);
        for w in &p.parsed.warnings {
            let _ = writeln!(o, "  warning: {w}");
        }
        return Ok(o);
    };
    let r = &c.record;
    let _ = writeln!(o, "  parsed by      {}", if r.agent.is_empty() { "-" } else { &r.agent });
    for (field, source) in &r.provenance {
        let _ = writeln!(o, "  {field:<14} from {source}");
    }
    if !r.reason_hint.is_empty() {
        let _ = writeln!(o, "  format hint    {}", r.reason_hint);
    }
    let v = &c.verdict;
    let _ = writeln!(o, "  rule           {}", v.rule);
    if !v.matched.is_empty() {
        let _ = writeln!(o, "  matched        {}", v.matched);
    }
    let _ = writeln!(o, "  verdict        {} / {} / fault {}{}", v.reason, v.class, v.fault, if v.hard { " / hard" } else { "" });
    if v.rule != e.rule || v.reason.as_str() != e.reason {
        let _ = writeln!(o, "  note           stored verdict was {} by rule {}: the rules changed since", e.reason, e.rule);
    }
    for w in &p.parsed.warnings {
        let _ = writeln!(o, "  warning        {w}");
    }
    Ok(o)
}
