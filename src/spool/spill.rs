//! Records the applier reads back from the segment files instead of memory. While the
//! store keeps up, the flusher hands each durable group to the applier in memory; once
//! more than `SpoolOptions::max_held_bytes` of payload waits there, it hands over only
//! where the group lies on disk, so a store that falls behind (a burst at 32 sessions,
//! a long checkpoint) costs disk, not memory.
//!
//! The read bypasses the page cache, as the writes do: the flusher may be rewriting the
//! block a span ends in (its partly filled last block, with the next group), and a
//! buffered read of that page racing a direct write would leave the kernel unable to
//! drop a stale page. Where the writes are buffered, so are the reads.

use super::direct::{self, aligned_start, ALIGN};
use super::record::{self, Record};
use super::segment;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::ops::Range;
use std::path::Path;

/// A run of records, one after another in one segment, left on disk for the applier.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Span {
    /// The segment's number.
    pub segment: u64,
    /// Where the first record's frame starts in the segment.
    pub offset: u64,
    /// Bytes of frames in the run.
    pub len: usize,
    /// Sequence number of the first record (the rest follow without a gap).
    pub first: u64,
    /// Records in the run.
    pub count: usize,
    /// Their payload bytes (what the backlog counts).
    pub payload_bytes: usize,
}

impl Span {
    /// Sequence number of the last record.
    pub fn last(&self) -> u64 {
        self.first + self.count as u64 - 1
    }

    /// Extends this span by `next` when it follows on in the same segment and the two
    /// hold at most `max_count` records and `max_bytes` of payload together; false
    /// (nothing changed) otherwise.
    pub fn join(&mut self, next: &Span, max_count: usize, max_bytes: usize) -> bool {
        let follows = next.segment == self.segment
            && next.offset == self.offset + self.len as u64
            && next.first == self.last() + 1;
        if !follows || self.count + next.count > max_count || self.payload_bytes + next.payload_bytes > max_bytes {
            return false;
        }
        self.len += next.len;
        self.count += next.count;
        self.payload_bytes += next.payload_bytes;
        true
    }
}

/// Reads spans back, keeping the last segment it opened and its buffer.
#[derive(Default)]
pub(super) struct Reader {
    open: Option<(u64, File, bool)>,
    buf: Vec<u8>,
}

/// Largest read buffer kept between spans (a span of one large message may need more).
const BUFFER_KEEP_BYTES: usize = 8 << 20;

impl Reader {
    /// Closes the segment it keeps open (its disk space goes once the flusher deletes it).
    pub fn close(&mut self) {
        self.open = None;
    }

    /// The records of `span`, checked: exactly its sequence numbers, in order, each
    /// with a valid checksum.
    pub fn read(&mut self, dir: &Path, span: &Span) -> std::io::Result<Vec<Record>> {
        let range = self.bytes(dir, span)?;
        let records = record::read_all(self.buf.get(range).unwrap_or_default());
        if self.buf.len() > BUFFER_KEEP_BYTES {
            self.buf = Vec::new();
        }
        let expected = span.first..=span.last();
        if records.len() != span.count || !records.iter().map(|r| r.seq).eq(expected) {
            return Err(std::io::Error::other(format!(
                "spool segment {}: records {}..={} not all readable at {}",
                span.segment,
                span.first,
                span.last(),
                span.offset
            )));
        }
        Ok(records)
    }

    /// Reads the frame bytes of `span` into the buffer; returns where they are in it.
    fn bytes(&mut self, dir: &Path, span: &Span) -> std::io::Result<Range<usize>> {
        if self.open.as_ref().is_none_or(|(n, _, _)| *n != span.segment) {
            let (file, is_direct) = open(&segment::path(dir, span.segment))?;
            self.open = Some((span.segment, file, is_direct));
        }
        if let Some((_, file, true)) = &self.open {
            match read_direct(file, span, &mut self.buf) {
                Err(e) if direct::is_unsupported(&e) => {
                    self.open = Some((span.segment, File::open(segment::path(dir, span.segment))?, false));
                }
                read => return read,
            }
        }
        let Some((_, file, _)) = &self.open else { return Err(std::io::Error::other("spool: segment not open")) };
        grow(&mut self.buf, span.len);
        file.read_exact_at(self.buf.get_mut(..span.len).ok_or_else(out_of_range)?, span.offset)?;
        Ok(0..span.len)
    }
}

/// Makes `buf` at least `len` bytes long (zeros), keeping its memory otherwise.
fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

/// Reads the frame bytes of `span` with `O_DIRECT` (whole aligned blocks into aligned
/// memory inside `buf`); returns where they are in `buf`.
fn read_direct(file: &File, span: &Span, buf: &mut Vec<u8>) -> std::io::Result<Range<usize>> {
    let from = span.offset - span.offset % ALIGN as u64;
    let end = span.offset + span.len as u64;
    let padded = (end - from).next_multiple_of(ALIGN as u64) as usize;
    grow(buf, padded + ALIGN);
    let start = aligned_start(buf);
    let area = buf.get_mut(start..start + padded).ok_or_else(out_of_range)?;
    // A segment that grew past its zero-filled size ends mid-block: a short read
    // at the end of the file is fine as long as it covers the span.
    let mut got = 0;
    while (got as u64) < end - from {
        let n = file.read_at(area.get_mut(got..).ok_or_else(out_of_range)?, from + got as u64)?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        got += n;
    }
    let skip = start + (span.offset - from) as usize;
    Ok(skip..skip + span.len)
}

/// Opens a segment for reading: directly where the writes are direct; the flag says which.
fn open(path: &Path) -> std::io::Result<(File, bool)> {
    if direct::enabled() {
        match File::options().read(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => return Ok((f, true)),
            Err(e) if direct::is_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((File::open(path)?, false))
}

fn out_of_range() -> std::io::Error {
    std::io::Error::other("spool: read buffer out of range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::segment::Segment;

    /// Writes groups of records (sizes of their payloads) to a fresh segment of
    /// `capacity` zero bytes, one durable append each; returns the directory and each
    /// group's span.
    fn written(groups: &[&[usize]], capacity: u64) -> (tempfile::TempDir, Vec<Span>) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create(dir.path(), 7, capacity).unwrap();
        let (mut seq, mut spans) = (1, Vec::new());
        for sizes in groups {
            let mut buf = Vec::new();
            for &n in sizes.iter() {
                record::frame(&mut buf, seq, &payload(seq, n));
                seq += 1;
            }
            let first = seq - sizes.len() as u64;
            spans.push(Span { segment: 7, offset: s.written, len: buf.len(), first, count: sizes.len(), payload_bytes: sizes.iter().sum() });
            s.append(&buf).unwrap();
        }
        (dir, spans)
    }

    /// A payload of exactly `n` bytes (n >= 16, its header), received at `seq`, whose
    /// message is one letter repeated.
    fn payload(seq: u64, n: usize) -> Vec<u8> {
        let mut p = record::encode_payload(seq as i64, "", &[], b"");
        p.resize(n, b'a' + (seq % 26) as u8);
        p
    }

    #[test]
    fn spans_read_back_whole_wherever_they_start_and_end() {
        // Groups that start and end mid-block, cross 4 KiB boundaries, and run past the
        // zero-filled size (the file grows, so the last block ends the file).
        let groups: [&[usize]; 5] = [&[100], &[4000, 33], &[5000], &[70, 80, 90], &[9000]];
        let (dir, spans) = written(&groups, 12_288);
        let mut reader = Reader::default();
        for span in spans.iter().rev() {
            let records = reader.read(dir.path(), span).unwrap();
            assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), (span.first..=span.last()).collect::<Vec<_>>());
            for r in &records {
                let size = groups.iter().flat_map(|g| g.iter()).nth(r.seq as usize - 1).unwrap();
                assert_eq!(r.received_at, r.seq as i64);
                assert!(r.message.iter().all(|&b| b == b'a' + (r.seq % 26) as u8), "record {} intact", r.seq);
                assert_eq!(r.message.len() + 16, *size, "record {}", r.seq);
            }
        }
        // Joined, the runs read back as one.
        let mut all = spans[0].clone();
        for s in &spans[1..] {
            assert!(all.join(s, 100, usize::MAX));
        }
        assert_eq!(reader.read(dir.path(), &all).unwrap().len(), 8);
    }

    #[test]
    fn a_span_that_does_not_hold_its_records_is_an_error() {
        let (dir, spans) = written(&[&[100], &[200]], 1 << 20);
        let mut reader = Reader::default();
        let wrong = Span { first: 5, ..spans[1].clone() };
        assert!(reader.read(dir.path(), &wrong).is_err(), "sequence numbers are checked");
        let short = Span { len: spans[1].len - 1, ..spans[1].clone() };
        assert!(reader.read(dir.path(), &short).is_err(), "a cut record is not taken");
        let gone = Span { segment: 8, ..spans[0].clone() };
        assert!(reader.read(dir.path(), &gone).is_err(), "a missing segment");
        assert_eq!(reader.read(dir.path(), &spans[0]).unwrap().len(), 1);
    }

    #[test]
    fn only_runs_that_follow_on_in_one_segment_join_up_to_the_limit() {
        let a = Span { segment: 1, offset: 0, len: 100, first: 1, count: 2, payload_bytes: 60 };
        let next = Span { segment: 1, offset: 100, len: 50, first: 3, count: 1, payload_bytes: 30 };
        for other in [
            Span { segment: 2, ..next.clone() },
            Span { offset: 101, ..next.clone() },
            Span { first: 4, ..next.clone() },
        ] {
            assert!(!a.clone().join(&other, 10, 1000));
        }
        assert!(!a.clone().join(&next, 2, 1000), "three records would pass a limit of two");
        assert!(!a.clone().join(&next, 3, 89), "90 bytes would pass a limit of 89");
        let mut joined = a.clone();
        assert!(joined.join(&next, 3, 90));
        assert_eq!(joined, Span { segment: 1, offset: 0, len: 150, first: 1, count: 3, payload_bytes: 90 });
    }
}
