//! Postfix log lines → [`LogEntry`]: qmgr `from=<...>`, cleanup `message-id=`, the
//! delivery agents' `to=<...>, relay=, dsn=, status=... (text)` lines, qmgr's
//! `status=expired, returned to sender` and `removed`. Pure; never panics.

use super::{queue_id_prefix, DeliveryResult, DeliveryStatus, LogEntry, Mta};

/// Parses the message part of a Postfix log line (after `postfix/agent[pid]: `).
pub fn parse(message: &str) -> LogEntry {
    let Some((queue_id, rest)) = queue_id_prefix(message) else {
        return if looks_postfix_noise(message) { LogEntry::Ignored } else { LogEntry::Unknown };
    };
    if let Some(after) = rest.strip_prefix("to=<") {
        return match delivery(queue_id, after) {
            Some(r) => LogEntry::Results(vec![r]),
            None => LogEntry::Unknown,
        };
    }
    if let Some(after) = rest.strip_prefix("from=<") {
        let Some((sender, tail)) = after.split_once('>') else { return LogEntry::Unknown };
        if tail.starts_with(", status=expired") {
            return LogEntry::Expired { queue_id: queue_id.into(), sender: sender.into() };
        }
        return LogEntry::Sender { queue_id: queue_id.into(), sender: sender.into(), message_id: None };
    }
    if let Some(after) = rest.strip_prefix("message-id=") {
        let id = after.trim().trim_start_matches('<').trim_end_matches('>');
        return LogEntry::MessageId { queue_id: queue_id.into(), message_id: id.into() };
    }
    if rest == "removed" {
        return LogEntry::Removed { queue_id: queue_id.into() };
    }
    LogEntry::Ignored
}

/// Lines Postfix writes that carry no delivery result (connects, warnings, statistics).
fn looks_postfix_noise(message: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "connect from", "disconnect from", "lost connection", "warning:", "fatal:", "panic:", "error:",
        "NOQUEUE:", "statistics:", "daemon started", "starting the Postfix", "the Postfix mail system",
        "stopping the Postfix", "reload", "terminating", "Anonymous TLS", "Trusted TLS", "Untrusted TLS",
        "Verified TLS", "SSL_accept", "timeout after", "improper command pipelining", "too many errors",
        "refreshing the Postfix", "warning", "table ", "mail system",
    ];
    PREFIXES.iter().any(|p| message.starts_with(p))
}

/// The fields after `to=<`: `addr>, [orig_to=<addr>, ]relay=..., ..., dsn=X.Y.Z,
/// status=word (text)`.
fn delivery(queue_id: &str, after: &str) -> Option<DeliveryResult> {
    // The address ends at the first `>` followed by `,` (a quoted local part may hold `>`).
    let end = after.find(">,").or_else(|| after.strip_suffix('>').map(|s| s.len()))?;
    let recipient = after.get(..end)?;
    let fields = after.get(end + 1..)?.trim_start_matches(',').trim_start();
    let (head, status_part) = match fields.find("status=") {
        Some(i) => (fields.get(..i)?, fields.get(i + "status=".len()..)?),
        None => return None,
    };
    let (word, text) = match status_part.split_once(' ') {
        Some((w, t)) => (w.trim_end_matches(','), t),
        None => (status_part.trim_end_matches(','), ""),
    };
    let status = match word {
        "sent" => DeliveryStatus::Sent,
        "deferred" => DeliveryStatus::Deferred,
        "bounced" => DeliveryStatus::Bounced,
        "expired" => DeliveryStatus::Expired,
        _ => return None,
    };
    let mut r = DeliveryResult {
        mta: Mta::Postfix,
        queue_id: queue_id.into(),
        recipient: recipient.into(),
        status,
        text: outer_parens(text).into(),
        ..Default::default()
    };
    for field in head.split(", ") {
        let Some((k, v)) = field.split_once('=') else { continue };
        let v = v.trim_end_matches(',');
        match k {
            "orig_to" => r.original_recipient = v.trim_start_matches('<').trim_end_matches('>').into(),
            "relay" => r.relay = v.into(),
            "dsn" => r.dsn = v.into(),
            _ => {}
        }
    }
    fill_from_text(&mut r);
    Some(r)
}

/// The text inside the outermost parentheses (`(host X said: 550 ... (in reply to ...))`).
fn outer_parens(text: &str) -> &str {
    let t = text.trim();
    t.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(t)
}

/// Reply code, remote host and SMTP command from `host H[ip] said: 550 ... (in reply to
/// RCPT TO command)`; the remote's own words become `diagnostic`.
pub(super) fn fill_from_text(r: &mut DeliveryResult) {
    let mut said = r.text.as_str();
    if let Some(rest) = said.strip_prefix("host ") {
        if let Some((host, words)) = rest.split_once(" said: ") {
            r.remote_host = host.split_once('[').map_or(host, |(h, _)| h).into();
            said = words;
        }
    }
    let mut diagnostic = said;
    if let Some(i) = said.rfind(" (in reply to ") {
        let cmd = said.get(i + " (in reply to ".len()..).unwrap_or("");
        r.smtp_command = smtp_command(cmd).into();
        diagnostic = said.get(..i).unwrap_or(said);
    }
    r.diagnostic = diagnostic.trim().into();
    r.reply_code = reply_code(&r.diagnostic);
}

/// `RCPT TO command)` → `RCPT`; `end of DATA command)` → `DATA`.
fn smtp_command(cmd: &str) -> &'static str {
    let c = cmd.to_ascii_uppercase();
    ["MAIL", "RCPT", "DATA", "EHLO", "HELO", "STARTTLS", "AUTH", "LHLO"]
        .into_iter()
        .find(|k| c.contains(k))
        .unwrap_or("")
}

/// A leading three-digit SMTP reply code (2xx-5xx).
pub(super) fn reply_code(text: &str) -> Option<u16> {
    let head = text.get(..3)?;
    let code: u16 = head.parse().ok()?;
    let next = text.as_bytes().get(3).copied();
    ((200..600).contains(&code) && matches!(next, None | Some(b' ') | Some(b'-'))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounced_at_rcpt() {
        let m = "1593898E0AC: to=<user1@remote.example.test>, relay=127.0.0.1[127.0.0.1]:3525, delay=0.16, \
                 delays=0.09/0.02/0.01/0.05, dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 \
                 Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))";
        let LogEntry::Results(v) = parse(m) else { panic!("{m}") };
        let r = &v[0];
        assert_eq!(r.queue_id, "1593898E0AC");
        assert_eq!(r.recipient, "user1@remote.example.test");
        assert_eq!(r.status, DeliveryStatus::Bounced);
        assert_eq!(r.dsn, "5.1.1");
        assert_eq!(r.relay, "127.0.0.1[127.0.0.1]:3525");
        assert_eq!(r.reply_code, Some(550));
        assert_eq!(r.smtp_command, "RCPT");
        assert_eq!(r.remote_host, "127.0.0.1");
        assert_eq!(r.diagnostic, "550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table");
    }

    #[test]
    fn orig_to_local_and_sent() {
        let m = "ABCDEF123: to=<root@mta.example.test>, orig_to=<postmaster@mta.example.test>, relay=local, \
                 delay=0.07, delays=0.07/0/0/0.01, dsn=2.0.0, status=sent (delivered to mailbox)";
        let LogEntry::Results(v) = parse(m) else { panic!() };
        let r = &v[0];
        assert_eq!(r.original_recipient, "postmaster@mta.example.test");
        assert_eq!(r.status, DeliveryStatus::Sent);
        assert_eq!(r.text, "delivered to mailbox");
        assert_eq!(r.reply_code, None);
    }

    #[test]
    fn qmgr_lines() {
        assert!(matches!(parse("3944098E0AF: from=<b+s2@x.test>, size=264, nrcpt=1 (queue active)"),
            LogEntry::Sender { ref sender, .. } if sender == "b+s2@x.test"));
        assert!(matches!(parse("3944098E0AF: from=<b+s2@x.test>, status=expired, returned to sender"),
            LogEntry::Expired { .. }));
        assert!(matches!(parse("3944098E0AF: removed"), LogEntry::Removed { .. }));
        assert!(matches!(parse("3944098E0AF: message-id=<m2@app>"),
            LogEntry::MessageId { ref message_id, .. } if message_id == "m2@app"));
        assert_eq!(parse("connect from localhost[127.0.0.1]"), LogEntry::Ignored);
        assert_eq!(parse("something else entirely"), LogEntry::Unknown);
        assert_eq!(parse("ABCDEF123: to=<broken"), LogEntry::Unknown);
    }
}
