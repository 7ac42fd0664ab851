//! Sendmail log lines → [`LogEntry`]: `from=<...>, size=, nrcpts=, msgid=<...>` and
//! `to=<a>,<b>, ..., mailer=, relay=host. [ip], dsn=X.Y.Z, [reply=...,] stat=...` joined
//! by queue id. Pure; never panics.

use super::postfix::{fill_from_text, reply_code};
use super::{queue_id_prefix, DeliveryResult, DeliveryStatus, LogEntry, Mta};

/// Parses the message part of a Sendmail log line (after `sendmail[pid]: `).
pub fn parse(message: &str) -> LogEntry {
    let Some((queue_id, rest)) = queue_id_prefix(message) else { return LogEntry::Unknown };
    if let Some(after) = rest.strip_prefix("from=") {
        let (sender, tail) = address(after);
        let message_id = field(tail, "msgid").map(|m| m.trim_start_matches('<').trim_end_matches('>').to_string());
        return LogEntry::Sender { queue_id: queue_id.into(), sender: sender.into(), message_id };
    }
    if let Some(after) = rest.strip_prefix("to=") {
        return deliveries(queue_id, after).map_or(LogEntry::Unknown, LogEntry::Results);
    }
    LogEntry::Ignored
}

/// `<a@x>` or `a@x` up to the next `, `; returns (address, rest after the comma).
fn address(s: &str) -> (&str, &str) {
    let (a, rest) = s.split_once(", ").unwrap_or((s, ""));
    (a.trim_start_matches('<').trim_end_matches('>'), rest)
}

/// The value of `key=` among `k=v, ` fields (not `stat=`, which is last and free text).
fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    fields.split(", ").find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// One result per address of `to=<a>,<b>, ... stat=...`.
fn deliveries(queue_id: &str, after: &str) -> Option<Vec<DeliveryResult>> {
    let (to_list, fields) = after.split_once(", ")?;
    let stat_at = fields.find("stat=")?;
    let head = fields.get(..stat_at)?;
    let stat = fields.get(stat_at + "stat=".len()..)?.trim();
    let dsn = field(head, "dsn").unwrap_or("").to_string();
    let relay = field(head, "relay").unwrap_or("").to_string();
    let reply = field(head, "reply").unwrap_or("");
    let status = if stat.starts_with("Sent") {
        DeliveryStatus::Sent
    } else if stat.starts_with("Deferred") {
        DeliveryStatus::Deferred
    } else if dsn.starts_with('4') {
        // A 4xx that is no longer retried: the queue lifetime ran out.
        DeliveryStatus::Expired
    } else {
        DeliveryStatus::Bounced
    };
    let text = if reply.is_empty() { stat.trim_start_matches("Deferred: ").trim() } else { reply };
    let results: Vec<DeliveryResult> = to_list
        .split(',')
        .map(|a| a.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|a| !a.is_empty())
        .map(|recipient| {
            let mut r = DeliveryResult {
                mta: Mta::Sendmail,
                queue_id: queue_id.into(),
                recipient: recipient.into(),
                status,
                dsn: dsn.clone(),
                relay: relay.clone(),
                text: text.into(),
                ..Default::default()
            };
            fill_from_text(&mut r);
            if r.remote_host.is_empty() {
                r.remote_host = relay.split(' ').next().unwrap_or("").trim_end_matches('.').into();
            }
            r.reply_code = r.reply_code.or_else(|| reply_code(text));
            r
        })
        .collect();
    (!results.is_empty()).then_some(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_and_user_unknown() {
        let f = "4ATH0aAa012345: from=<bounces+s1@b.test>, size=264, class=0, nrcpts=1, msgid=<m1@app.test>, \
                 proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]";
        assert_eq!(
            parse(f),
            LogEntry::Sender { queue_id: "4ATH0aAa012345".into(), sender: "bounces+s1@b.test".into(), message_id: Some("m1@app.test".into()) }
        );
        let t = "4ATH0aAa012345: to=<u@example.org>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=120264, \
                 relay=mx.example.org. [192.0.2.1], dsn=5.1.1, reply=550 5.1.1 <u@example.org>... User unknown, stat=User unknown";
        let LogEntry::Results(v) = parse(t) else { panic!() };
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].status, DeliveryStatus::Bounced);
        assert_eq!(v[0].reply_code, Some(550));
        assert_eq!(v[0].remote_host, "mx.example.org");
        assert_eq!(v[0].dsn, "5.1.1");
    }

    #[test]
    fn deferred_two_recipients_and_sent() {
        let t = "4ATH0aAa012345: to=<a@x.org>,<b@x.org>, ctladdr=<s@y> (0/0), delay=00:00:05, mailer=esmtp, pri=1, \
                 relay=mx.x.org. [192.0.2.2], dsn=4.2.0, stat=Deferred: 450 4.2.0 Greylisted, try later";
        let LogEntry::Results(v) = parse(t) else { panic!() };
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].recipient, "b@x.org");
        assert_eq!(v[1].status, DeliveryStatus::Deferred);
        assert_eq!(v[1].reply_code, Some(450));
        assert_eq!(v[1].diagnostic, "450 4.2.0 Greylisted, try later");
        let s = "4ATH0aAa012345: to=c@x.org, delay=00:00:01, mailer=esmtp, pri=1, relay=mx. [192.0.2.3], dsn=2.0.0, \
                 stat=Sent (4ATH1bBb012346 Message accepted for delivery)";
        let LogEntry::Results(v) = parse(s) else { panic!() };
        assert_eq!(v[0].status, DeliveryStatus::Sent);
        assert_eq!(parse("4ATH0aAa012345: 4ATH0aAb012346: DSN: User unknown"), LogEntry::Ignored);
        assert_eq!(parse("STARTTLS=client, relay=x"), LogEntry::Unknown);
    }
}
