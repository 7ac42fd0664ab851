//! The parts of a message a bounce parser looks at: top-level headers, the human
//! readable report text, delivery-status and feedback-report parts, and the returned
//! original (a message/rfc822 part, text/rfc822-headers, or an inline copy after the
//! report text). Work is bounded: text is capped, nesting and part counts are limited.

use super::mime::{self, ContentType, Headers, MAX_DEPTH, MAX_PARTS};

/// Most report text kept (bytes); non-standard formats are recognised within it.
const MAX_TEXT: usize = 128 * 1024;
/// Most bytes of the returned original kept.
const MAX_ORIGINAL: usize = 64 * 1024;
/// Most bytes of the original's body kept (a forwarded report is read from it).
const ORIGINAL_BODY: usize = 16 * 1024;

/// What a message holds, split by role.
#[derive(Debug, Default)]
pub struct Context {
    /// Top-level header fields.
    pub headers: Headers,
    /// The report text: decoded text parts outside the returned original, LF line ends.
    pub text: String,
    /// Contents of message/(global-)delivery-status parts.
    pub dsn: Vec<String>,
    /// Contents of the message/feedback-report part.
    pub feedback: Option<String>,
    /// The returned original (headers, and body when included), LF line ends.
    pub original: Option<String>,
    /// Whether the top-level type is multipart/report.
    pub is_report: bool,
    /// report-type parameter of multipart/report, lower case.
    pub report_type: String,
    /// Parts visited (bounded by MAX_PARTS).
    pub parts_seen: usize,
    /// Text/html parts (decoded bytes), read only when no plain text exists.
    html_parts: Vec<Vec<u8>>,
    /// Charset of the text part being added, when it declares one.
    charset: Option<String>,
    /// Whether the head of the report text says delivery is being retried / has expired
    /// (`mta::generic`): asked per recipient and per reader, computed once.
    pub(crate) head_delayed: std::cell::OnceCell<bool>,
    /// See `head_delayed`.
    pub(crate) head_expired: std::cell::OnceCell<bool>,
}

impl Context {
    /// Splits a raw message into its roles.
    pub fn build(raw: &[u8]) -> Context {
        let (head, body) = mime::split_header_body(raw);
        let headers = mime::parse_headers(head);
        let mut ctx = Context::default();
        let ct = ContentType::parse(headers.get("content-type"));
        if ct.mime == "multipart/report" {
            ctx.is_report = true;
            ctx.report_type = ct.param("report-type").unwrap_or("").to_ascii_lowercase();
        }
        ctx.entity(&ct, headers.get("content-transfer-encoding"), body, 0);
        ctx.headers = headers;
        if ctx.text.trim().is_empty() && !ctx.html_parts.is_empty() {
            let mut t = String::new();
            for h in std::mem::take(&mut ctx.html_parts) {
                t.push_str(&strip_tags(&to_text(&h, MAX_TEXT)));
                t.push('\n');
            }
            ctx.text = t;
            ctx.split_inline_original();
        }
        ctx
    }

    /// A context holding only report text (to read part of a report on its own).
    pub fn from_text(text: String) -> Context {
        Context { text, ..Default::default() }
    }

    // The nested ifs are deliberate: as match guards, a skipped rfc822 or html part
    // would fall through to the text arm and be read as report text.
    #[allow(clippy::collapsible_match)]
    fn entity(&mut self, ct: &ContentType, cte: Option<&str>, body: &[u8], depth: usize) {
        self.parts_seen += 1;
        if depth > MAX_DEPTH || self.parts_seen > MAX_PARTS {
            return;
        }
        let mime = &*ct.mime;
        if mime.starts_with("multipart/") {
            let Some(boundary) = ct.param("boundary").filter(|b| !b.is_empty()) else {
                self.add_text(body, cte);
                return;
            };
            let parts = mime::split_multipart(body, boundary);
            if parts.is_empty() {
                self.add_text(body, cte);
                return;
            }
            for part in parts {
                let (h, b) = mime::split_header_body(part);
                let ph = mime::parse_headers(h);
                let pct = if ph.get("content-type").is_none() && mime == "multipart/digest" {
                    ContentType::parse(Some("message/rfc822"))
                } else {
                    ContentType::parse(ph.get("content-type"))
                };
                self.entity(&pct, ph.get("content-transfer-encoding"), b, depth + 1);
            }
            return;
        }
        match mime {
            "message/delivery-status" | "message/global-delivery-status" => {
                let d = mime::decode_body(body, cte);
                self.dsn.push(to_text(&d, MAX_TEXT));
            }
            "message/feedback-report" => {
                let d = mime::decode_body(body, cte);
                self.feedback.get_or_insert_with(|| to_text(&d, MAX_TEXT));
            }
            "message/rfc822" | "message/global" | "text/rfc822-headers" | "message/rfc822-headers"
            | "message/partial" | "text/rfc822" => {
                if self.original.is_none() {
                    let body = body.get(..body.len().min(MAX_ORIGINAL * 2)).unwrap_or(body);
                    let d = mime::decode_body(body, cte);
                    // Its header block and the start of its body are all that is read.
                    let (h, b) = mime::split_header_body(&d);
                    let keep = (h.len() + b.len().min(ORIGINAL_BODY)).min(MAX_ORIGINAL);
                    self.original = Some(to_text(&d, keep));
                }
            }
            "text/html" => {
                if self.html_parts.len() < 4 && self.text.trim().is_empty() {
                    let body = body.get(..body.len().min(MAX_TEXT * 2)).unwrap_or(body);
                    self.html_parts.push(mime::decode_body(body, cte).into_owned());
                }
            }
            m if m.starts_with("text/") || m == "application/octet-stream" && depth == 0 => {
                self.charset = ct.param("charset").map(str::to_string);
                self.add_text(body, cte);
                self.charset = None;
            }
            _ => {}
        }
    }

    fn add_text(&mut self, body: &[u8], cte: Option<&str>) {
        if self.text.len() >= MAX_TEXT {
            return;
        }
        let room = MAX_TEXT - self.text.len();
        // Decode no more than can be kept (base64 shrinks, so twice the room is plenty).
        let body = body.get(..body.len().min(room.saturating_mul(2))).unwrap_or(body);
        let d = mime::decode_body(body, cte);
        // Text in a legacy charset (ISO-2022-JP, Latin-1 ...) is decoded to UTF-8 first.
        let cs = self.charset.as_deref().unwrap_or("").trim();
        let legacy = !cs.is_empty() && !["utf-8", "utf8", "us-ascii", "ascii"].iter().any(|u| cs.eq_ignore_ascii_case(u));
        // In a charset that keeps ASCII as it is, ASCII text needs no decoding (most text
        // declared Latin-1 or ISO-2022-JP is ASCII): the decoder, which allocates and maps
        // byte by byte, is skipped.
        let as_is = legacy && keeps_ascii(cs) && d.is_ascii() && memchr::memchr3(0x0e, 0x0f, 0x1b, &d).is_none();
        let decoded = if legacy && !as_is { mail_parser::decoders::charsets::map::charset_decoder(cs.to_ascii_lowercase().as_bytes()).map(|f| f(&d)) } else { None };
        let start = self.text.len();
        match &decoded {
            Some(u) => append_text(&mut self.text, u.as_bytes(), room),
            None => append_text(&mut self.text, &d, room),
        }
        self.text.push('\n');
        if self.original.is_none() {
            self.split_inline_original_from(start);
        }
    }

    fn split_inline_original(&mut self) {
        if self.original.is_none() {
            self.split_inline_original_from(0);
        }
    }

    /// Moves an inline copy of the original (a header block inside the text) out of
    /// the report text.
    fn split_inline_original_from(&mut self, start: usize) {
        let Some(at) = find_header_block(self.text.get(start..).unwrap_or("")) else { return };
        let at = start + at;
        let original = super::text::prefix(self.text.get(at..).unwrap_or(""), MAX_ORIGINAL).to_string();
        self.original = Some(original);
        self.text.truncate(at);
    }
}

/// Charsets (names as mail_parser's decoder map spells them after lower-casing, '-'
/// as '_') whose decoder gives every ASCII byte but SO, SI and ESC as itself.
const ASCII_KEEPING: &[&str] = &[
    "big5", "big5_hkscs", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
    "euc_jp", "euc_kr", "gb2312", "gbk", "iso_2022_jp", "iso_8859_1", "iso_8859_2", "iso_8859_3", "iso_8859_4",
    "iso_8859_5", "iso_8859_6", "iso_8859_7", "iso_8859_8", "iso_8859_9", "iso_8859_10", "iso_8859_13",
    "iso_8859_14", "iso_8859_15", "iso_8859_16", "koi8_r", "koi8_u", "shift_jis", "windows_1250", "windows_1251",
    "windows_1252", "windows_1253", "windows_1254", "windows_1255", "windows_1256", "windows_1257", "windows_1258",
];

/// Whether charset `cs` is one of [`ASCII_KEEPING`] (any case, '-' or '_').
fn keeps_ascii(cs: &str) -> bool {
    ASCII_KEEPING.iter().any(|k| {
        k.len() == cs.len() && k.bytes().zip(cs.bytes()).all(|(a, b)| a == b.to_ascii_lowercase() || a == b'_' && b == b'-')
    })
}

/// Appends what [`to_text`] gives for `bytes` to `out` (LF text: no copy in between).
fn append_text(out: &mut String, bytes: &[u8], max: usize) {
    let cut = bytes.get(..max.min(bytes.len())).unwrap_or(bytes);
    out.reserve(cut.len());
    // Line by line when there are CRs: each is cut at an ASCII byte, so converting the
    // pieces gives the text converting the whole would.
    let mut i = 0;
    while let Some(n) = memchr::memchr(b'\r', cut.get(i..).unwrap_or(&[])) {
        push_lossy(out, cut.get(i..i + n).unwrap_or(&[]));
        out.push('\n');
        i += n + 1;
        if cut.get(i) == Some(&b'\n') {
            i += 1;
        }
    }
    push_lossy(out, cut.get(i..).unwrap_or(&[]));
}

/// Appends `bytes` as UTF-8 (invalid sequences replaced).
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// Bytes → String with LF line ends, at most `max` bytes (cut at a char boundary).
pub fn to_text(bytes: &[u8], max: usize) -> String {
    let bytes = bytes.get(..max.min(bytes.len())).unwrap_or(bytes);
    if memchr::memchr(b'\r', bytes).is_none() {
        // `from_utf8` validates ASCII a word at a time; the lossy path byte by byte.
        return match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        };
    }
    let mut v = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(n) = memchr::memchr(b'\r', bytes.get(i..).unwrap_or(&[])) {
        v.extend_from_slice(bytes.get(i..i + n).unwrap_or(&[]));
        v.push(b'\n');
        i += n + 1;
        if bytes.get(i) == Some(&b'\n') {
            i += 1;
        }
    }
    v.extend_from_slice(bytes.get(i..).unwrap_or(&[]));
    match String::from_utf8(v) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Header names that start a copy of a returned message.
const ORIGINAL_HEADERS: &[&str] = &[
    "received", "return-path", "message-id", "dkim-signature", "mime-version", "date", "from",
    "to", "subject", "delivered-to", "authentication-results", "reply-to", "sender", "x-mailer",
    "content-type", "x-original-to", "domainkey-signature", "cc", "references", "in-reply-to",
    "user-agent", "content-transfer-encoding", "x-received", "arc-seal", "list-unsubscribe",
];
/// Of those, the ones that only a message (not a report summary) carries.
const STRONG_HEADERS: &[&str] =
    &["received", "return-path", "message-id", "dkim-signature", "mime-version", "delivered-to", "x-received", "domainkey-signature", "arc-seal", "authentication-results"];

fn header_name(line: &str) -> Option<&str> {
    // The name is the run of letters, digits and '-' at the start, and the first ':'
    // must end it.
    let b = line.as_bytes();
    // Most lines of prose or blank lines are ruled out by their first byte.
    if !b.first().is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    // The first ':' within 41 bytes, then the name before it (a long run of letters,
    // a line of base64, is passed over by one search).
    let len = memchr::memchr(b':', b.get(..41).unwrap_or(b))?;
    if len == 0 || !b.get(..len)?.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
        return None;
    }
    line.get(..len)
}

fn one_of(name: &str, set: &[&str]) -> bool {
    set.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// The line starting at byte `at` (without its newline) and where the next begins.
fn line_at(text: &str, at: usize) -> Option<(&str, usize)> {
    let rest = text.get(at..)?;
    if rest.is_empty() {
        return None;
    }
    let n = memchr::memchr(b'\n', rest.as_bytes()).unwrap_or(rest.len());
    Some((rest.get(..n)?, at + n + 1))
}

/// Finds the start of the first block of header lines that is a returned message:
/// at least three fields including one only a real message carries, or two fields
/// right after a line announcing the original. One pass, no allocation.
pub fn find_header_block(text: &str) -> Option<usize> {
    let mut at = 0;
    let mut prev_nonblank = "";
    while let Some((line, next)) = line_at(text, at) {
        let known = header_name(line).filter(|n| one_of(n, ORIGINAL_HEADERS) || n.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-")));
        if known.is_none() {
            // A line starting with a visible ASCII character is not blank (most are).
            // (An empty line, the common blank one, is passed without a call to trim.)
            if !line.is_empty() && (line.as_bytes().first().is_some_and(u8::is_ascii_graphic) || !line.trim().is_empty()) {
                prev_nonblank = line;
            }
            at = next;
            continue;
        }
        let (mut fields, mut strong, mut j) = (0, false, at);
        while let Some((l, after)) = line_at(text, j) {
            if l.starts_with(' ') || l.starts_with('\t') {
                if j == at {
                    break;
                }
            } else if let Some(n) = header_name(l) {
                fields += 1;
                strong |= one_of(n, STRONG_HEADERS);
            } else {
                break;
            }
            j = after;
        }
        if fields >= 3 && strong || fields >= 2 && is_marker(prev_nonblank) {
            return Some(at);
        }
        prev_nonblank = line;
        at = j.max(next);
    }
    None
}

/// Whether a line announces the original message.
fn is_marker(line: &str) -> bool {
    let l = line.trim();
    ["original message", "message follows", "copy of", "headers follow", "original mail", "unsent message"].iter().any(|m| super::text::contains_ci(l, m))
}

/// Removes HTML tags and decodes the few entities that matter for addresses.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    // Runs between tags are copied whole ('<' and '>' are ASCII: the cuts are char
    // boundaries). In a tag only its '>' matters; outside one, a '>' is text.
    let b = html.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let Some(open) = memchr::memchr(b'<', b.get(i..).unwrap_or(&[])) else {
            out.push_str(html.get(i..).unwrap_or(""));
            break;
        };
        out.push_str(html.get(i..i + open).unwrap_or(""));
        let Some(close) = memchr::memchr(b'>', b.get(i + open + 1..).unwrap_or(&[])) else { break };
        out.push(' ');
        i += open + 1 + close + 1;
    }
    // Every entity starts with '&': without one there is nothing to replace.
    if memchr::memchr(b'&', out.as_bytes()).is_none() {
        return out;
    }
    decode_entities(&out)
}

/// Decodes `&lt;`, `&gt;`, `&nbsp;`, `&amp;` and `&quot;` in one pass, giving what
/// replacing them one after the other in that order gives: an `&amp;` that makes a
/// `&quot;` is decoded twice, one that makes any of the others is not.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(rest.get(..at).unwrap_or(""));
        let tail = rest.get(at..).unwrap_or("");
        let (text, used) = if tail.starts_with("&lt;") {
            ("<", 4)
        } else if tail.starts_with("&gt;") {
            (">", 4)
        } else if tail.starts_with("&nbsp;") {
            (" ", 6)
        } else if tail.starts_with("&amp;quot;") {
            ("\"", 10)
        } else if tail.starts_with("&amp;") {
            ("&", 5)
        } else if tail.starts_with("&quot;") {
            ("\"", 6)
        } else {
            ("&", 1)
        };
        out.push_str(text);
        rest = tail.get(used..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_original_is_split() {
        let m = b"From: MAILER-DAEMON\nSubject: x\n\nfailed: <a@b.c>\n\n--- copy\nReturn-Path: <s@d.e>\nReceived: by x\nSubject: hi\n\nbody\n";
        let c = Context::build(m);
        assert!(c.text.contains("a@b.c"));
        assert!(!c.text.contains("Return-Path"));
        assert!(c.original.unwrap().starts_with("Return-Path"));
    }

    #[test]
    fn entities_decode_as_the_chained_replacements() {
        let chained = |s: &str| s.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", " ").replace("&amp;", "&").replace("&quot;", "\"");
        for s in ["a &lt;b@c.d&gt; x", "&amp;lt; &amp;quot; &amp;amp;quot; &amp;nbsp;", "&&lt;&;&quot&quot;", "&nbsp;&amp;gt;&", "tail &am"] {
            assert_eq!(decode_entities(s), chained(s), "{s:?}");
        }
    }

    #[test]
    fn ascii_keeping_charsets_decode_ascii_as_is() {
        let ascii: Vec<u8> = (0u8..0x80).filter(|b| ![0x0e, 0x0f, 0x1b].contains(b)).collect();
        let text = std::str::from_utf8(&ascii).unwrap();
        for name in ASCII_KEEPING {
            let f = mail_parser::decoders::charsets::map::charset_decoder(name.as_bytes()).expect(name);
            assert_eq!(f(&ascii), text, "{name}");
            assert!(keeps_ascii(&name.replace('_', "-").to_ascii_uppercase()), "{name}");
        }
        assert!(!keeps_ascii("utf-7") && !keeps_ascii("utf-16") && !keeps_ascii("iso-8859-1x"));
    }

    #[test]
    fn report_parts() {
        let m = b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n--b\n\nhello\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b.c\n--b\nContent-Type: text/rfc822-headers\n\nSubject: s\n--b--\n";
        let c = Context::build(m);
        assert!(c.is_report);
        assert_eq!(c.dsn.len(), 1);
        assert!(c.original.is_some());
        assert!(c.text.contains("hello"));
    }
}
