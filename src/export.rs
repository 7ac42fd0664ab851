//! Suppression lists: the addresses not to mail, as plain text, CSV, JSON or a Postfix
//! access(5) table, sorted by address so the same store gives the same bytes; and the
//! atomic file write (temp file in the same directory, fsync, rename, fsync of the
//! directory) that lets a cron job or `postmap` never see half a list.

use crate::store::query::{for_each_export_row, ExportRow};
use crate::store::StoreError;
use rusqlite::Connection;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Output formats of a suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One address per line.
    Txt,
    /// address,state,reason,class,since,suppressed_until with a header line.
    Csv,
    /// A JSON array, one object per line.
    Json,
    /// Postfix access(5) table: `address REJECT 5.x.x text`, ready for `postmap`.
    Postfix,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Output format.
    pub format: ExportFormat,
    /// States to include (suppressed, complained, unsubscribed, soft_bouncing, active).
    pub states: Vec<String>,
    /// Only addresses that entered their state at or after this time (Unix seconds).
    pub since: i64,
    /// Suppressions that lifted before this time are left out (Unix seconds).
    pub now: i64,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Addresses written.
    pub written: u64,
    /// Addresses left out because the format cannot hold them (a Postfix key with
    /// white space, say).
    pub skipped: u64,
}

/// Errors of an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Writing the list failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> Self {
        ExportError::Store(e.into())
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_owned(), source }
}

/// Writes the suppression list to `w` (`path` names it in errors).
pub fn write_suppressions(
    conn: &Connection,
    opts: &ExportOptions,
    w: &mut dyn Write,
    path: &Path,
) -> Result<ExportSummary, ExportError> {
    let states: Vec<&str> = opts.states.iter().map(String::as_str).collect();
    let e = io_err(path);
    let mut summary = ExportSummary::default();
    match opts.format {
        ExportFormat::Csv => w.write_all(b"address,state,reason,class,since,suppressed_until\n").map_err(&e)?,
        ExportFormat::Json => w.write_all(b"[").map_err(&e)?,
        ExportFormat::Postfix => w
            .write_all(b"# rebound suppression list (postfix access(5) table); run postmap on it\n")
            .map_err(&e)?,
        ExportFormat::Txt => {}
    }
    let mut line = String::with_capacity(256);
    for_each_export_row(conn, &states, opts.since, opts.now, |row: ExportRow<'_>| {
        line.clear();
        let ok = format_row(opts.format, &row, summary.written == 0, &mut line);
        if ok {
            summary.written += 1;
            w.write_all(line.as_bytes()).map_err(&e)?;
        } else {
            summary.skipped += 1;
            tracing::warn!(domain = crate::store::event::domain_of(row.address), "address left out: not a valid key in this format");
        }
        Ok::<(), ExportError>(())
    })?;
    if opts.format == ExportFormat::Json {
        w.write_all(if summary.written == 0 { b"]\n" } else { b"\n]\n" }).map_err(&e)?;
    }
    Ok(summary)
}

/// Appends one row in `format` to `out`; false when the format cannot hold the address.
fn format_row(format: ExportFormat, row: &ExportRow<'_>, first: bool, out: &mut String) -> bool {
    use std::fmt::Write as _;
    match format {
        ExportFormat::Txt => {
            if row.address.contains(['\n', '\r']) {
                return false;
            }
            out.push_str(row.address);
        }
        ExportFormat::Csv => {
            for (i, field) in [row.address, row.state, row.reason, row.class].iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_field(field, out);
            }
            let _ = write!(out, ",{},{}", rfc3339(row.since), row.suppressed_until.map(rfc3339).unwrap_or_default());
        }
        ExportFormat::Json => {
            out.push_str(if first { "\n" } else { ",\n" });
            let obj = JsonRow {
                address: row.address,
                state: row.state,
                reason: row.reason,
                class: row.class,
                since: rfc3339(row.since),
                suppressed_until: row.suppressed_until.map(rfc3339),
            };
            out.push_str(&serde_json::to_string(&obj).unwrap_or_default());
            // The array's separators carry the line ends.
            return true;
        }
        ExportFormat::Postfix => {
            if !postfix_key_ok(row.address) {
                return false;
            }
            let _ = write!(out, "{} REJECT {} {}", row.address, postfix_status(row.class), postfix_text(row));
        }
    }
    out.push('\n');
    true
}

/// One address in the JSON format, fields in a fixed order.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    address: &'a str,
    state: &'a str,
    reason: &'a str,
    class: &'a str,
    since: String,
    suppressed_until: Option<String>,
}

/// RFC 4180 quoting when the field needs it.
fn csv_field(field: &str, out: &mut String) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// A Postfix lookup-table key cannot hold white space or control characters, and a
/// line starting with '#' is a comment.
fn postfix_key_ok(address: &str) -> bool {
    !address.is_empty() && !address.starts_with('#') && !address.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The enhanced status code the MTA answers with: what the remote said about the
/// address where that is specific, else "delivery not authorized".
fn postfix_status(class: &str) -> &'static str {
    match class {
        "invalid_recipient" => "5.1.1",
        "invalid_domain" => "5.1.2",
        "inactive_mailbox" => "5.2.1",
        "mailbox_full" => "5.2.2",
        _ => "5.7.1",
    }
}

fn postfix_text(row: &ExportRow<'_>) -> String {
    let safe = |s: &str| -> String { s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect() };
    match row.state {
        "complained" => "Recipient complained; suppressed by rebound".to_string(),
        "unsubscribed" => "Recipient unsubscribed; suppressed by rebound".to_string(),
        state if row.reason.is_empty() => format!("Recipient {} by rebound", safe(state)),
        state => format!("Recipient {} by rebound ({})", safe(state), safe(row.reason)),
    }
}

/// Unix seconds as RFC 3339 UTC ("2026-11-29T17:00:00Z").
pub fn rfc3339(t: i64) -> String {
    // Civil date from days since 1970 (H. Hinnant's algorithm): a million rows of
    // chrono's strftime cost more than the query.
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Writes a file atomically: `write` fills a temp file in the same directory, which is
/// flushed, fsynced and renamed over `path`, then the directory is fsynced. On any
/// failure the temp file is removed and `path` is left as it was.
pub fn write_atomic<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let e = io_err(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| e(std::io::Error::other("not a file name")))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = dir.join(format!(".{}.{}-{nanos}.tmp", name.to_string_lossy(), std::process::id()));
    let file = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(io_err(&tmp))?;
    let result = fill_and_sync(file, &tmp, path, write);
    let result = result.and_then(|v| {
        std::fs::rename(&tmp, path).map_err(&e)?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err(&dir))?;
        Ok(v)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn fill_and_sync<T>(
    file: File,
    tmp: &Path,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    // Keep the permissions of the list being replaced (postfix maps are often 0644
    // root-owned; a private list may be 0600).
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = file.set_permissions(meta.permissions());
    }
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let v = write(&mut w)?;
    let file = w.into_inner().map_err(|e| io_err(tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(tmp))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(address: &'a str, state: &'a str, reason: &'a str, class: &'a str) -> ExportRow<'a> {
        ExportRow { address, state, reason, class, since: 1_796_000_000, suppressed_until: None }
    }

    #[test]
    fn postfix_lines() {
        let mut s = String::new();
        assert!(format_row(ExportFormat::Postfix, &row("a@b.org", "suppressed", "userunknown", "invalid_recipient"), true, &mut s));
        assert_eq!(s, "a@b.org REJECT 5.1.1 Recipient suppressed by rebound (userunknown)\n");
        s.clear();
        assert!(!format_row(ExportFormat::Postfix, &row("\"a b\"@b.org", "suppressed", "", ""), true, &mut s));
        assert!(!format_row(ExportFormat::Postfix, &row("#x@b.org", "complained", "", ""), true, &mut s));
    }

    #[test]
    fn rfc3339_matches_chrono() {
        for t in [0i64, 59, 86_399, 951_782_400, 1_796_000_000, 4_102_444_800, -1, -86_401] {
            let want = chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            assert_eq!(rfc3339(t), want, "{t}");
        }
    }

    #[test]
    fn csv_quotes() {
        let mut s = String::new();
        assert!(format_row(ExportFormat::Csv, &row("\"a,b\"@c.org", "suppressed", "userunknown", "x"), true, &mut s));
        assert!(s.starts_with("\"\"\"a,b\"\"@c.org\",suppressed,userunknown,x,"), "{s}");
    }

    #[test]
    fn atomic_write_failure_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        std::fs::write(&path, "old\n").unwrap();
        let r: Result<(), _> = write_atomic(&path, |w| {
            w.write_all(b"half of a new li").unwrap();
            Err(ExportError::Io { path: path.clone(), source: std::io::Error::other("injected") })
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temp file left behind");
        write_atomic(&path, |w| w.write_all(b"new\n").map_err(io_err(&path))).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }
}
