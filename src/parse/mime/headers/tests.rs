//! The header parser against the line-by-line one it replaced: the same fields for
//! any block.

use super::*;
use proptest::prelude::*;

/// Bytes that may stand in a field name (printable ASCII but ':').
static NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 33;
    while b < 127 {
        t[b] = b != b':' as usize;
        b += 1;
    }
    t
};

/// The parser as it was before the single walk over the block (kept to compare):
/// (lower-case name, value) of each field.
fn parse_headers_reference(block: &[u8]) -> Vec<(String, String)> {
    let block = block.get(..block.len().min(256 * 1024)).unwrap_or(block);
    // One UTF-8 validation for the whole block (the usual case). Otherwise the block
    // is converted lossily as a whole: the same text as converting each field on its
    // own, as every cut below is at an ASCII byte (never inside a sequence).
    let buf = match std::str::from_utf8(block) {
        Ok(s) => String::from(s),
        Err(_) => String::from_utf8_lossy(block).into_owned(),
    };
    let end = buf.len();
    // About one field per 40 bytes: the index is allocated once.
    let mut fields: Vec<(u32, u32, u32, u32)> = Vec::with_capacity((end / 40 + 4).min(MAX_FIELDS));
    let mut folded = String::new();
    let b = buf.as_bytes();
    let mut next = 0;
    // One search for line ends over the whole block; the last line may have none.
    for le in memchr::memchr_iter(b'\n', b).chain(std::iter::once(end)) {
        let ls = next;
        next = le + 1;
        let line = b.get(ls..le).unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(&first) = line.first() else { continue };
        if first == b' ' || first == b'\t' {
            let (s, e) = trim_range(line);
            let Some(last) = fields.last_mut() else { continue };
            // The value of the last field is unfolded at the end of `folded`.
            let (vs, ve) = ((last.2 & !FOLDED) as usize, (last.3 & !FOLDED) as usize);
            if ve - vs < 16 * 1024 {
                if last.2 & FOLDED == 0 {
                    if folded.capacity() == 0 {
                        // Unfolded values hold little more than the rest of the block.
                        folded.reserve(end - ls + 256);
                    }
                    let at = folded.len();
                    folded.push_str(buf.get(vs..ve).unwrap_or(""));
                    last.2 = at as u32 | FOLDED;
                }
                folded.push(' ');
                folded.push_str(buf.get(ls + s..ls + e).unwrap_or(""));
                last.3 = folded.len() as u32 | FOLDED;
            }
            continue;
        }
        // An mbox "From " line at the top is not a field.
        if fields.is_empty() && line.starts_with(b"From ") {
            continue;
        }
        // The name runs to the first ':' and holds only printable ASCII (one pass: a
        // byte that may not stand in a name before any ':' rules the line out).
        let Some(colon) = line.iter().position(|&b| NAME_BYTE.get(usize::from(b)) != Some(&true)) else { continue };
        if line.get(colon) != Some(&b':') || colon == 0 {
            continue;
        }
        if fields.len() >= MAX_FIELDS {
            break;
        }
        let (s, e) = trim_range(line.get(colon + 1..).unwrap_or(&[]));
        let vs = ls + colon + 1;
        fields.push((ls as u32, (ls + colon) as u32, (vs + s) as u32, (vs + e) as u32));
    }
    let mut buf = buf;
    for f in &fields {
        // Names are ASCII (checked above): lower-cased in place.
        if let Some(name) = buf.get_mut(f.0 as usize..f.1 as usize) {
            name.make_ascii_lowercase();
        }
    }
    let mut out = Vec::new();
    // Values are trimmed of ASCII white space already; what else `str::trim` takes
    // (vertical tab, Unicode spaces) is taken once here, not on every read.
    for f in &fields {
        let vbuf = if f.2 & FOLDED != 0 { &folded } else { &buf };
        let (vs, ve) = ((f.2 & !FOLDED) as usize, (f.3 & !FOLDED) as usize);
        let v = vbuf.get(vs..ve).unwrap_or("");
        // ASCII-trimmed: only a vertical tab or a non-ASCII byte at either end can be
        // more white space.
        let plain = |b: Option<&u8>| b.is_none_or(|&b| b < 0x80 && b != 0x0b);
        let v = if plain(v.as_bytes().first()) && plain(v.as_bytes().last()) { v } else { v.trim() };
        out.push((buf.get(f.0 as usize..f.1 as usize).unwrap_or("").to_string(), v.to_string()));
    }
    out
}


/// The range of `b` without leading and trailing ASCII whitespace.
fn trim_range(b: &[u8]) -> (usize, usize) {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |p| p + 1);
    (s, e.max(s))
}

fn fields(h: &Headers) -> Vec<(String, String)> {
    h.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect()
}

/// The same fields as the reference, and every one found by its name in any case.
fn same(block: &[u8]) {
    // Keeping some names gives the fields of those names the whole parse gives.
    let keep = |n: &[u8]| n.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'x') || c.eq_ignore_ascii_case(&b's'));
    let kept: Vec<(String, String)> = fields(&parse_headers(block)).into_iter().filter(|(n, _)| keep(n.as_bytes())).collect();
    assert_eq!(fields(&parse_headers_where(block, keep)), kept, "{:?}", String::from_utf8_lossy(block));
    let h = parse_headers(block);
    let want = parse_headers_reference(block);
    assert_eq!(fields(&h), want, "{:?}", String::from_utf8_lossy(block));
    for (n, _) in &want {
        let all: Vec<&str> = want.iter().filter(|(m, _)| m == n).map(|(_, v)| v.as_str()).collect();
        assert_eq!(h.get_all(n).collect::<Vec<_>>(), all, "{n}");
        assert_eq!(h.get(&n.to_ascii_uppercase()), all.first().copied(), "{n}");
    }
}

#[test]
fn names_match_in_any_case_and_length() {
    let h = parse_headers(b"Received: a\nX-Long-Field-Name: b\nX-Long-Field-Nbme: c\nTO: d\nt: e\nReceived-SPF: f\nreceived: g\n");
    assert_eq!(h.get("received"), Some("a"));
    assert_eq!(h.get_all("received").collect::<Vec<_>>(), ["a", "g"]);
    assert_eq!(h.get("x-long-field-nbme"), Some("c"));
    assert_eq!(h.get("x-long-field-nAme"), Some("b"));
    assert_eq!(h.get("to"), Some("d"));
    assert_eq!(h.get("t"), Some("e"));
    assert_eq!(h.get("received-spf"), Some("f"));
    assert_eq!(h.get("receive"), None);
    assert_eq!(h.get(""), None);
}

#[test]
fn same_fields_as_before_on_awkward_blocks() {
    for b in [
        &b""[..], b"\n", b"\r\n", b" x\n", b"From x\nA: 1\n", b"From: x\n", b"A:\n \n", b"A: 1\n \n", b"A: 1\n \r\n\tb\n",
        b"A: \xe3\x80\x80x\nB: y \x0b\n", b"A: x\n \xc2\xa0\n", b"A: x\n y\xc2\xa0\nB: \x0bz\n", b"\rA: 1\n", b"A: 1\r\r\n",
        b"A: 1", b"A:", b":x\nA b: c\n", b"Ab", b"Abcdefghij", b"Abcdefghij:", b"Abcdefg:", b"A\x7fb: 1\n", b"ABCDEFGH\x80: 1\n",
        b"ZZ[@`{: 1\n", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ: 1\n", b"A: 1\n\n \tB\nC: \xff\n", b"A\x80: 1\n", b"a: b: c\r\n d\r\n",
    ] {
        same(b);
    }
    let many: Vec<u8> = (0..600).flat_map(|i| format!("X-{i}: v\n w\n").into_bytes()).collect();
    same(&many);
    let long: Vec<u8> = [&b"S: a\n"[..], &b" folded\n".repeat(5000)].concat();
    same(&long);
}

/// Lines made of the pieces header parsing cares about.
fn block() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        &b"Subject"[..], b"X-Y", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"From ", b"a", b"\x0b", b"\xc2\xa0", b"\xe3\x80\x80",
        b"\xff", b"\xc3", b"=", b"\x0c", b"<a@b.c>", b"Return-Path", b"\x7f", b"@[`{", b"ZZZZZZZZZ",
    ]);
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn same_fields_as_before(b in block()) {
        same(&b);
    }

    #[test]
    fn same_fields_as_before_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..200)) {
        same(&b);
    }
}
