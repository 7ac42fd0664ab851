//! Input files → messages: which files under the paths given are read (mbox files,
//! maildirs, directories of .eml files), and the streaming split of a file into
//! messages (mbox "From " lines), with memory bounded by the largest message.

use super::IngestError;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// A file to read.
#[derive(Debug, Clone)]
pub struct Input {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes when listed.
    pub size: u64,
    /// Found by walking a directory: read only if it begins like a message or an mbox
    /// (checked when it is read, so each file is opened once).
    pub walked: bool,
}

/// The files to read under `paths`: files named are taken as given; directories are
/// walked (sorted, hidden entries and maildir `tmp/` skipped).
pub fn collect_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, IngestError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|error| IngestError::Io { path: p.clone(), error })?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(Input { path: p.clone(), size: meta.len(), walked: false });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Input>) -> Result<(), IngestError> {
    let io = |error| IngestError::Io { path: dir.to_owned(), error };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            // Maildir: tmp/ holds deliveries in progress.
            if name != "tmp" || !dir.join("cur").is_dir() {
                walk(&path, out)?;
            }
        } else if meta.is_file() {
            out.push(Input { path, size: meta.len(), walked: true });
        }
    }
    Ok(())
}

/// True when a file's first bytes are an mbox "From " line or an RFC 5322 header field.
pub fn looks_like_message(head: &[u8]) -> bool {
    let head = head.get(..head.len().min(256)).unwrap_or_default();
    if head.starts_with(b"From ") {
        return true;
    }
    let name_len = head.iter().take_while(|&&b| b > b' ' && b < 127 && b != b':').count();
    name_len > 0 && head.get(name_len) == Some(&b':')
}

/// A whole file read at once: a single message, or the messages of a small mbox.
pub fn split_whole(data: Vec<u8>, max_message_bytes: usize) -> Vec<ReadMessage> {
    if data.starts_with(b"From ") {
        let mut reader = MessageReader::new(&data[..], max_message_bytes);
        let mut out = Vec::new();
        // Reading from memory cannot fail.
        while let Ok(Some(m)) = reader.next_message() {
            out.push(m);
        }
        return out;
    }
    // What MessageReader makes of a file that is not an mbox: all of it, one message.
    if data.len() > max_message_bytes {
        vec![ReadMessage::TooLarge(data.len() as u64)]
    } else if data.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        vec![ReadMessage::Message(data)]
    }
}

/// One message read from a file, or why it could not be.
pub enum ReadMessage {
    /// The message bytes (mbox "From " separator removed).
    Message(Vec<u8>),
    /// A message over the size limit (its size in bytes), skipped.
    TooLarge(u64),
}

/// Splits a stream into messages: an mbox (first line "From ") at each line starting
/// with "From ", anything else as one message. Memory is bounded by the largest
/// message kept plus 64 KiB.
pub struct MessageReader<R: BufRead> {
    r: R,
    mbox: Option<bool>,
    at_line_start: bool,
    /// The message being read; lines are read straight into it (one copy of each byte).
    current: Vec<u8>,
    current_len: u64,
    max: usize,
    done: bool,
}

/// Longest piece of a line read at once (a longer line is read in pieces).
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Appends bytes of `r` to `buf` up to and including the next `\n`, at most `limit`
/// bytes; returns how many (0 at the end). `read_until` on a `Take`, with the memchr
/// crate's search instead of the standard library's byte loop.
fn read_line_bounded<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<usize> {
    let mut n = 0;
    while n < limit {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let avail = available.get(..available.len().min(limit - n)).unwrap_or_default();
        if avail.is_empty() {
            break;
        }
        let (used, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        buf.extend_from_slice(avail.get(..used).unwrap_or_default());
        r.consume(used);
        n += used;
        if done {
            break;
        }
    }
    Ok(n)
}

/// What a message buffer is shrunk to when a message over the limit is dropped. A new
/// buffer starts empty: in an mbox a message mostly arrives in one copy of its buffered
/// lines, so it is allocated at its size (not 16 KiB for a 4 KB bounce, held in the
/// queues until a worker is done with it).
const START_CAPACITY: usize = 16 * 1024;

impl<R: BufRead> MessageReader<R> {
    /// A reader of messages over `r`, skipping those over `max_message_bytes`.
    pub fn new(r: R, max_message_bytes: usize) -> Self {
        MessageReader {
            r,
            mbox: None,
            at_line_start: true,
            current: Vec::new(),
            current_len: 0,
            max: max_message_bytes,
            done: false,
        }
    }

    fn take_current(&mut self) -> Option<ReadMessage> {
        let len = std::mem::take(&mut self.current_len);
        let msg = std::mem::take(&mut self.current);
        if len > self.max as u64 {
            return Some(ReadMessage::TooLarge(len));
        }
        // Blank space between mbox messages is not a message.
        (!msg.iter().all(u8::is_ascii_whitespace)).then_some(ReadMessage::Message(msg))
    }

    /// In an mbox, takes every whole line buffered before the next line starting with
    /// "From " in one copy (one search per message rather than one per line); false
    /// when the line-by-line path must decide (a possible separator first, no line end
    /// buffered, or not an mbox).
    fn take_buffered_lines(&mut self) -> std::io::Result<bool> {
        if self.mbox != Some(true) {
            return Ok(false);
        }
        let avail = match self.r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        };
        // A line starting here may be a separator (or its first bytes): not for this path.
        if self.at_line_start && (avail.len() < 5 || avail.starts_with(b"From ")) {
            return Ok(false);
        }
        let end = match memchr::memmem::find(avail, b"\nFrom ") {
            Some(i) => i + 1,
            None => match memchr::memrchr(b'\n', avail) {
                Some(i) => i + 1,
                None => return Ok(false),
            },
        };
        let Some(lines) = avail.get(..end) else { return Ok(false) };
        self.current.extend_from_slice(lines);
        self.r.consume(end);
        self.at_line_start = true;
        self.current_len += end as u64;
        if self.current_len > self.max as u64 {
            self.current.clear();
            self.current.shrink_to(START_CAPACITY);
        }
        Ok(true)
    }

    /// The next message, or None at the end of the stream.
    pub fn next_message(&mut self) -> std::io::Result<Option<ReadMessage>> {
        while !self.done {
            if self.take_buffered_lines()? {
                continue;
            }
            let before = self.current.len();
            // A bounded read: a file with no line ends must not be read whole.
            let n = read_line_bounded(&mut self.r, &mut self.current, MAX_LINE_BYTES)?;
            if n == 0 {
                self.done = true;
                break;
            }
            let line = self.current.get(before..).unwrap_or_default();
            let line_start = self.at_line_start;
            self.at_line_start = line.last() == Some(&b'\n');
            let separator = line_start && line.starts_with(b"From ");
            let is_mbox = *self.mbox.get_or_insert(separator);
            if separator && is_mbox {
                self.current.truncate(before);
                if let Some(m) = self.take_current() {
                    return Ok(Some(m));
                }
                continue;
            }
            self.current_len += n as u64;
            if self.current_len > self.max as u64 {
                // Over the limit: the rest is counted, not kept.
                self.current.clear();
                self.current.shrink_to(START_CAPACITY);
            }
        }
        Ok(self.take_current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn split(data: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut r = MessageReader::new(BufReader::with_capacity(7, data), max);
        let mut out = Vec::new();
        while let Some(m) = r.next_message().unwrap() {
            out.push(match m {
                ReadMessage::Message(m) => Some(m),
                ReadMessage::TooLarge(_) => None,
            });
        }
        out
    }

    #[test]
    fn mbox_and_single_messages() {
        let m = split(b"From a@b Mon\nSubject: a\n\nx\n\nFrom c@d Tue\r\nSubject: b\r\n\r\ny\r\n", 1000);
        assert_eq!(m, vec![Some(b"Subject: a\n\nx\n\n".to_vec()), Some(b"Subject: b\r\n\r\ny\r\n".to_vec())]);
        // Not an mbox: a body line starting with "From " does not split it.
        let m = split(b"Subject: a\n\nFrom here on\n", 1000);
        assert_eq!(m, vec![Some(b"Subject: a\n\nFrom here on\n".to_vec())]);
        assert!(split(b"", 1000).is_empty());
    }

    #[test]
    fn whole_file_split_matches_the_streaming_split() {
        let inputs: [&[u8]; 6] = [
            b"From a@b Mon\nSubject: a\n\nx\n\nFrom c@d Tue\r\nSubject: b\r\n\r\ny\r\n",
            b"Subject: a\n\nFrom here on\n",
            b"",
            b" \n\t\n",
            b"Subject: big\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
            b"From a\nSubject: big\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nFrom b\n\nok\n",
        ];
        for data in inputs {
            let whole: Vec<_> = split_whole(data.to_vec(), 40)
                .into_iter()
                .map(|m| match m {
                    ReadMessage::Message(m) => Some(m),
                    ReadMessage::TooLarge(_) => None,
                })
                .collect();
            assert_eq!(whole, split(data, 40), "{}", String::from_utf8_lossy(data));
        }
    }

    /// The split an mbox reader must make, written the slow, obvious way.
    fn split_by_lines(data: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
        let mbox = lines.first().is_some_and(|l| l.starts_with(b"From "));
        let mut out = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut flush = |cur: &mut Vec<u8>| {
            if cur.len() > max {
                out.push(None);
            } else if !cur.iter().all(u8::is_ascii_whitespace) {
                out.push(Some(cur.clone()));
            }
            cur.clear();
        };
        for l in lines {
            if mbox && l.starts_with(b"From ") {
                flush(&mut cur);
            } else {
                cur.extend_from_slice(l);
            }
        }
        flush(&mut cur);
        out
    }

    #[test]
    fn split_is_the_same_whatever_the_buffer_size() {
        let inputs: [&[u8]; 7] = [
            b"From a@b Mon\nSubject: a\n\nx\n\nFrom c@d Tue\r\nSubject: b\r\n\r\ny\r\n",
            b"From a\nX: 1\n\nbody From here\n>From quoted\nFrom\nFro\nFrom b\n\nlast line without end",
            b"From a\n\nFrom b\nFrom c\n\n\nFrom d\nS: 1\n\nFrom",
            b"Subject: a\n\nFrom here on\nFrom x\n",
            b"From a\nSubject: big\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nFrom b\n\nok\n",
            b"From a\nS: 1\n\nFrom b\nS: 2\n\nx\nFrom c\nS: 3\n\nyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\n",
            b"",
        ];
        for data in inputs {
            let want = split_by_lines(data, 40);
            for cap in [1, 2, 3, 5, 6, 7, 11, 16, 64, 4096] {
                let mut r = MessageReader::new(BufReader::with_capacity(cap, data), 40);
                let mut got = Vec::new();
                while let Some(m) = r.next_message().unwrap() {
                    got.push(match m {
                        ReadMessage::Message(m) => Some(m),
                        ReadMessage::TooLarge(_) => None,
                    });
                }
                assert_eq!(got, want, "buffer {cap}: {}", String::from_utf8_lossy(data));
            }
        }
    }

    #[test]
    fn message_or_mbox_heads() {
        assert!(looks_like_message(b"From x Mon\n"));
        assert!(looks_like_message(b"Return-Path: <>\n"));
        assert!(!looks_like_message(b"#!/bin/sh\n"));
        assert!(!looks_like_message(b""));
    }

    #[test]
    fn too_large_message_is_skipped_not_buffered() {
        let mut data = b"From a\nSubject: big\n\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 200_000));
        data.extend_from_slice(b"\nFrom b\nSubject: small\n\nok\n");
        let m = split(&data, 1000);
        assert_eq!(m, vec![None, Some(b"Subject: small\n\nok\n".to_vec())]);
    }
}
