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
    #[error("{path}: {error}")]
    Io {
        /// The file or directory being written: the output, its temporary file or its directory.
        path: PathBuf,
        /// Why the write (or create, rename or sync) failed.
        error: std::io::Error,
    },
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> Self {
        ExportError::Store(e.into())
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |error| ExportError::Io { path: path.to_owned(), error }
}

/// Bytes gathered before each write to the output: rows are formatted into one buffer
/// (no allocation per row) and handed to the writer in large pieces.
const OUT_CHUNK: usize = 256 * 1024;

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
    let mut out: Vec<u8> = Vec::with_capacity(OUT_CHUNK + 4096);
    match opts.format {
        ExportFormat::Csv => out.extend_from_slice(b"address,state,reason,class,since,suppressed_until\n"),
        ExportFormat::Json => out.push(b'['),
        ExportFormat::Postfix => {
            out.extend_from_slice(b"# rebound suppression list (postfix access(5) table); run postmap on it\n")
        }
        ExportFormat::Txt => {}
    }
    for_each_export_row(conn, &states, opts.since, opts.now, |row: ExportRow<'_>| {
        if format_row(opts.format, &row, summary.written == 0, &mut out) {
            summary.written += 1;
        } else {
            summary.skipped += 1;
            tracing::warn!(domain = crate::store::event::domain_of(row.address), "address left out: not a valid key in this format");
        }
        if out.len() >= OUT_CHUNK {
            w.write_all(&out).map_err(&e)?;
            out.clear();
        }
        Ok::<(), ExportError>(())
    })?;
    if opts.format == ExportFormat::Json {
        out.extend_from_slice(if summary.written == 0 { b"]\n" } else { b"\n]\n" });
    }
    w.write_all(&out).map_err(&e)?;
    Ok(summary)
}

/// Appends one row in `format` to `out`; false (and nothing appended) when the format
/// cannot hold the address.
fn format_row(format: ExportFormat, row: &ExportRow<'_>, first: bool, out: &mut Vec<u8>) -> bool {
    match format {
        ExportFormat::Txt => {
            if row.address.contains(['\n', '\r']) {
                return false;
            }
            out.extend_from_slice(row.address.as_bytes());
        }
        ExportFormat::Csv => {
            for (i, field) in [row.address, row.state, row.reason, row.class].iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                csv_field(field, out);
            }
            out.push(b',');
            push_rfc3339(row.since, out);
            out.push(b',');
            if let Some(t) = row.suppressed_until {
                push_rfc3339(t, out);
            }
        }
        ExportFormat::Json => {
            // The object serde_json would write for {address, state, reason, class,
            // since, suppressed_until}, fields in that order (a test compares the two).
            out.extend_from_slice(if first { b"\n" } else { b",\n" });
            out.extend_from_slice(b"{\"address\":");
            json_str(row.address, out);
            out.extend_from_slice(b",\"state\":");
            json_str(row.state, out);
            out.extend_from_slice(b",\"reason\":");
            json_str(row.reason, out);
            out.extend_from_slice(b",\"class\":");
            json_str(row.class, out);
            out.extend_from_slice(b",\"since\":\"");
            push_rfc3339(row.since, out);
            out.extend_from_slice(b"\",\"suppressed_until\":");
            match row.suppressed_until {
                Some(t) => {
                    out.push(b'"');
                    push_rfc3339(t, out);
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
            // The array's separators carry the line ends.
            return true;
        }
        ExportFormat::Postfix => {
            if !postfix_key_ok(row.address) {
                return false;
            }
            out.extend_from_slice(row.address.as_bytes());
            out.extend_from_slice(b" REJECT ");
            out.extend_from_slice(postfix_status(row.class).as_bytes());
            out.push(b' ');
            postfix_text(row, out);
        }
    }
    out.push(b'\n');
    true
}

/// A JSON string as serde_json writes it: quote and backslash escaped, the short escapes for
/// backspace, form feed, line feed, carriage return and tab, `\u00XX` (lower-case hex)
/// for the other control characters below 0x20; everything else (DEL, non-ASCII, U+2028)
/// as is.
fn json_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        start = i + 1;
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// RFC 4180 quoting when the field needs it.
fn csv_field(field: &str, out: &mut Vec<u8>) {
    if !field.contains([',', '"', '\n', '\r']) {
        out.extend_from_slice(field.as_bytes());
        return;
    }
    out.push(b'"');
    for &b in field.as_bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// A Postfix lookup-table key cannot hold white space or control characters, and a
/// line starting with '#' is a comment.
fn postfix_key_ok(address: &str) -> bool {
    if address.is_empty() || address.starts_with('#') {
        return false;
    }
    if address.is_ascii() {
        // The ASCII white space and control characters: what the general test below
        // finds in ASCII text, without decoding characters.
        return !address.bytes().any(|b| b <= b' ' || b == 0x7f);
    }
    !address.chars().any(|c| c.is_whitespace() || c.is_control())
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

/// The reply text: printable ASCII only, so the table line stays one valid line.
fn postfix_text(row: &ExportRow<'_>, out: &mut Vec<u8>) {
    let safe = |s: &str, out: &mut Vec<u8>| out.extend(s.bytes().filter(|b| b.is_ascii_graphic() || *b == b' '));
    match row.state {
        "complained" => out.extend_from_slice(b"Recipient complained; suppressed by rebound"),
        "unsubscribed" => out.extend_from_slice(b"Recipient unsubscribed; suppressed by rebound"),
        state => {
            out.extend_from_slice(b"Recipient ");
            safe(state, out);
            out.extend_from_slice(b" by rebound");
            if !row.reason.is_empty() {
                out.extend_from_slice(b" (");
                safe(row.reason, out);
                out.push(b')');
            }
        }
    }
}

/// Unix seconds as RFC 3339 UTC ("2026-11-29T17:00:00Z").
pub fn rfc3339(t: i64) -> String {
    let mut out = Vec::with_capacity(20);
    push_rfc3339(t, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`rfc3339`] of `t` to `out` without allocating.
fn push_rfc3339(t: i64, out: &mut Vec<u8>) {
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
    if (0..=9999).contains(&year) {
        let digits = |n: i64, width: usize, out: &mut Vec<u8>| {
            let mut buf = [b'0'; 4];
            let mut n = n;
            for slot in buf.iter_mut().take(width).rev() {
                *slot = b'0' + (n % 10) as u8;
                n /= 10;
            }
            out.extend_from_slice(buf.get(..width).unwrap_or_default());
        };
        digits(year, 4, out);
        out.push(b'-');
        digits(month, 2, out);
        out.push(b'-');
        digits(day, 2, out);
        out.push(b'T');
        digits(secs / 3600, 2, out);
        out.push(b':');
        digits(secs % 3600 / 60, 2, out);
        out.push(b':');
        digits(secs % 60, 2, out);
        out.push(b'Z');
    } else {
        // Years outside 0..=9999 (a corrupt row): the general formatting.
        use std::io::Write as _;
        let _ = write!(out, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60);
    }
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

    fn formatted(format: ExportFormat, r: &ExportRow<'_>) -> Option<String> {
        let mut out = Vec::new();
        format_row(format, r, true, &mut out).then(|| String::from_utf8(out).unwrap())
    }

    /// Addresses and reasons a store may hold that need quoting or escaping somewhere.
    const AWKWARD: &[&str] = &[
        "a@b.org", "", "\"a,b\"@x.org", "\"quo\\\"te\"@x.org", "tab\there@x.org", "new\nline@x.org", "cr\rx@x.org",
        "ünï@x.org", "ctl\u{1}\u{8}\u{c}\u{1f}@x.org", "#hash@x.org", "back\\slash@x.org", "del\u{7f}@x.org",
        "sp ace@x.org", "é\"q,@x.org", "u2028\u{2028}@x.org", "nbsp\u{a0}@x.org", "c1\u{85}@x.org", "emoji😀@x.org",
        "\"\"", ",", "\\\"\\",
    ];

    #[test]
    fn json_rows_match_serde_json() {
        #[derive(serde::Serialize)]
        struct JsonRow<'a> {
            address: &'a str,
            state: &'a str,
            reason: &'a str,
            class: &'a str,
            since: String,
            suppressed_until: Option<String>,
        }
        for (i, a) in AWKWARD.iter().enumerate() {
            let other = AWKWARD[(i + 3) % AWKWARD.len()];
            let until = (i % 2 == 0).then_some(1_900_000_000 + i as i64);
            let r = ExportRow { address: a, state: "suppressed", reason: other, class: a, since: 1_796_000_000, suppressed_until: until };
            let want = serde_json::to_string(&JsonRow {
                address: a,
                state: "suppressed",
                reason: other,
                class: a,
                since: rfc3339(r.since),
                suppressed_until: until.map(rfc3339),
            })
            .unwrap();
            assert_eq!(formatted(ExportFormat::Json, &r).unwrap(), format!("\n{want}"), "{a:?}");
        }
    }

    #[test]
    fn csv_rows_match_rfc4180_quoting() {
        // The reference: quote a field holding a comma, quote or line break, doubling
        // its quotes.
        let quote = |f: &str| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        };
        for (i, a) in AWKWARD.iter().enumerate() {
            let other = AWKWARD[(i + 5) % AWKWARD.len()];
            let r = ExportRow { address: a, state: "complained", reason: other, class: "x", since: 1_796_000_000, suppressed_until: Some(1_800_000_000) };
            let want = format!("{},complained,{},x,{},{}\n", quote(a), quote(other), rfc3339(r.since), rfc3339(1_800_000_000));
            assert_eq!(formatted(ExportFormat::Csv, &r).unwrap(), want, "{a:?}");
        }
        let r = row("\"a,b\"@c.org", "suppressed", "userunknown", "x");
        assert!(formatted(ExportFormat::Csv, &r).unwrap().starts_with("\"\"\"a,b\"\"@c.org\",suppressed,userunknown,x,"));
    }

    #[test]
    fn postfix_lines() {
        let r = row("a@b.org", "suppressed", "userunknown", "invalid_recipient");
        assert_eq!(formatted(ExportFormat::Postfix, &r).unwrap(), "a@b.org REJECT 5.1.1 Recipient suppressed by rebound (userunknown)\n");
        let r = row("a@b.org", "soft_bouncing", "r\"e,a\\s\u{e9}\n", "mailbox_full");
        assert_eq!(formatted(ExportFormat::Postfix, &r).unwrap(), "a@b.org REJECT 5.2.2 Recipient soft_bouncing by rebound (r\"e,a\\s)\n");
        assert!(formatted(ExportFormat::Postfix, &row("\"a b\"@b.org", "suppressed", "", "")).is_none());
        assert!(formatted(ExportFormat::Postfix, &row("#x@b.org", "complained", "", "")).is_none());
        // The ASCII shortcut agrees with the character test.
        for a in AWKWARD {
            let general = !a.is_empty() && !a.starts_with('#') && !a.chars().any(|c| c.is_whitespace() || c.is_control());
            assert_eq!(postfix_key_ok(a), general, "{a:?}");
        }
        for b in 0u8..128 {
            let a = format!("x{}y@b.org", b as char);
            let general = !a.chars().any(|c| c.is_whitespace() || c.is_control());
            assert_eq!(postfix_key_ok(&a), general, "{b}");
        }
    }

    #[test]
    fn txt_leaves_out_line_breaks() {
        assert_eq!(formatted(ExportFormat::Txt, &row("a@b.org", "suppressed", "", "")).unwrap(), "a@b.org\n");
        assert!(formatted(ExportFormat::Txt, &row("new\nline@x.org", "suppressed", "", "")).is_none());
    }

    #[test]
    fn rfc3339_matches_chrono() {
        for t in [0i64, 59, 86_399, 951_782_400, 1_796_000_000, 4_102_444_800, 253_402_300_799, -1, -86_401, -62_167_219_200] {
            let want = chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            assert_eq!(rfc3339(t), want, "{t}");
        }
    }

    #[test]
    fn atomic_write_failure_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        std::fs::write(&path, "old\n").unwrap();
        let r: Result<(), _> = write_atomic(&path, |w| {
            w.write_all(b"half of a new li").unwrap();
            Err(ExportError::Io { path: path.clone(), error: std::io::Error::other("injected") })
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temp file left behind");
        write_atomic(&path, |w| w.write_all(b"new\n").map_err(io_err(&path))).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }
}
