//! The syslog frame around a mail log line: time, host, `program[pid]`. Understands the
//! traditional BSD form (`Nov 29 17:36:40 host prog[pid]: msg`), the ISO 8601 form of
//! rsyslog/journald (`2026-11-29T17:36:40.123+00:00 host prog[pid]: msg`), and bare
//! messages (`journalctl -o cat`). Pure; never panics.

use chrono::{Datelike, NaiveDateTime, TimeZone};

/// One log line split into its syslog frame and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// When the line was written (Unix seconds), if the frame says.
    pub time: Option<i64>,
    /// The host that wrote it ("" if no frame).
    pub host: &'a str,
    /// The program, e.g. `postfix/smtp` or `sendmail` ("" if no frame).
    pub program: &'a str,
    /// The message after `prog[pid]: `.
    pub message: &'a str,
}

/// Splits a log line into frame and message; a line without a recognisable frame is all
/// message. `now` (Unix seconds) supplies the year the BSD form leaves out.
pub fn split(line: &str, now: i64) -> SyslogLine<'_> {
    let line = line.trim_end_matches(['\r', '\n']);
    let bare = SyslogLine { time: None, host: "", program: "", message: line };
    let (time, rest) = if let Some((t, rest)) = bsd_time(line, now) {
        (Some(t), rest)
    } else if let Some((t, rest)) = iso_time(line) {
        (t, rest)
    } else {
        return bare;
    };
    let Some((host, rest)) = rest.split_once(' ') else { return bare };
    let Some((tag, message)) = rest.split_once(": ") else { return bare };
    if tag.is_empty() || tag.contains(' ') {
        return bare;
    }
    let program = tag.split_once('[').map_or(tag, |(p, _)| p);
    SyslogLine { time, host, program, message }
}

/// `Nov 29 17:36:40 ` (day padded with a space or not); the year is the one that puts
/// the time at most two days after `now`.
fn bsd_time(line: &str, now: i64) -> Option<(i64, &str)> {
    let mut parts = line.splitn(4, ' ');
    let month = parts.next()?;
    let mut day = parts.next()?;
    let mut rest_start = month.len() + 1 + day.len() + 1;
    if day.is_empty() {
        day = parts.next()?;
        rest_start += day.len() + 1;
    }
    let clock = line.get(rest_start..)?.get(..8)?;
    let rest = line.get(rest_start + 9..)?;
    if month.len() != 3 || !month.bytes().all(|b| b.is_ascii_alphabetic()) || day.len() > 2 {
        return None;
    }
    let now_dt = chrono::DateTime::from_timestamp(now, 0)?;
    let local_now = now_dt.with_timezone(&chrono::Local);
    for year in [local_now.year(), local_now.year() - 1] {
        let text = format!("{year} {month} {day} {clock}");
        let naive = NaiveDateTime::parse_from_str(&text, "%Y %b %d %H:%M:%S").ok()?;
        let t = chrono::Local.from_local_datetime(&naive).earliest()?.timestamp();
        if t <= now + 2 * 86_400 {
            return Some((t, rest));
        }
    }
    None
}

/// `2026-11-29T17:36:40[.frac](Z|+hh:mm) `; a time without zone is taken as local.
fn iso_time(line: &str) -> Option<(Option<i64>, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    if stamp.len() < 19 || stamp.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(stamp) {
        return Some((Some(t.timestamp()), rest));
    }
    let naive = NaiveDateTime::parse_from_str(stamp.get(..19)?, "%Y-%m-%dT%H:%M:%S").ok()?;
    Some((chrono::Local.from_local_datetime(&naive).earliest().map(|t| t.timestamp()), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_974_000; // 2026-11-29 ~17:40 UTC

    #[test]
    fn bsd_frame() {
        let l = split("Nov 29 17:36:40 mta postfix/qmgr[11995]: 1593898E0AC: removed", NOW);
        assert_eq!(l.host, "mta");
        assert_eq!(l.program, "postfix/qmgr");
        assert_eq!(l.message, "1593898E0AC: removed");
        assert!(l.time.is_some_and(|t| (NOW - t).abs() < 2 * 86_400));
    }

    #[test]
    fn bsd_frame_padded_day_and_year_rollover() {
        let l = split("Dec  3 01:02:03 h sendmail[1]: x", NOW);
        assert_eq!(l.program, "sendmail");
        // December 3 is after "now" (Nov 29) by more than two days: last year's.
        assert!(l.time.is_some_and(|t| t < NOW));
    }

    #[test]
    fn iso_frame() {
        let l = split("2026-11-29T17:36:40.123456+00:00 mta postfix/smtp[1]: ABC: to=<a@b>", NOW);
        assert_eq!(l.time, Some(1_795_973_800));
        assert_eq!(l.program, "postfix/smtp");
        assert_eq!(l.message, "ABC: to=<a@b>");
    }

    #[test]
    fn bare_message() {
        let l = split("1593898E0AC: removed", NOW);
        assert_eq!((l.time, l.program, l.message), (None, "", "1593898E0AC: removed"));
        for odd in ["", " ", "Nov", "Nov 29", "Nov 29 17:36:4", "2026-11-29T", "é 29 17:36:40 x y: z"] {
            let _ = split(odd, NOW);
        }
    }
}
