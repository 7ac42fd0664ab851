//! The rewrites a message goes through in transit, as the variant test makes them:
//! line ends, mbox framing, MIME boundaries and transfer encodings, names, folding.

pub(super) fn eol_of(m: &[u8]) -> &'static [u8] {
    if m.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    }
}

/// LF <-> CRLF.
pub(super) fn flip_line_ends(m: &[u8]) -> Vec<u8> {
    if eol_of(m) == b"\r\n" { crate::golden::to_lf(m) } else { crate::golden::to_crlf(m) }
}

pub(super) fn with_mbox_line(m: &[u8]) -> Vec<u8> {
    let mut out = b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026".to_vec();
    out.extend_from_slice(eol_of(m));
    out.extend_from_slice(m);
    out
}

/// Two copies in one mbox file, body lines starting "From " escaped (mboxrd), each
/// message ended by a blank line as mbox writers do.
pub(super) fn mbox_pair(m: &[u8]) -> Vec<u8> {
    let eol = eol_of(m);
    let mut one = b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026".to_vec();
    one.extend_from_slice(eol);
    for line in m.split_inclusive(|&b| b == b'\n') {
        let unquoted = line.iter().position(|&b| b != b'>').map(|n| &line[n..]).unwrap_or(&[]);
        if unquoted.starts_with(b"From ") {
            one.push(b'>');
        }
        one.extend_from_slice(line);
    }
    if !one.ends_with(b"\n") {
        one.extend_from_slice(eol);
    }
    one.extend_from_slice(eol);
    let mut out = one.clone();
    out.extend_from_slice(&one);
    out
}

/// Every MIME boundary replaced by another of a different length and alphabet.
pub(super) fn new_boundaries(m: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(m);
    let re = regex::Regex::new(r#"(?i)\bboundary=(?:"([^"\r\n]+)"|([^\s;"]+))"#).unwrap();
    let mut v = m.to_vec();
    let mut any = false;
    for (n, c) in re.captures_iter(&text).enumerate() {
        let Some(b) = c.get(1).or(c.get(2)).map(|x| x.as_str().to_string()) else { continue };
        if b.len() < 8 || !b.is_ascii() {
            continue;
        }
        let new = format!("=_Part_{n}_{}.variant", "9".repeat(n % 5 + 3));
        v = replace_all(&v, b.as_bytes(), new.as_bytes());
        any = true;
    }
    any.then_some(v)
}

pub(super) fn replace_all(m: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len());
    let mut i = 0;
    while i < m.len() {
        if m[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(m[i]);
            i += 1;
        }
    }
    out
}

/// Byte offset of the blank line ending the header block and of the body start.
pub(super) fn split_head(m: &[u8]) -> Option<(usize, usize)> {
    // A part with no header fields starts with its blank line.
    if m.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if m.starts_with(b"\n") {
        return Some((0, 1));
    }
    let lf = m.windows(2).position(|w| w == b"\n\n").map(|p| (p + 1, p + 2));
    let crlf = m.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (p + 2, p + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Unfolded header fields (name lower-cased, value) of a header block.
pub(super) fn fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

pub(super) fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

pub(super) fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[derive(Clone, Copy)]
pub(super) enum Encoding {
    Base64,
    QuotedPrintable,
}

/// Charsets whose 8-bit bytes mail-parser decodes the same raw or transfer-encoded.
pub(super) fn decodable(charset: &str) -> bool {
    let c = charset.to_ascii_lowercase();
    c.is_empty() || c == "us-ascii" || c == "utf-8" || c == "iso-8859-1" || c == "iso-2022-jp" || c == "shift_jis" || c == "euc-jp"
}

/// Re-encodes the first text/plain part (or the single-part body) of `m`; None when
/// there is no such part that is 7bit/8bit with a decodable charset.
pub(super) fn reencode(m: &[u8], enc: Encoding) -> Option<Vec<u8>> {
    let (head_end, body_start) = split_head(m)?;
    let f = fields(&m[..head_end]);
    let ctype = field(&f, "content-type").unwrap_or("text/plain").to_string();
    let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let boundary = param(&ctype, "boundary")?;
        let delim = format!("--{boundary}");
        let body = &m[body_start..];
        // Each part starts after a delimiter line.
        let mut pos = 0;
        let mut starts = Vec::new();
        while let Some(p) = find(&body[pos..], delim.as_bytes()) {
            let at = pos + p;
            let line_start = at == 0 || body[at - 1] == b'\n';
            let nl = body[at..].iter().position(|&b| b == b'\n').map(|n| at + n + 1).unwrap_or(body.len());
            if line_start {
                starts.push((at, nl));
            }
            pos = nl;
            if pos >= body.len() {
                break;
            }
        }
        for w in starts.windows(2) {
            let (part_start, part_end) = (w[0].1, w[1].0);
            let part = &body[part_start..part_end];
            if let Some(new_part) = reencode(part, enc) {
                let mut out = m[..body_start + part_start].to_vec();
                out.extend_from_slice(&new_part);
                out.extend_from_slice(&body[part_end..]);
                return Some(out);
            }
            // Only the first text/plain part is tried.
            let pf = fields(split_head(part).map(|(h, _)| &part[..h]).unwrap_or(part));
            let pt = field(&pf, "content-type").unwrap_or("text/plain").to_ascii_lowercase();
            if pt.starts_with("text/plain") {
                return None;
            }
        }
        return None;
    }
    if !mime.starts_with("text/plain") {
        return None;
    }
    let cte = field(&f, "content-transfer-encoding").unwrap_or("7bit").to_ascii_lowercase();
    if cte != "7bit" && cte != "8bit" {
        return None;
    }
    if !decodable(&param(&ctype, "charset").unwrap_or_default()) {
        return None;
    }
    let eol = eol_of(m);
    let body = &m[body_start..];
    // A part's body ends before the line end that precedes the next delimiter.
    let (body, tail) = if body.ends_with(b"\r\n") {
        (&body[..body.len() - 2], &b"\r\n"[..])
    } else if body.ends_with(b"\n") {
        (&body[..body.len() - 1], &b"\n"[..])
    } else {
        (body, &b""[..])
    };
    let encoded = match enc {
        Encoding::Base64 => base64_lines(body, eol),
        Encoding::QuotedPrintable => qp(body, eol),
    };
    let name = match enc {
        Encoding::Base64 => "base64",
        Encoding::QuotedPrintable => "quoted-printable",
    };
    // Header block without any old Content-Transfer-Encoding field.
    let mut head = Vec::new();
    let mut skip = false;
    for line in m[..head_end].split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if !skip {
                head.extend_from_slice(line);
            }
            continue;
        }
        skip = line.len() >= 26 && line[..26].eq_ignore_ascii_case(b"content-transfer-encoding:");
        if !skip {
            head.extend_from_slice(line);
        }
    }
    if !head.is_empty() && !head.ends_with(b"\n") {
        head.extend_from_slice(eol);
    }
    head.extend_from_slice(format!("Content-Transfer-Encoding: {name}").as_bytes());
    head.extend_from_slice(eol);
    head.extend_from_slice(&m[head_end..body_start]);
    head.extend_from_slice(&encoded);
    head.extend_from_slice(eol);
    head.extend_from_slice(tail);
    Some(head)
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn base64_lines(body: &[u8], eol: &[u8]) -> Vec<u8> {
    // Text is encoded in canonical form: CRLF line ends.
    let lf: Vec<u8> = body.iter().copied().filter(|&b| b != b'\r').collect();
    let mut canon = Vec::with_capacity(lf.len() * 2);
    for b in lf {
        if b == b'\n' {
            canon.push(b'\r');
        }
        canon.push(b);
    }
    let s = data_encoding::BASE64.encode(&canon);
    let mut out = Vec::new();
    for (i, chunk) in s.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(chunk);
    }
    out
}

pub(super) fn qp(body: &[u8], eol: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = body.iter().copied().filter(|&b| b != b'\r').collect();
    let mut out = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        let mut col = 0;
        for (j, &b) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let lit = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece: Vec<u8> = if lit { vec![b] } else { format!("={b:02X}").into_bytes() };
            if col + piece.len() > 75 {
                out.push(b'=');
                out.extend_from_slice(eol);
                col = 0;
            }
            col += piece.len();
            out.extend_from_slice(&piece);
        }
    }
    out
}

/// Replaces `from` with `to` wherever it stands as a whole token (not inside a word).
pub(super) fn replace_token(m: &[u8], from: &str, to: &str) -> Vec<u8> {
    let f = from.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::with_capacity(m.len());
    let mut i = 0;
    while i < m.len() {
        if m[i..].len() >= f.len()
            && m[i..i + f.len()].eq_ignore_ascii_case(f)
            && (i == 0 || !word(m[i - 1]))
            && m.get(i + f.len()).is_none_or(|&b| !word(b))
        {
            out.extend_from_slice(to.as_bytes());
            i += f.len();
        } else {
            out.push(m[i]);
            i += 1;
        }
    }
    out
}

/// Local parts of the recipients (and Message-ID left parts) mapped to new names.
pub(super) fn renames(m: &[u8], recipients: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, r) in recipients.iter().enumerate() {
        let local = r.split('@').next().unwrap_or("");
        // Short or generic local parts also stand for words of the text.
        if local.len() < 5 || !local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b)) {
            continue;
        }
        if !out.iter().any(|(f, _)| f == local) {
            out.push((local.to_string(), format!("{}{n}x{}", ["rcpt", "mail", "data"][(n + local.len()) % 3], "q".repeat(n % 3 + 1))));
        }
    }
    let text = String::from_utf8_lossy(m);
    let re = regex::Regex::new(r"(?i)\bmessage-id:[ \t]*<([A-Za-z0-9._$%+-]{6,})@").unwrap();
    for (n, c) in re.captures_iter(&text).enumerate() {
        let id = c[1].to_string();
        if !out.iter().any(|(f, _)| f.eq_ignore_ascii_case(&id)) {
            out.push((id, format!("MID{n}.variant.{}", "7".repeat(n % 4 + 2))));
        }
    }
    out
}

/// Unfolds folded fields named in `names`, or folds long ones at 60 columns: in the top
/// header only, or (`everywhere`) in every block of header fields (returned headers,
/// delivery-status groups).
pub(super) fn refold(m: &[u8], names: &[&str], everywhere: bool) -> Option<Vec<u8>> {
    let (head_end, _) = split_head(m)?;
    let eol = eol_of(m);
    let mut lines: Vec<Vec<u8>> = m.split_inclusive(|&b| b == b'\n').map(|l| l.to_vec()).collect();
    let is_field = |l: &[u8]| {
        let name_len = l.iter().take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-').count();
        name_len > 0 && l.get(name_len) == Some(&b':')
    };
    let target = |l: &[u8]| {
        let l = l.to_ascii_lowercase();
        names.iter().any(|n| l.starts_with(n.as_bytes()) && l.get(n.len()) == Some(&b':'))
    };
    let mut changed = false;
    let mut out: Vec<u8> = Vec::new();
    let (mut i, mut pos) = (0, 0);
    let mut in_fields = true;
    while i < lines.len() {
        let line = std::mem::take(&mut lines[i]);
        i += 1;
        let at = pos;
        pos += line.len();
        if trim_eol(&line).is_empty() {
            in_fields = everywhere && lines.get(i).is_some_and(|l| is_field(l));
            out.extend_from_slice(&line);
            continue;
        }
        // A line ending in "=" is a quoted-printable soft break, not a fold.
        if !in_fields || (!everywhere && at >= head_end) || !target(&line) || trim_eol(&line).ends_with(b"=") {
            out.extend_from_slice(&line);
            continue;
        }
        let mut whole = trim_eol(&line).to_vec();
        let mut folded = false;
        while i < lines.len() && (lines[i].starts_with(b" ") || lines[i].starts_with(b"\t")) {
            pos += lines[i].len();
            whole.extend_from_slice(trim_eol(&lines[i]));
            folded = true;
            i += 1;
        }
        if folded {
            changed = true;
            out.extend_from_slice(&whole);
            out.extend_from_slice(eol);
        } else if whole.len() > 60 && !whole.contains(&0x1b) {
            // Fold at the last space before column 60 (never inside an encoded word).
            let mut rest: &[u8] = &whole;
            while rest.len() > 60 {
                let Some(sp) = rest[..60].iter().rposition(|&b| b == b' ').filter(|&p| p > 10) else { break };
                out.extend_from_slice(&rest[..sp]);
                out.extend_from_slice(eol);
                rest = &rest[sp..];
                changed = true;
            }
            out.extend_from_slice(rest);
            if line.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
        } else {
            out.extend_from_slice(&line);
        }
    }
    changed.then_some(out)
}

pub(super) fn trim_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Field names written in lower case (some MTAs write "final-recipient:"), header
/// fields of the message and its parts alike.
pub(super) fn lower_field_names(m: &[u8]) -> Option<Vec<u8>> {
    const NAMES: [&str; 12] = [
        "final-recipient", "original-recipient", "action", "status", "diagnostic-code", "remote-mta",
        "reporting-mta", "content-type", "content-transfer-encoding", "subject", "to", "message-id",
    ];
    let mut out = Vec::with_capacity(m.len());
    let mut changed = false;
    for line in m.split_inclusive(|&b| b == b'\n') {
        let n = line.iter().take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-').count();
        let name = &line[..n];
        if line.get(n) == Some(&b':') && NAMES.iter().any(|x| name.eq_ignore_ascii_case(x.as_bytes())) && name.iter().any(u8::is_ascii_uppercase) {
            out.extend(name.iter().map(u8::to_ascii_lowercase));
            out.extend_from_slice(&line[n..]);
            changed = true;
        } else {
            out.extend_from_slice(line);
        }
    }
    changed.then_some(out)
}
