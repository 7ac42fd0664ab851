//! Splits a file that may hold several messages in mbox form (lines starting with
//! "From " separate them) into single messages.

/// Splits `data` into messages; a file without mbox separators is one message.
pub fn split_messages(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        // A separator starts the file or follows an empty line (mboxrd/mboxo writers
        // escape body lines that begin with "From ").
        let after_blank = pos == 0 || data[..pos].ends_with(b"\n\n") || data[..pos].ends_with(b"\n\r\n");
        if rest.starts_with(b"From ") && (after_blank || is_separator_line(rest)) {
            starts.push(pos);
        }
        match memchr::memchr(b'\n', rest) {
            Some(n) => pos += n + 1,
            None => break,
        }
    }
    if starts.is_empty() {
        return vec![data];
    }
    let mut out = Vec::with_capacity(starts.len());
    if starts[0] > 0 && !data[..starts[0]].iter().all(|b| b.is_ascii_whitespace()) {
        out.push(&data[..starts[0]]);
    }
    for (i, &s) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        // Drop the separator line itself.
        let body_start = memchr::memchr(b'\n', &data[s..end]).map(|n| s + n + 1).unwrap_or(end);
        out.push(&data[body_start..end]);
    }
    out
}

/// Whether a line has the shape of an mbox separator: "From SENDER DATE" where the
/// date holds a time (hh:mm) and a four-digit year.
fn is_separator_line(rest: &[u8]) -> bool {
    let line = rest.get(..memchr::memchr(b'\n', rest).unwrap_or(rest.len())).unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace().skip(1);
    let Some(_sender) = words.next() else { return false };
    let rest: Vec<&str> = words.collect();
    let has_time = rest.iter().any(|w| w.len() >= 5 && w.as_bytes().get(2) == Some(&b':') && w.bytes().take(2).all(|b| b.is_ascii_digit()));
    let has_year = rest.iter().any(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()));
    has_time && has_year
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_message_without_separator() {
        assert_eq!(split_messages(b"Subject: a\n\nbody\n").len(), 1);
    }

    #[test]
    fn two_messages() {
        let m = split_messages(b"From a@b Mon Jan 1\nSubject: a\n\nx\nFrom inside the body\n\nFrom c@d Tue\nSubject: b\n\ny\n");
        assert_eq!(m.len(), 2);
        assert!(m[0].starts_with(b"Subject: a"));
        assert!(m[1].starts_with(b"Subject: b"));
    }
}
