//! The DATA phase (RFC 5321 4.5.2): the message up to the lone dot, dot-unstuffed,
//! with size and line-length limits. Pure and incremental: the session feeds whatever
//! bytes it has and gets back how many it consumed and, at the end, the outcome. Past a
//! limit the rest of the message is read and dropped, so the connection stays in sync.

/// Body capacity a message starts with.
const INITIAL_BODY_BYTES: usize = 16 << 10;

/// How DATA ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEnd {
    /// The whole message (line ends as received).
    Complete(Vec<u8>),
    /// Larger than the size limit.
    TooBig,
    /// A line was longer than the line limit.
    LineTooLong,
}

/// Reads one message body incrementally.
#[derive(Debug)]
pub struct DataReader {
    max_message_bytes: usize,
    max_line_bytes: usize,
    body: Vec<u8>,
    /// The current line so far, when it arrived in pieces.
    partial: Vec<u8>,
    /// Bytes of the current partial line seen (partial may stop growing past the limit).
    partial_len: usize,
    too_big: bool,
    line_too_long: bool,
}

impl DataReader {
    /// A reader with these limits (line length excludes the line end).
    pub fn new(max_message_bytes: usize, max_line_bytes: usize) -> DataReader {
        DataReader {
            max_message_bytes,
            max_line_bytes,
            // Most bounces fit: no regrowing the body line by line (up to ~12 reallocations).
            body: Vec::with_capacity(INITIAL_BODY_BYTES.min(max_message_bytes)),
            partial: Vec::new(),
            partial_len: 0,
            too_big: false,
            line_too_long: false,
        }
    }

    /// Consumes bytes of `input`; returns how many were used and, once the terminating
    /// dot line was read, the outcome. Bytes after the dot line are left unconsumed.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<DataEnd>) {
        let mut used = 0;
        while used < input.len() {
            let rest = input.get(used..).unwrap_or_default();
            match memchr::memchr(b'\n', rest) {
                Some(nl) => {
                    let line_end = nl + 1;
                    used += line_end;
                    let piece = rest.get(..line_end).unwrap_or_default();
                    let done = if self.partial_len == 0 {
                        self.line(piece)
                    } else {
                        let mut line = std::mem::take(&mut self.partial);
                        let keep = self.max_line_bytes.saturating_add(2).saturating_sub(line.len()).min(piece.len());
                        line.extend_from_slice(piece.get(..keep).unwrap_or_default());
                        let total = self.partial_len + piece.len();
                        self.partial_len = 0;
                        let done = if total > line.len() { self.overlong() } else { self.line(&line) };
                        line.clear();
                        self.partial = line;
                        done
                    };
                    if done {
                        return (used, Some(self.finish()));
                    }
                }
                None => {
                    used += rest.len();
                    self.partial_len += rest.len();
                    let room = self.max_line_bytes.saturating_add(2).saturating_sub(self.partial.len());
                    self.partial.extend_from_slice(rest.get(..room.min(rest.len())).unwrap_or_default());
                }
            }
        }
        (used, None)
    }

    /// The line was cut because it exceeded any sane length.
    fn overlong(&mut self) -> bool {
        self.line_too_long = true;
        false
    }

    /// Handles one complete line (with its LF); true at the terminating dot.
    fn line(&mut self, line: &[u8]) -> bool {
        if line == b".\r\n" || line == b".\n" {
            return true;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.len() > self.max_line_bytes {
            self.line_too_long = true;
        }
        let line = match line.first() {
            Some(b'.') => line.get(1..).unwrap_or_default(),
            _ => line,
        };
        if self.too_big || self.line_too_long {
            return false;
        }
        if self.body.len() + line.len() > self.max_message_bytes {
            self.too_big = true;
            self.body = Vec::new();
            return false;
        }
        self.body.extend_from_slice(line);
        false
    }

    fn finish(&mut self) -> DataEnd {
        if self.too_big {
            DataEnd::TooBig
        } else if self.line_too_long {
            DataEnd::LineTooLong
        } else {
            DataEnd::Complete(std::mem::take(&mut self.body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]], max: usize, line: usize) -> (usize, Option<DataEnd>) {
        let mut r = DataReader::new(max, line);
        let mut total = 0;
        for c in chunks {
            let (n, end) = r.feed(c);
            total += n;
            if end.is_some() {
                return (total, end);
            }
        }
        (total, None)
    }

    #[test]
    fn unstuffs_and_stops_at_dot() {
        let input = b"a\r\n..b\r\n.\r\nNEXT";
        let (n, end) = read_all(&[input], 100, 100);
        assert_eq!(n, input.len() - 4);
        assert_eq!(end, Some(DataEnd::Complete(b"a\r\n.b\r\n".to_vec())));
    }

    #[test]
    fn any_split_gives_the_same_result() {
        let input: &[u8] = b"Subject: x\r\n\r\n..dot\r\nline\r\n.x\r\n.\r\n";
        let whole = read_all(&[input], 1000, 100);
        for i in 0..input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(read_all(&[a, b], 1000, 100), whole, "split at {i}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(read_all(&[b"0123456789\r\n.\r\n"], 5, 100).1, Some(DataEnd::TooBig));
        assert_eq!(read_all(&[b"0123456789\r\nok\r\n.\r\n"], 100, 5).1, Some(DataEnd::LineTooLong));
        assert_eq!(read_all(&[b"0123", b"456789\r\n.\r\n"], 100, 5).1, Some(DataEnd::LineTooLong));
        assert_eq!(read_all(&[b"01234\r\n.\r\n"], 100, 5).1, Some(DataEnd::Complete(b"01234\r\n".to_vec())));
    }

    #[test]
    fn bare_lf_terminator() {
        assert_eq!(read_all(&[b"a\n.\n"], 100, 100).1, Some(DataEnd::Complete(b"a\n".to_vec())));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_split_does_not_matter(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), cut in 0usize..400, line in 1usize..50) {
            let whole = read_all(&[&input], 200, line);
            let cut = cut.min(input.len());
            let (a, b) = input.split_at(cut);
            proptest::prop_assert_eq!(read_all(&[a, b], 200, line), whole);
        }
    }
}
