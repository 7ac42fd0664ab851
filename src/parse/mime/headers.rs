//! Header fields of one entity (RFC 5322 section 2.2): names, unfolded values.

/// Most header fields read from one header block; the rest are ignored.
const MAX_FIELDS: usize = 512;

/// Header fields of one entity: names as written, unfolded values, in order. The
/// block is copied once and fields are ranges into it; folded values are unfolded
/// into a second buffer. Two allocations for the text (one when nothing is folded),
/// one for the index. Names are matched without regard to case through a key made
/// of their first eight bytes, lower-cased, taken while the block is read.
#[derive(Debug, Default, Clone)]
pub struct Headers {
    /// The header block.
    buf: String,
    /// Unfolded values of folded fields.
    folded: String,
    /// The fields, in order.
    fields: Vec<Field>,
    /// One bit per field name (of 256, by its key and length): most names asked for
    /// are absent, and their bit, clear, says so without a look at the fields.
    names: [u64; 4],
}

/// One field: ranges into `Headers::buf` (a value range with the top bit set is
/// into `Headers::folded`) and its name key.
#[derive(Debug, Default, Clone, Copy)]
struct Field {
    name_start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
    /// The first eight bytes of the name, lower case, little-endian (zero padded).
    key: u64,
}

/// Marks a value range that is into `Headers::folded`.
const FOLDED: u32 = 1 << 31;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `b` at `i` as a little-endian word, if there are eight.
fn word(b: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The high bit of each byte of `w` below `n` (`n` at most 0x80). Only the lowest
/// flag is exact (a borrow may flag a byte above), which is all a forward scan reads.
fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(LO.wrapping_mul(u64::from(n))) & !w & HI
}

/// The high bit of each byte of `w` that may not stand in a field name (a control
/// byte, a space, ':', DEL or a non-ASCII byte); the lowest flag is exact.
fn not_name_bytes(w: u64) -> u64 {
    bytes_below(w, 0x21) | (w & HI) | bytes_below(w ^ LO.wrapping_mul(0x3a), 1) | bytes_below(w ^ LO.wrapping_mul(0x7f), 1)
}

/// `w` with its ASCII capitals lower-cased (bytes below 0x80 are exact; a byte at or
/// above it may disturb the bytes above it only).
fn lower_word(w: u64) -> u64 {
    let upper = w.wrapping_add(LO.wrapping_mul(0x80 - 0x41)) & !w.wrapping_add(LO.wrapping_mul(0x80 - 0x5b)) & HI;
    w | (upper >> 2)
}

/// The key of a name whose first bytes (up to eight) `w` holds.
fn key_of(w: u64, len: usize) -> u64 {
    let keep = if len >= 8 { u64::MAX } else { (1u64 << (8 * len)) - 1 };
    lower_word(w) & keep
}

/// The bit of the name with this key and length in `Headers::names`.
fn name_bit(key: u64, len: usize) -> (usize, u64) {
    let h = (key ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56;
    ((h >> 6) as usize, 1 << (h & 63))
}

/// The key of a name given as text.
fn key_of_name(name: &str) -> u64 {
    let mut chunk = [0u8; 8];
    for (c, b) in chunk.iter_mut().zip(name.bytes()) {
        *c = b;
    }
    key_of(u64::from_le_bytes(chunk), name.len())
}

impl Headers {
    #[inline]
    fn name(&self, f: &Field) -> &str {
        self.buf.get(f.name_start as usize..f.name_end as usize).unwrap_or("")
    }

    fn value(&self, f: &Field) -> &str {
        let v = if f.value_start & FOLDED != 0 {
            self.folded.get((f.value_start & !FOLDED) as usize..(f.value_end & !FOLDED) as usize)
        } else {
            self.buf.get(f.value_start as usize..f.value_end as usize)
        };
        v.unwrap_or("")
    }

    /// Whether field `f` is named `name` (any case) whose key is `key`.
    #[inline]
    fn is_named(&self, f: &Field, name: &str, key: u64) -> bool {
        // Length and key first: most fields are ruled out without touching their text.
        (f.name_end - f.name_start) as usize == name.len()
            && f.key == key
            && (name.len() <= 8 || self.name(f).get(8..).zip(name.get(8..)).is_some_and(|(a, b)| a.eq_ignore_ascii_case(b)))
    }

    /// Whether a field of this key and length may be present (false: it is not).
    #[inline]
    fn may_hold(&self, key: u64, len: usize) -> bool {
        let (word, bit) = name_bit(key, len);
        self.names.get(word).is_some_and(|w| w & bit != 0)
    }

    /// The first value of field `name` (any case), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let key = key_of_name(name);
        if !self.may_hold(key, name.len()) {
            return None;
        }
        self.fields.iter().find(|f| self.is_named(f, name, key)).map(|f| self.value(f))
    }

    /// The first value of `name`, or "".
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Every value of field `name` (any case), in order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        let key = key_of_name(name);
        // An absent name walks no field.
        let fields = if self.may_hold(key, name.len()) { self.fields.as_slice() } else { &[] };
        fields.iter().filter(move |f| self.is_named(f, name, key)).map(|f| self.value(f))
    }

    /// All fields as (name as written, value).
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
    parse_headers_where(block, |_| true)
}

/// Parses a header block keeping only the fields whose name (as written) `keep`
/// accepts: the others (and their continuation lines) are passed over, not unfolded.
/// The fields kept are those [`parse_headers`] gives of these names.
pub fn parse_headers_where(block: &[u8], keep: impl Fn(&[u8]) -> bool) -> Headers {
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
    let mut fields: Vec<Field> = Vec::with_capacity((end / 40 + 4).min(MAX_FIELDS));
    let mut folded = String::new();
    // Whether a value piece starts or ends with a byte that `str::trim` may take
    // beyond ASCII white space (a vertical tab, a non-ASCII byte).
    let mut odd_ends = false;
    let mut names = [0u64; 4];
    // Fields seen (kept or not: the cap counts them all), and whether the last was kept
    // (its continuation lines are its own).
    let (mut seen, mut last_kept) = (0usize, true);
    let b = buf.as_bytes();
    let mut ls = 0;
    // Line by line: a line is walked once, its name byte by byte, the rest of it by
    // one search for its end. Every cut is at an ASCII byte.
    while ls < end {
        let first = b.get(ls).copied().unwrap_or(b'\n');
        if first == b' ' || first == b'\t' {
            let (start, le) = (ls, line_end(b, ls + 1));
            let (s, e) = trim_bounds(b, ls, le);
            ls = le + 1;
            if !last_kept {
                continue;
            }
            let Some(last) = fields.last_mut() else { continue };
            // The value of the last field is unfolded at the end of `folded`.
            let (vs, ve) = ((last.value_start & !FOLDED) as usize, (last.value_end & !FOLDED) as usize);
            if ve - vs < 16 * 1024 {
                if last.value_start & FOLDED == 0 {
                    if folded.capacity() == 0 {
                        // Unfolded values hold little more than the rest of the block.
                        folded.reserve(end - start + 256);
                    }
                    let at = folded.len();
                    folded.push_str(buf.get(vs..ve).unwrap_or(""));
                    last.value_start = at as u32 | FOLDED;
                }
                folded.push(' ');
                let piece = buf.get(s..e).unwrap_or("");
                odd_ends |= odd_end(piece);
                folded.push_str(piece);
                last.value_end = folded.len() as u32 | FOLDED;
            }
            continue;
        }
        // The name runs to the first ':' and holds only printable ASCII: the first
        // byte that may not stand in a name must be that ':' (an mbox "From " line at
        // the top stops at its space). Eight bytes a step; its first eight make the key.
        let mut i = ls;
        loop {
            let Some(w) = word(b, i) else {
                // Fewer than eight bytes left: one at a time.
                while b.get(i).is_some_and(|&c| c > 0x20 && c < 0x7f && c != b':') {
                    i += 1;
                }
                break;
            };
            let stops = not_name_bytes(w);
            if stops != 0 {
                i += (stops.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        if i == ls || b.get(i) != Some(&b':') {
            ls = line_end(b, i) + 1;
            continue;
        }
        if seen >= MAX_FIELDS {
            break;
        }
        seen += 1;
        last_kept = keep(b.get(ls..i).unwrap_or(&[]));
        if !last_kept {
            ls = line_end(b, i + 1) + 1;
            continue;
        }
        let le = line_end(b, i + 1);
        let (s, e) = trim_bounds(b, i + 1, le);
        odd_ends |= s < e && (odd_byte(b.get(s)) || odd_byte(b.get(e - 1)));
        // A name of fewer than eight bytes near the end of the block has no whole word.
        let head = word(b, ls).unwrap_or_else(|| short_word(b, ls, i));
        let key = key_of(head, i - ls);
        let (word, bit) = name_bit(key, i - ls);
        if let Some(w) = names.get_mut(word) {
            *w |= bit;
        }
        fields.push(Field { name_start: ls as u32, name_end: i as u32, value_start: s as u32, value_end: e as u32, key });
        ls = le + 1;
    }
    let mut h = Headers { buf, folded, fields, names };
    if odd_ends {
        h.trim_unicode_ends();
    }
    h
}

/// The bytes `from..to` (fewer than eight) of `b` as a zero-padded word.
fn short_word(b: &[u8], from: usize, to: usize) -> u64 {
    let mut chunk = [0u8; 8];
    for (c, &x) in chunk.iter_mut().zip(b.get(from..to).unwrap_or(&[])) {
        *c = x;
    }
    u64::from_le_bytes(chunk)
}

/// Where the line holding byte `from` ends: its '\n', or the end of `b`.
fn line_end(b: &[u8], from: usize) -> usize {
    match b.get(from..) {
        Some(rest) => memchr::memchr(b'\n', rest).map_or(b.len(), |n| from + n),
        None => b.len(),
    }
}

/// `start..end` of `b` without leading and trailing ASCII white space (a CR before
/// the line end is white space).
fn trim_bounds(b: &[u8], start: usize, end: usize) -> (usize, usize) {
    let mut s = start;
    while s < end && b.get(s).is_some_and(u8::is_ascii_whitespace) {
        s += 1;
    }
    let mut e = end;
    while e > s && b.get(e - 1).is_some_and(u8::is_ascii_whitespace) {
        e -= 1;
    }
    (s, e)
}

/// Whether `str::trim` may take this end byte of an ASCII-trimmed value.
fn odd_byte(b: Option<&u8>) -> bool {
    b.is_some_and(|&b| b >= 0x80 || b == 0x0b)
}

/// Whether a value piece starts or ends with a byte `str::trim` may take.
fn odd_end(piece: &str) -> bool {
    odd_byte(piece.as_bytes().first()) || odd_byte(piece.as_bytes().last())
}

impl Headers {
    /// Values are trimmed of ASCII white space already; what else `str::trim` takes
    /// (vertical tab, Unicode spaces) is taken here, once, when a value may hold it.
    fn trim_unicode_ends(&mut self) {
        for f in &mut self.fields {
            let buf = if f.value_start & FOLDED != 0 { &self.folded } else { &self.buf };
            let (vs, ve) = ((f.value_start & !FOLDED) as usize, (f.value_end & !FOLDED) as usize);
            let v = buf.get(vs..ve).unwrap_or("");
            // A value whose ends are plain keeps them (a folded value may end with the
            // space an empty continuation line adds).
            if !odd_end(v) {
                continue;
            }
            let t = v.trim();
            if t.len() != v.len() {
                let s = vs + (t.as_ptr() as usize - v.as_ptr() as usize);
                let flag = f.value_start & FOLDED;
                f.value_start = s as u32 | flag;
                f.value_end = (s + t.len()) as u32 | flag;
            }
        }
    }
}



#[cfg(test)]
mod tests;
