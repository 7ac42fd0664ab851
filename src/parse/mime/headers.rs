//! Header fields of one entity (RFC 5322 section 2.2): names, unfolded values.

/// Most header fields read from one header block; the rest are ignored.
const MAX_FIELDS: usize = 512;

/// Header fields of one entity: lower-cased names, unfolded values, in order. The
/// block is copied once (names lower-cased in place) and fields are ranges into it;
/// folded values are unfolded into a second buffer. Two allocations for the text
/// (one when nothing is folded), one for the index.
#[derive(Debug, Default, Clone)]
pub struct Headers {
    /// The header block.
    buf: String,
    /// Unfolded values of folded fields.
    folded: String,
    /// (name start, name end, value start, value end) into `buf`; a value range with
    /// the top bit set is into `folded`.
    fields: Vec<(u32, u32, u32, u32)>,
}

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

/// Marks a value range that is into `Headers::folded`.
const FOLDED: u32 = 1 << 31;

impl Headers {
    fn name(&self, f: &(u32, u32, u32, u32)) -> &str {
        self.buf.get(f.0 as usize..f.1 as usize).unwrap_or("")
    }

    fn value(&self, f: &(u32, u32, u32, u32)) -> &str {
        let v = if f.2 & FOLDED != 0 {
            self.folded.get((f.2 & !FOLDED) as usize..(f.3 & !FOLDED) as usize)
        } else {
            self.buf.get(f.2 as usize..f.3 as usize)
        };
        v.unwrap_or("")
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

/// Parses a header block; lines that are not fields are skipped.
pub fn parse_headers(block: &[u8]) -> Headers {
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
    let mut h = Headers { buf, folded, fields };
    for f in &h.fields {
        // Names are ASCII (checked above): lower-cased in place.
        if let Some(name) = h.buf.get_mut(f.0 as usize..f.1 as usize) {
            name.make_ascii_lowercase();
        }
    }
    // Values are trimmed of ASCII white space already; what else `str::trim` takes
    // (vertical tab, Unicode spaces) is taken once here, not on every read.
    for f in &mut h.fields {
        let buf = if f.2 & FOLDED != 0 { &h.folded } else { &h.buf };
        let (vs, ve) = ((f.2 & !FOLDED) as usize, (f.3 & !FOLDED) as usize);
        let v = buf.get(vs..ve).unwrap_or("");
        // ASCII-trimmed: only a vertical tab or a non-ASCII byte at either end can be
        // more white space.
        let plain = |b: Option<&u8>| b.is_none_or(|&b| b < 0x80 && b != 0x0b);
        if plain(v.as_bytes().first()) && plain(v.as_bytes().last()) {
            continue;
        }
        let t = v.trim();
        if t.len() != v.len() {
            let s = vs + (t.as_ptr() as usize - v.as_ptr() as usize);
            let flag = f.2 & FOLDED;
            f.2 = s as u32 | flag;
            f.3 = (s + t.len()) as u32 | flag;
        }
    }
    h
}

/// The range of `b` without leading and trailing ASCII whitespace.
fn trim_range(b: &[u8]) -> (usize, usize) {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |p| p + 1);
    (s, e.max(s))
}

