//! A small, bounded MIME reader (RFC 2045/2046/2047): header fields, multipart
//! splitting and transfer decoding. It keeps raw byte slices where it can and never
//! panics; malformed structure degrades to "one text body".

use std::borrow::Cow;

mod headers;

pub use headers::{parse_headers, parse_headers_where, Headers};

/// Deepest multipart nesting followed.
pub const MAX_DEPTH: usize = 8;
/// Most MIME parts visited in one message.
pub const MAX_PARTS: usize = 128;

/// Finds "\n\n" (the end of a header block with LF line ends).
static BLANK_LF: std::sync::LazyLock<memchr::memmem::Finder<'static>> = std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));
/// Finds "\n\r\n" (the end of a header block with CRLF line ends).
static BLANK_CRLF: std::sync::LazyLock<memchr::memmem::Finder<'static>> = std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\r\n"));

/// The header block of [`split_header_body`], for text that mostly has LF line ends
/// (the returned original as `Context` keeps it): one search for "\n\n" instead of
/// two, and the raw split when a CR stands before the end found.
pub fn header_block(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"\n") {
        return &[];
    }
    let end = BLANK_LF.find(raw);
    let head = end.map_or(raw, |p| raw.get(..p + 1).unwrap_or(raw));
    // A CRLF ending ("\n\r\n") comes before the LF one only with a CR before it.
    if memchr::memchr(b'\r', head).is_none() {
        return head;
    }
    split_header_body(raw).0
}

/// Splits an entity into its header block and body at the first empty line.
pub fn split_header_body(raw: &[u8]) -> (&[u8], &[u8]) {
    // A message that starts with an empty line has no headers.
    if raw.starts_with(b"\n") {
        return (&[], raw.get(1..).unwrap_or(&[]));
    }
    if raw.starts_with(b"\r\n") {
        return (&[], raw.get(2..).unwrap_or(&[]));
    }
    // The first line end followed by an empty line (LF or CRLF). A part's few header
    // lines are walked; past them the endings are searched in growing windows (a
    // header block is short, the body may be long): the ending the first line uses,
    // then the other one only before that.
    let mut pos = 0;
    let mut crlf = false;
    for i in 0..4 {
        let Some(n) = memchr::memchr(b'\n', raw.get(pos..).unwrap_or(&[])) else { return (raw, &[]) };
        if i == 0 {
            crlf = n > 0 && raw.get(n - 1) == Some(&b'\r');
        }
        let next = pos + n + 1;
        let rest = raw.get(next..).unwrap_or(&[]);
        if rest.starts_with(b"\n") {
            return (raw.get(..next).unwrap_or(raw), rest.get(1..).unwrap_or(&[]));
        }
        if rest.starts_with(b"\r\n") {
            return (raw.get(..next).unwrap_or(raw), rest.get(2..).unwrap_or(&[]));
        }
        pos = next;
    }
    let (likely, other) = if crlf { ((&*BLANK_CRLF, 3), (&*BLANK_LF, 2)) } else { ((&*BLANK_LF, 2), (&*BLANK_CRLF, 3)) };
    // The last line end walked starts the search: an ending may begin there.
    let (mut from, mut window) = (pos - 1, 2048);
    while from < raw.len() {
        let to = raw.len().min(from.saturating_add(window));
        let hay = raw.get(from..to).unwrap_or(&[]);
        let first = match likely.0.find(hay) {
            Some(n) => {
                // An ending of the other kind starts before `n` or not at all.
                let before = hay.get(..(n + other.1).min(hay.len())).unwrap_or(&[]);
                Some(match other.0.find(before) {
                    Some(m) if m < n => (m, other.1),
                    _ => (n, likely.1),
                })
            }
            None => other.0.find(hay).map(|m| (m, other.1)),
        };
        if let Some((n, len)) = first {
            let at = from + n;
            return (raw.get(..at + 1).unwrap_or(raw), raw.get(at + len..).unwrap_or(&[]));
        }
        if to == raw.len() {
            break;
        }
        // The next window overlaps this one by two bytes: an ending across the cut is
        // found whole.
        from = to - 2;
        window = window.saturating_mul(2);
    }
    (raw, &[])
}

/// A Content-Type: lower-case "type/subtype" and its parameters, borrowed from the
/// field value (a part's type is read without copying it).
#[derive(Debug, Default, Clone)]
pub struct ContentType<'a> {
    /// "type/subtype", lower case ("text/plain" when absent).
    pub mime: Cow<'a, str>,
    /// The parameters as written (after the first ';' outside quotes), read on demand.
    params: &'a str,
}

impl<'a> ContentType<'a> {
    /// Parses a Content-Type value.
    pub fn parse(value: Option<&'a str>) -> ContentType<'a> {
        let Some(value) = value else {
            return ContentType { mime: Cow::Borrowed("text/plain"), params: "" };
        };
        let mut it = split_params(value);
        let first = it.next().unwrap_or("");
        // The parameters start after the first segment and its ';' (if any).
        let params = value.get(first.len() + 1..).unwrap_or("");
        let m = first.trim();
        let mime = if m.is_empty() {
            Cow::Borrowed("text/plain")
        } else if m.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(m.to_ascii_lowercase())
        } else {
            Cow::Borrowed(m)
        };
        ContentType { mime, params }
    }

    /// The value of parameter `name` (lower case), quotes removed.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        split_params(self.params).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"'))
        })
    }
}

/// Splits on ';' outside double quotes (slices of `value`, no copies).
fn split_params(value: &str) -> impl Iterator<Item = &str> + '_ {
    let b = value.as_bytes();
    let mut quoted = false;
    let mut start = 0;
    let mut done = false;
    // '"' and ';' are ASCII: byte positions are char boundaries.
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut i = start;
        // Only quotes and semicolons matter: jump from one to the next.
        while let Some(n) = memchr::memchr2(b'"', b';', b.get(i..).unwrap_or(&[])) {
            i += n;
            if b.get(i) == Some(&b'"') {
                quoted = !quoted;
            } else if !quoted {
                let seg = value.get(start..i).unwrap_or("");
                start = i + 1;
                return Some(seg);
            }
            i += 1;
        }
        done = true;
        Some(value.get(start..).unwrap_or(""))
    })
}

/// Finds "\n--", where every delimiter line after the first byte starts: built once
/// (a finder for each boundary would cost more to build than the search).
static LINE_DASHES: std::sync::LazyLock<memchr::memmem::Finder<'static>> = std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n--"));

/// Splits a multipart body into its parts' raw bytes (preamble and epilogue dropped).
pub fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let boundary = boundary.as_bytes();
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    // Delimiters begin a line: the first byte, or just after a "\n" found with "--".
    let mut at = if body.starts_with(b"--") { Some(0) } else { next_dashes(body, 0) };
    while let Some(a) = at {
        // "--" then the whole boundary (not a prefix of a longer one).
        let mut pos = a + 2;
        let matched = body.get(pos..).is_some_and(|r| r.starts_with(boundary))
            && matches!(body.get(pos + boundary.len()), None | Some(b'-' | b'\r' | b'\n' | b' ' | b'\t'));
        if !matched {
            at = next_dashes(body, a + 1);
            continue;
        }
        pos += boundary.len();
        if let Some(s) = start {
            let mut end = a;
            if end > s && body.get(end - 1) == Some(&b'\n') {
                end -= 1;
                if end > s && body.get(end - 1) == Some(&b'\r') {
                    end -= 1;
                }
            }
            parts.push(body.get(s..end).unwrap_or(&[]));
            if parts.len() >= MAX_PARTS {
                return parts;
            }
        }
        if body.get(pos..).is_some_and(|r| r.starts_with(b"--")) {
            return parts;
        }
        // Skip the rest of the delimiter line.
        match memchr::memchr(b'\n', body.get(pos..).unwrap_or(&[])) {
            Some(nl) => {
                pos += nl + 1;
                start = Some(pos);
                // The next line may itself be a delimiter: search from its "\n".
                at = next_dashes(body, pos - 1);
            }
            None => return parts,
        }
    }
    // Unterminated final part: keep what is there.
    if let Some(s) = start {
        if s < body.len() {
            parts.push(body.get(s..).unwrap_or(&[]));
        }
    }
    parts
}

/// The start of the next line at or after `from + 1` that begins with "--".
fn next_dashes(body: &[u8], from: usize) -> Option<usize> {
    LINE_DASHES.find(body.get(from..)?).map(|n| from + n + 1)
}

/// Decodes a body according to its Content-Transfer-Encoding.
pub fn decode_body<'a>(body: &'a [u8], cte: Option<&str>) -> Cow<'a, [u8]> {
    match cte.map(str::trim) {
        Some(e) if e.eq_ignore_ascii_case("base64") => Cow::Owned(decode_base64(body)),
        Some(e) if e.eq_ignore_ascii_case("quoted-printable") => Cow::Owned(decode_qp(body)),
        _ => Cow::Borrowed(body),
    }
}

/// Lenient base64: skips anything outside the alphabet, stops at padding.
pub fn decode_base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in input {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable decoding (soft line breaks joined, bad escapes kept).
pub fn decode_qp(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        // Copy the run up to the next '=' at once.
        let run = memchr::memchr(b'=', input.get(i..).unwrap_or(&[])).unwrap_or(input.len() - i);
        out.extend_from_slice(input.get(i..i + run).unwrap_or(&[]));
        i += run;
        let Some(&b) = input.get(i) else { break };
        if b == b'=' {
            let a = input.get(i + 1).copied();
            let c = input.get(i + 2).copied();
            if a == Some(b'\n') {
                i += 2;
                continue;
            }
            if a == Some(b'\r') && c == Some(b'\n') {
                i += 3;
                continue;
            }
            if let (Some(h), Some(l)) = (a.and_then(hex), c.and_then(hex)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes RFC 2047 encoded words (B and Q) in a header value; other charsets than
/// UTF-8 and ASCII are decoded lossily, which is enough to match on ASCII words.
pub fn decode_words(value: &str) -> Cow<'_, str> {
    if !value.contains("=?") {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        let decoded = decode_word(word);
        match decoded {
            Some((text, used)) => {
                if !before.trim().is_empty() || out.is_empty() {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = word.get(used..).unwrap_or("");
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = word.get(2..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Decodes one "=?charset?X?text?=" word; returns the text and the bytes used.
fn decode_word(word: &str) -> Option<(String, usize)> {
    let inner = word.get(2..)?;
    let (_charset, rest) = inner.split_once('?')?;
    let (enc, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = rest.get(..end)?;
    let bytes = match enc {
        "B" | "b" => decode_base64(text.as_bytes()),
        "Q" | "q" => decode_qp(text.replace('_', " ").as_bytes()),
        _ => return None,
    };
    let used = word.len() - rest.len() + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold_and_lowercase() {
        let h = parse_headers(b"Subject: a\r\n b\r\nX-Y: 1\r\n");
        assert_eq!(h.get("subject"), Some("a b"));
        assert_eq!(h.get("x-y"), Some("1"));
    }

    #[test]
    fn headers_folded_lossy_and_trimmed() {
        let h = parse_headers(b"From x\nA: 1\n\t 2 \n  3\nB:\x0b v \xff\nc: \xe3\x80\x80w\nno colon\n x\n");
        assert_eq!(h.get("a"), Some("1 2 3"));
        assert_eq!(h.get("b"), Some("v \u{fffd}"));
        assert_eq!(h.get("c"), Some("w x"), "Unicode space trimmed; a continuation joins the last field");
        assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["A", "B", "c"], "names as written");
    }

    /// The first empty line, found line by line (what the windowed search must give).
    fn split_slowly(raw: &[u8]) -> (&[u8], &[u8]) {
        for i in 0..raw.len() {
            if i == 0 || raw[i - 1] == b'\n' {
                for end in [&b"\n"[..], b"\r\n"] {
                    if raw[i..].starts_with(end) {
                        return (&raw[..i], &raw[i + end.len()..]);
                    }
                }
            }
        }
        (raw, &[])
    }

    #[test]
    fn header_block_ends_at_the_first_empty_line() {
        let field = |n: usize, crlf: bool| format!("X-F{n}: {}{}", "v".repeat(n % 70), if crlf { "\r\n" } else { "\n" });
        for lines in [0, 1, 3, 4, 5, 40, 300, 2000] {
            for (crlf, blank) in [(false, "\n"), (true, "\r\n"), (true, "\n"), (false, "\r\n")] {
                let mut m: String = (0..lines).map(|n| field(n, crlf)).collect();
                m.push_str(blank);
                m.push_str("body\n\nmore\r\n\r\n");
                assert_eq!(split_header_body(m.as_bytes()), split_slowly(m.as_bytes()), "{lines} {crlf} {blank:?}");
                let cut = &m.as_bytes()[..m.len() / 2];
                assert_eq!(split_header_body(cut), split_slowly(cut));
            }
        }
        assert_eq!(split_header_body(b"a: 1\r"), (&b"a: 1\r"[..], &b""[..]));
    }

    proptest::proptest! {
        #[test]
        fn header_block_is_the_split_one(v in proptest::collection::vec(proptest::sample::select(vec![&b"\n"[..], b"\r", b"\r\n", b"A: 1", b" x", b"body"]), 0..30)) {
            let raw = v.concat();
            proptest::prop_assert_eq!(header_block(&raw), split_header_body(&raw).0);
        }
    }

    #[test]
    fn multipart_delimiters_begin_lines() {
        let body = b"--b\nA: 1\n\none\n--b\n--b\nx --b\n--bb\n--b--\n";
        assert_eq!(split_multipart(body, "b"), vec![&b"A: 1\n\none"[..], &b""[..], &b"x --b\n--bb"[..]]);
        assert_eq!(split_multipart(b"--b\r\n\r\nlast", "b"), vec![&b"\r\nlast"[..]]);
        assert!(split_multipart(b"no delimiter", "b").is_empty());
    }

    #[test]
    fn multipart_split() {
        let body = b"pre\n--b\nA: 1\n\none\n--b\n\ntwo\n--b--\nepi";
        let parts = split_multipart(body, "b");
        assert_eq!(parts, vec![&b"A: 1\n\none"[..], &b"\ntwo"[..]]);
    }

    #[test]
    fn encodings() {
        assert_eq!(decode_base64(b"aGVs\nbG8="), b"hello");
        assert_eq!(decode_qp(b"a=3Db=\nc"), b"a=bc");
        assert_eq!(decode_words("=?utf-8?Q?Auto_reply?= x"), "Auto reply x");
    }
}
