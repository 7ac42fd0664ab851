//! A small, bounded MIME reader (RFC 2045/2046/2047): header fields, multipart
//! splitting and transfer decoding. It keeps raw byte slices where it can and never
//! panics; malformed structure degrades to "one text body".

use std::borrow::Cow;

/// Most header fields read from one header block; the rest are ignored.
const MAX_FIELDS: usize = 512;
/// Deepest multipart nesting followed.
pub const MAX_DEPTH: usize = 8;
/// Most MIME parts visited in one message.
pub const MAX_PARTS: usize = 128;

/// Header fields of one entity: lower-cased names, unfolded values, in order. All text
/// lives in one buffer (one allocation per entity, not two per field).
#[derive(Debug, Default, Clone)]
pub struct Headers {
    buf: String,
    /// (name start, name end = value start, value end) into `buf`.
    fields: Vec<(u32, u32, u32)>,
}

impl Headers {
    fn name(&self, f: &(u32, u32, u32)) -> &str {
        self.buf.get(f.0 as usize..f.1 as usize).unwrap_or("")
    }

    fn value(&self, f: &(u32, u32, u32)) -> &str {
        self.buf.get(f.1 as usize..f.2 as usize).unwrap_or("").trim()
    }

    /// The first value of field `name` (lower case), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        // Length first: most fields are skipped without touching their text.
        self.fields.iter().find(|f| (f.1 - f.0) as usize == name.len() && self.name(f) == name).map(|f| self.value(f))
    }

    /// The first value of `name`, or "".
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Every value of field `name` (lower case), in order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.fields.iter().filter(move |f| (f.1 - f.0) as usize == name.len() && self.name(f) == name).map(|f| self.value(f))
    }

    /// All fields as (lower-case name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|f| (self.name(f), self.value(f)))
    }

    /// Whether no field was found.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
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
    let mut pos = 0;
    while let Some(n) = memchr::memchr(b'\n', raw.get(pos..).unwrap_or(&[])) {
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
    (raw, &[])
}

/// Parses a header block; lines that are not fields are skipped.
pub fn parse_headers(block: &[u8]) -> Headers {
    let block = block.get(..block.len().min(256 * 1024)).unwrap_or(block);
    let mut h = Headers { buf: String::with_capacity(block.len()), fields: Vec::with_capacity(32) };
    // One UTF-8 validation for the whole block (the usual case): fields are then
    // copied as they are; otherwise each is converted lossily on its own.
    let text = std::str::from_utf8(block).ok();
    let push = |buf: &mut String, part: &[u8]| {
        // `part` is a sub-slice of `block` (or empty): the same range of `text`.
        let from = (part.as_ptr() as usize).checked_sub(block.as_ptr() as usize);
        match text.zip(from).and_then(|(t, from)| t.get(from..from.checked_add(part.len())?)) {
            Some(s) => buf.push_str(s),
            None => push_lossy(buf, part),
        }
    };
    let mut pos = 0;
    while pos <= block.len() {
        let rest = block.get(pos..).unwrap_or(&[]);
        let n = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = rest.get(..n).unwrap_or(&[]);
        pos += n + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(&first) = line.first() else { continue };
        if first == b' ' || first == b'\t' {
            if let Some(last) = h.fields.last_mut() {
                // The last field's value ends the buffer: extend it in place.
                if (last.2 - last.1) < 16 * 1024 {
                    h.buf.push(' ');
                    push(&mut h.buf, trim_bytes(line));
                    last.2 = h.buf.len() as u32;
                }
            }
            continue;
        }
        // An mbox "From " line at the top is not a field.
        if h.fields.is_empty() && line.starts_with(b"From ") {
            continue;
        }
        // The name runs to the first ':' and holds only printable ASCII (one pass: a
        // byte that may not stand in a name before any ':' rules the line out).
        let Some(colon) = line.iter().position(|&b| b == b':' || b <= b' ' || b >= 127) else { continue };
        if line.get(colon) != Some(&b':') || colon == 0 {
            continue;
        }
        let name = line.get(..colon).unwrap_or(&[]);
        if h.fields.len() >= MAX_FIELDS {
            break;
        }
        let ns = h.buf.len() as u32;
        // The name is ASCII (checked above).
        push(&mut h.buf, name);
        if let Some(n) = h.buf.get_mut(ns as usize..) {
            n.make_ascii_lowercase();
        }
        let vs = h.buf.len() as u32;
        push(&mut h.buf, trim_bytes(line.get(colon + 1..).unwrap_or(&[])));
        h.fields.push((ns, vs, h.buf.len() as u32));
    }
    h
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |p| p + 1);
    b.get(s..e.max(s)).unwrap_or(&[])
}

fn push_lossy(buf: &mut String, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => buf.push_str(s),
        Err(_) => buf.push_str(&String::from_utf8_lossy(b)),
    }
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
        while let Some(&c) = b.get(i) {
            match c {
                b'"' => quoted = !quoted,
                b';' if !quoted => {
                    let seg = value.get(start..i).unwrap_or("");
                    start = i + 1;
                    return Some(seg);
                }
                _ => {}
            }
            i += 1;
        }
        done = true;
        Some(value.get(start..).unwrap_or(""))
    })
}

/// Splits a multipart body into its parts' raw bytes (preamble and epilogue dropped).
pub fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let finder = memchr::memmem::Finder::new(delim);
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while let Some(n) = finder.find(body.get(pos..).unwrap_or(&[])) {
        let at = pos + n;
        pos = at + delim.len();
        // The delimiter must begin a line and be the whole boundary (not a prefix of
        // a longer one).
        if at > 0 && body.get(at - 1) != Some(&b'\n') {
            continue;
        }
        if !matches!(body.get(pos), None | Some(b'-' | b'\r' | b'\n' | b' ' | b'\t')) {
            continue;
        }
        if let Some(s) = start {
            let mut end = at;
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
