//! Mail logs: Postfix and Sendmail line parsers (`postfix.rs`, `sendmail.rs`, pure), the
//! syslog frame (`syslog.rs`), the bounded queue-id join (`join.rs`) and the follower
//! that tails a log through rotation and records results in the store (`follow.rs`).

pub mod follow;
pub mod join;
mod logfile;
pub mod postfix;
pub mod sendmail;
pub mod syslog;

pub use follow::{spawn_followers, FollowStats, Follower, FollowerHandle};
pub use join::{Join, JoinedResult};

use serde::Deserialize;
use std::path::PathBuf;

/// The `[follow]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowConfig {
    /// Logs followed inside `serve` (none by default).
    pub logs: Vec<LogSource>,
    /// How often a log at its end is checked for growth and rotation, in milliseconds.
    pub poll_interval_ms: u64,
    /// Queue ids whose sender is remembered at most (least recently seen are dropped).
    pub max_pending: usize,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig { logs: Vec::new(), poll_interval_ms: 500, max_pending: 100_000 }
    }
}

/// One followed log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSource {
    /// Path of the log file.
    pub path: PathBuf,
    /// postfix, sendmail or auto (decided per line by the program name).
    #[serde(default)]
    pub format: LogFormat,
}

/// Which MTA wrote a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Decide per line from the program name (postfix/..., sendmail, sm-mta).
    #[default]
    Auto,
    /// Postfix.
    Postfix,
    /// Sendmail.
    Sendmail,
}

/// Errors of the follower.
#[derive(Debug, thiserror::Error)]
pub enum MaillogError {
    /// Reading the log failed.
    #[error("log {path}: {source}")]
    Io {
        /// The followed log's path as configured.
        path: PathBuf,
        /// Why opening or reading it failed.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("log {path}: {source}")]
    Store {
        /// The followed log's path as configured.
        path: PathBuf,
        /// The store's error (recording results or the log's position).
        source: crate::store::StoreError,
    },
}

/// The MTA a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
pub enum Mta {
    /// Postfix.
    #[default]
    Postfix,
    /// Sendmail.
    Sendmail,
}

/// What the MTA did with one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
pub enum DeliveryStatus {
    /// Accepted by the next hop.
    #[default]
    Sent,
    /// Temporary failure; it will be retried.
    Deferred,
    /// Permanent failure; a DSN goes to the sender.
    Bounced,
    /// Retried until the queue lifetime ran out; returned to sender.
    Expired,
}

impl DeliveryStatus {
    /// The Postfix word (sent, deferred, bounced, expired).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Bounced => "bounced",
            DeliveryStatus::Expired => "expired",
        }
    }
}

/// One recipient's delivery result, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
pub struct DeliveryResult {
    /// Which MTA logged it.
    pub mta: Mta,
    /// The MTA's queue id.
    pub queue_id: String,
    /// `to=`.
    pub recipient: String,
    /// `orig_to=` (Postfix), or "".
    pub original_recipient: String,
    /// `relay=` as written.
    pub relay: String,
    /// The remote host named in `host X said:` (or the relay host), or "".
    pub remote_host: String,
    /// `dsn=` enhanced status code.
    pub dsn: String,
    /// sent, deferred, bounced or expired.
    pub status: DeliveryStatus,
    /// The text in parentheses (Postfix) or stat=/reply= (Sendmail).
    pub text: String,
    /// The remote server's words (`550 5.1.1 ...`) without host and command.
    pub diagnostic: String,
    /// SMTP reply code, when the text starts with one.
    pub reply_code: Option<u16>,
    /// SMTP command the reply answered (RCPT, DATA ...), or "".
    pub smtp_command: String,
    /// When it was logged (Unix seconds), if the line says.
    pub time: Option<i64>,
    /// The host that wrote the log line.
    pub reporting_host: String,
}

/// What one log line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// The envelope sender of a queued message (Postfix qmgr, Sendmail from=).
    Sender {
        /// The MTA's queue id of the message.
        queue_id: String,
        /// The envelope sender without angle brackets ("" for the null sender).
        sender: String,
        /// Sendmail's `msgid=` without angle brackets; None when the line has none (Postfix).
        message_id: Option<String>,
    },
    /// The Message-ID of a queued message (Postfix cleanup).
    MessageId {
        /// The MTA's queue id of the message.
        queue_id: String,
        /// The `message-id=` value without angle brackets.
        message_id: String,
    },
    /// Delivery results (one per recipient).
    Results(Vec<DeliveryResult>),
    /// The message expired in the queue and was returned to its sender.
    Expired {
        /// The MTA's queue id of the message.
        queue_id: String,
        /// The envelope sender without angle brackets ("" for the null sender).
        sender: String,
    },
    /// The message left the queue.
    Removed {
        /// The MTA's queue id of the message.
        queue_id: String,
    },
    /// A line of the MTA (or another program) that carries no delivery result.
    Ignored,
    /// A line that could not be understood.
    Unknown,
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    /// When it was written, if the syslog frame says.
    pub time: Option<i64>,
    /// The host that wrote it.
    pub host: String,
    /// What it says.
    pub entry: LogEntry,
}

/// Parses one log line of the given format; `now` supplies the year syslog omits.
pub fn parse_line(line: &str, format: LogFormat, now: i64) -> ParsedLine {
    let frame = syslog::split(line, now);
    let mta = match (format, frame.program) {
        (_, "") => bare_format(format, frame.message),
        (_, p) if p.starts_with("postfix") => Some(Mta::Postfix),
        (_, "sendmail" | "sm-mta" | "sm-msp-queue") => Some(Mta::Sendmail),
        _ => None,
    };
    let mut entry = match mta {
        // A framed Postfix line without a queue id (master, postfix-script, postlogd
        // notices) carries no result: not counted as unknown.
        Some(Mta::Postfix) if !frame.program.is_empty() && queue_id_prefix(frame.message).is_none() => LogEntry::Ignored,
        Some(Mta::Postfix) => postfix::parse(frame.message),
        Some(Mta::Sendmail) => sendmail::parse(frame.message),
        None => LogEntry::Ignored,
    };
    if let LogEntry::Results(rs) = &mut entry {
        for r in rs {
            r.time = frame.time;
            r.reporting_host = frame.host.to_string();
        }
    }
    ParsedLine { time: frame.time, host: frame.host.to_string(), entry }
}

/// The MTA of a line without a syslog frame (`journalctl -o cat`).
fn bare_format(format: LogFormat, message: &str) -> Option<Mta> {
    match format {
        LogFormat::Postfix => Some(Mta::Postfix),
        LogFormat::Sendmail => Some(Mta::Sendmail),
        LogFormat::Auto if message.contains(", stat=") || message.contains(", nrcpts=") => Some(Mta::Sendmail),
        LogFormat::Auto => Some(Mta::Postfix),
    }
}

/// Splits `QUEUEID: rest` where the queue id is 5-20 letters and digits.
pub(crate) fn queue_id_prefix(message: &str) -> Option<(&str, &str)> {
    let (id, rest) = message.split_once(": ")?;
    let ok = (5..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some((id, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_harness_line_is_understood() {
        let log = include_str!("../../tests/data/maillog-postfix-harness.txt");
        let now = 1_795_974_000;
        let (mut results, mut unknown) = (0, 0);
        for line in log.lines() {
            match parse_line(line, LogFormat::Auto, now).entry {
                LogEntry::Results(v) => results += v.len(),
                LogEntry::Unknown => unknown += 1,
                _ => {}
            }
        }
        assert_eq!(unknown, 0);
        assert!(results >= 10, "{results}");
    }

    #[test]
    fn other_programs_are_ignored_and_bare_lines_parsed() {
        assert_eq!(parse_line("Nov 29 17:36:40 mta CRON[1]: (root) CMD (x)", LogFormat::Auto, 0).entry, LogEntry::Ignored);
        let bare = parse_line("3944098E0AF: removed", LogFormat::Auto, 0);
        assert_eq!(bare.entry, LogEntry::Removed { queue_id: "3944098E0AF".into() });
    }
}
