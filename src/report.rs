//! Reports: events and rates per domain, mailbox provider, reason, class or campaign in
//! a time window; bounce and complaint rates against recorded sends; flags for
//! complaint rates over 0.1 % and 0.3 % and for sender-fault blocks (reputation,
//! authentication, policy) per receiving provider, which call for the sender to act.
//! Also the time specifications the operator commands take (`7d`, a date, RFC 3339).

use crate::provider::provider_of;
use crate::store::query::{event_aggregates, send_aggregates, EventAggregate};
use crate::store::StoreError;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::BTreeMap;

/// Complaint rate above which a group is flagged as a warning (0.1 %).
pub const COMPLAINT_WARN: f64 = 0.001;
/// Complaint rate above which a group is flagged as critical (0.3 %).
pub const COMPLAINT_CRITICAL: f64 = 0.003;

/// A time or duration that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid time {0:?}: use a duration (90s, 30m, 12h, 7d, 2w, 1y), a date (2026-11-01), RFC 3339 or @UNIX")]
pub struct TimeSpecError(pub String);

/// A duration such as `90s`, `30m`, `12h`, `7d`, `2w`, `1y` (365 days) in seconds.
pub fn parse_duration_secs(s: &str) -> Result<i64, TimeSpecError> {
    let err = || TimeSpecError(s.to_string());
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| err())?;
    let mult = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// A point in time (Unix seconds): a duration back from `now` (`7d`), a date
/// (`2026-11-01`, midnight UTC), RFC 3339, or `@UNIX`.
pub fn parse_time(s: &str, now: i64) -> Result<i64, TimeSpecError> {
    let t = s.trim();
    if let Some(unix) = t.strip_prefix('@') {
        return unix.parse().map_err(|_| TimeSpecError(s.to_string()));
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp()).ok_or_else(|| TimeSpecError(s.to_string()));
    }
    Ok(now - parse_duration_secs(t)?)
}

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// Recipient domain.
    Domain,
    /// Mailbox provider behind the domain (see [`crate::provider`]).
    Provider,
    /// Sisimai reason.
    Reason,
    /// Coarse class.
    Class,
    /// Campaign of the correlated send.
    Campaign,
}

/// Counts and rates of one group.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GroupStats {
    /// The group's value ("" for events without one, e.g. no campaign).
    pub key: String,
    /// Sends recorded for the group (None when the grouping has no sends of its own).
    pub sends: Option<i64>,
    /// All events.
    pub events: i64,
    /// Permanent failures (kind bounce).
    pub bounces: i64,
    /// Bounces that are a permanent failure of the address itself.
    pub hard: i64,
    /// Other bounces.
    pub soft: i64,
    /// Delays (still retried).
    pub delays: i64,
    /// Complaints (ARF).
    pub complaints: i64,
    /// Auto-replies.
    pub autoreplies: i64,
    /// Delivery notices.
    pub delivered: i64,
    /// Sender-fault blocks: reputation, authentication, policy.
    pub sender_blocks: i64,
    /// bounces / sends.
    pub bounce_rate: Option<f64>,
    /// complaints / sends.
    pub complaint_rate: Option<f64>,
    /// Conditions an operator should act on.
    pub flags: Vec<String>,
}

/// Sender-fault blocks seen from one receiving provider.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SenderBlocks {
    /// Mailbox provider.
    pub provider: String,
    /// Blocks for IP or domain reputation.
    pub reputation: i64,
    /// Blocks for SPF/DKIM/DMARC failures.
    pub authentication: i64,
    /// Blocks for the provider's policy.
    pub policy: i64,
}

/// A whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Window start (Unix seconds, inclusive).
    pub since: i64,
    /// Window end (Unix seconds, exclusive).
    pub until: i64,
    /// Grouping.
    pub by: GroupBy,
    /// One entry per group, most events first.
    pub groups: Vec<GroupStats>,
    /// All groups together.
    pub total: GroupStats,
    /// Sender-fault blocks per provider, most first.
    pub sender_blocks: Vec<SenderBlocks>,
}

fn is_sender_block(a: &EventAggregate) -> bool {
    a.fault == "sender" && matches!(a.class.as_str(), "reputation" | "authentication" | "policy")
}

fn add(g: &mut GroupStats, a: &EventAggregate) {
    g.events += a.count;
    match a.kind.as_str() {
        "bounce" => {
            g.bounces += a.count;
            if a.hard {
                g.hard += a.count;
            } else {
                g.soft += a.count;
            }
        }
        "delay" => g.delays += a.count,
        "complaint" => g.complaints += a.count,
        "autoreply" => g.autoreplies += a.count,
        "delivered" => g.delivered += a.count,
        _ => {}
    }
    if is_sender_block(a) {
        g.sender_blocks += a.count;
    }
}

fn finish(g: &mut GroupStats, sends: Option<i64>) {
    g.sends = sends;
    let rate = |n: i64| sends.filter(|s| *s > 0).map(|s| n as f64 / s as f64);
    g.bounce_rate = rate(g.bounces);
    g.complaint_rate = rate(g.complaints);
    if let Some(r) = g.complaint_rate {
        if r > COMPLAINT_CRITICAL {
            g.flags.push("complaints>0.3%".into());
        } else if r > COMPLAINT_WARN {
            g.flags.push("complaints>0.1%".into());
        }
    }
    if g.sender_blocks > 0 {
        g.flags.push("sender-fault-blocks".into());
    }
}

fn group_key(by: GroupBy, domain: &str, campaign: &str, a: Option<&EventAggregate>) -> String {
    match (by, a) {
        (GroupBy::Domain, _) => domain.to_string(),
        (GroupBy::Provider, _) => provider_of(domain),
        (GroupBy::Campaign, _) => campaign.to_string(),
        (GroupBy::Reason, Some(a)) => a.reason.clone(),
        (GroupBy::Class, Some(a)) => a.class.clone(),
        (_, None) => String::new(),
    }
}

/// Builds the report for events and sends in `[since, until)`.
pub fn build_report(conn: &Connection, since: i64, until: i64, by: GroupBy) -> Result<Report, StoreError> {
    let events = event_aggregates(conn, since, until)?;
    let sends = send_aggregates(conn, since, until)?;
    let total_sends: i64 = sends.iter().map(|s| s.count).sum();
    let sends_per_group = matches!(by, GroupBy::Domain | GroupBy::Provider | GroupBy::Campaign);

    let mut groups: BTreeMap<String, GroupStats> = BTreeMap::new();
    let mut group_sends: BTreeMap<String, i64> = BTreeMap::new();
    if sends_per_group {
        for s in &sends {
            let key = group_key(by, &s.domain, &s.campaign, None);
            *group_sends.entry(key.clone()).or_default() += s.count;
            groups.entry(key.clone()).or_insert_with(|| GroupStats { key, ..Default::default() });
        }
    }
    let mut total = GroupStats { key: "total".into(), ..Default::default() };
    let mut blocks: BTreeMap<String, SenderBlocks> = BTreeMap::new();
    for a in &events {
        let key = group_key(by, &a.domain, &a.campaign, Some(a));
        add(groups.entry(key.clone()).or_insert_with(|| GroupStats { key, ..Default::default() }), a);
        add(&mut total, a);
        if is_sender_block(a) {
            let provider = provider_of(&a.domain);
            let b = blocks.entry(provider.clone()).or_insert_with(|| SenderBlocks { provider, ..Default::default() });
            match a.class.as_str() {
                "reputation" => b.reputation += a.count,
                "authentication" => b.authentication += a.count,
                _ => b.policy += a.count,
            }
        }
    }
    let total_sends = (!sends.is_empty()).then_some(total_sends);
    let mut groups: Vec<GroupStats> = groups
        .into_values()
        .map(|mut g| {
            let s = if sends_per_group { total_sends.map(|_| group_sends.get(&g.key).copied().unwrap_or(0)) } else { total_sends };
            finish(&mut g, s);
            g
        })
        .collect();
    groups.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.key.cmp(&b.key)));
    finish(&mut total, total_sends);
    let mut sender_blocks: Vec<SenderBlocks> = blocks.into_values().collect();
    sender_blocks.sort_by(|a, b| {
        let t = |x: &SenderBlocks| x.reputation + x.authentication + x.policy;
        t(b).cmp(&t(a)).then_with(|| a.provider.cmp(&b.provider))
    });
    Ok(Report { since, until, by, groups, total, sender_blocks })
}

fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.2}%", r * 100.0)).unwrap_or_else(|| "-".into())
}

const COLUMNS: [&str; 12] = [
    "group", "sends", "events", "bounces", "hard", "soft", "delays", "complaints", "blocks", "bounce%", "complaint%",
    "flags",
];

fn cells(g: &GroupStats) -> [String; 12] {
    let key = if g.key.is_empty() { "(none)".to_string() } else { g.key.clone() };
    [
        key,
        g.sends.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        g.events.to_string(),
        g.bounces.to_string(),
        g.hard.to_string(),
        g.soft.to_string(),
        g.delays.to_string(),
        g.complaints.to_string(),
        g.sender_blocks.to_string(),
        pct(g.bounce_rate),
        pct(g.complaint_rate),
        g.flags.join(" "),
    ]
}

/// The report as an aligned text table, with the sender-fault blocks below it.
pub fn render_table(r: &Report) -> String {
    let mut rows: Vec<[String; 12]> = vec![COLUMNS.map(String::from)];
    rows.extend(r.groups.iter().map(cells));
    rows.push(cells(&r.total));
    let mut widths = [0usize; 12];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!(
        "events from {} to {} by {}\n",
        crate::export::rfc3339(r.since),
        crate::export::rfc3339(r.until),
        serde_json::to_value(r.by).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    );
    for row in &rows {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths.iter()).enumerate() {
            if i == 0 {
                line.push_str(&format!("{c:<w$}"));
            } else if i == 11 {
                line.push_str(&format!("  {c}"));
            } else {
                line.push_str(&format!("  {c:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if !r.sender_blocks.is_empty() {
        out.push_str("\nsender-fault blocks (act on these: fix reputation, authentication or policy; do not suppress)\n");
        for b in &r.sender_blocks {
            out.push_str(&format!(
                "  {}: reputation {}, authentication {}, policy {}\n",
                b.provider, b.reputation, b.authentication, b.policy
            ));
        }
    }
    out
}

/// The report as CSV: one line per group, then the total.
pub fn render_csv(r: &Report) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for g in r.groups.iter().chain(std::iter::once(&r.total)) {
        let mut c = cells(g);
        c[0] = g.key.clone();
        for v in c.iter_mut() {
            if v == "-" {
                v.clear();
            }
            if v.contains([',', '"', '\n']) {
                *v = format!("\"{}\"", v.replace('"', "\"\""));
            }
        }
        out.push_str(&c.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_800_000_000;
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400);
        assert_eq!(parse_time("90s", now).unwrap(), now - 90);
        assert_eq!(parse_time("2026-11-01", now).unwrap(), 1_793_491_200);
        assert_eq!(parse_time("2026-11-01T01:00:00+01:00", now).unwrap(), 1_793_491_200);
        assert_eq!(parse_time("@12", now).unwrap(), 12);
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_duration_secs("7x").is_err());
        assert_eq!(parse_duration_secs("1y").unwrap(), 365 * 86_400);
        assert_eq!(parse_duration_secs("180d").unwrap(), 180 * 86_400);
    }
}
