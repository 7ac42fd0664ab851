//! The spool's record format: one accepted LMTP transaction (envelope, time, message
//! bytes) framed with a sequence number and a CRC-32, so a scan of a segment finds
//! every whole record and stops at the first torn or zeroed one. Pure: no I/O.
//!
//! Layout, little-endian: `magic u32 | payload length u32 | seq u64 | crc32 u32 |
//! payload`, where the CRC covers the seq and the payload, and the payload is
//! `received_at i64 | sender (u32 length + bytes) | recipient count u32 | each
//! recipient (u32 length + bytes) | message (the rest)`.

/// "RBS1": marks the start of a record (a zeroed or torn tail never starts with it).
const MAGIC: u32 = u32::from_le_bytes(*b"RBS1");

/// Bytes before the payload.
pub const HEADER_BYTES: usize = 20;

/// One accepted transaction, as spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the spool (1, 2, ...; never reused).
    pub seq: u64,
    /// When the message was received (Unix seconds).
    pub received_at: i64,
    /// Envelope sender ("" for the null sender).
    pub sender: String,
    /// Accepted envelope recipients.
    pub recipients: Vec<String>,
    /// The message bytes as received (dot-unstuffed).
    pub message: Vec<u8>,
}

/// Encodes the payload of a record (everything but the header, which the spool
/// writer adds once it knows the sequence number).
pub fn encode_payload(
    received_at: i64,
    sender: &str,
    recipients: &[String],
    message: &[u8],
) -> Vec<u8> {
    let text: usize = sender.len() + recipients.iter().map(|r| r.len() + 4).sum::<usize>();
    let mut out = Vec::with_capacity(16 + text + message.len());
    out.extend_from_slice(&received_at.to_le_bytes());
    put_str(&mut out, sender);
    out.extend_from_slice(&(recipients.len() as u32).to_le_bytes());
    for r in recipients {
        put_str(&mut out, r);
    }
    out.extend_from_slice(message);
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends a whole record (header and payload) with sequence number `seq` to `out`.
pub fn frame(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The CRC-32 of a record: over its sequence number and its payload.
fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

/// Reads the record at the start of `bytes`: the record and its framed length, or
/// `None` where no whole, intact record starts (the end of what was written).
pub fn read(bytes: &[u8]) -> Option<(Record, usize)> {
    let mut r = Reader(bytes);
    if r.u32()? != MAGIC {
        return None;
    }
    let len = r.u32()? as usize;
    let seq = r.u64()?;
    let crc = r.u32()?;
    let payload = r.take(len)?;
    if checksum(seq, payload) != crc {
        return None;
    }
    Some((decode_payload(seq, payload)?, HEADER_BYTES + len))
}

/// Decodes a payload written by [`encode_payload`] as the record numbered `seq`.
pub fn decode_payload(seq: u64, payload: &[u8]) -> Option<Record> {
    let mut p = Reader(payload);
    let received_at = i64::from_le_bytes(p.array()?);
    let sender = p.string()?;
    let count = p.u32()? as usize;
    // Each recipient takes at least its 4-byte length: a count beyond that is corrupt.
    if count > p.0.len() / 4 {
        return None;
    }
    let recipients = (0..count).map(|_| p.string()).collect::<Option<Vec<_>>>()?;
    Some(Record { seq, received_at, sender, recipients, message: p.0.to_vec() })
}

/// Every intact record in `bytes`, in order. Where no record starts (a torn group, a
/// group whose pages a failed flush lost, the zeroed tail) the scan looks for the next
/// intact one, so a damaged stretch never hides a later record; past such a stretch a
/// record counts only if it continues the sequence.
pub fn read_all(bytes: &[u8]) -> Vec<Record> {
    Records::new(bytes).collect()
}

/// The intact records of a byte slice one at a time, as [`read_all`] finds them.
pub struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
    last: Option<u64>,
}

impl<'a> Records<'a> {
    /// Starts at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Records<'a> {
        Records { bytes, pos: 0, last: None }
    }
}

impl Iterator for Records<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let magic = MAGIC.to_le_bytes();
        while let Some(rest) = self.bytes.get(self.pos..).filter(|r| !r.is_empty()) {
            if let Some((record, used)) = read(rest) {
                if self.last.is_none_or(|last| record.seq > last) {
                    self.last = Some(record.seq);
                    self.pos += used;
                    return Some(record);
                }
            }
            match rest.get(1..).and_then(|r| memchr::memmem::find(r, &magic)) {
                Some(i) => self.pos += 1 + i,
                None => break,
            }
        }
        self.pos = self.bytes.len();
        None
    }
}

/// A cursor over bytes that fails instead of running past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Record {
        Record {
            seq,
            received_at: 1_700_000_000 + seq as i64,
            sender: String::new(),
            recipients: vec!["bounces+a@example.test".into(), "b@example.test".into()],
            message: b"From: MAILER-DAEMON\r\n\r\nbody\r\n".to_vec(),
        }
    }

    fn framed(r: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        frame(
            &mut out,
            r.seq,
            &encode_payload(r.received_at, &r.sender, &r.recipients, &r.message),
        );
        out
    }

    #[test]
    fn round_trip_and_stop_at_zeros() {
        let mut bytes = framed(&sample(1));
        bytes.extend(framed(&sample(2)));
        bytes.extend([0u8; 64]);
        assert_eq!(read_all(&bytes), vec![sample(1), sample(2)]);
    }

    #[test]
    fn a_torn_or_flipped_record_is_dropped() {
        let mut bytes = framed(&sample(1));
        let second = framed(&sample(2));
        let whole = bytes.len() + second.len();
        bytes.extend(&second);
        for cut in 0..second.len() {
            assert_eq!(
                read_all(bytes.get(..whole - second.len() + cut).unwrap()).len(),
                1,
                "cut {cut}"
            );
        }
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(read_all(&bytes), vec![sample(1)]);
    }

    #[test]
    fn a_damaged_record_does_not_hide_the_ones_after_it() {
        let mut bytes = framed(&sample(1));
        let mut second = framed(&sample(2));
        second[30] ^= 0xff;
        bytes.extend(&second);
        bytes.extend([0u8; 100]);
        bytes.extend(framed(&sample(3)));
        // A stray copy of an earlier record (a message quoting one) is not taken again.
        bytes.extend(framed(&sample(1)));
        bytes.extend([0u8; 4096]);
        assert_eq!(read_all(&bytes), vec![sample(1), sample(3)]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = read_all(&bytes);
            // A valid record followed by noise still reads as that record.
            let mut with = framed(&sample(7));
            with.extend(&bytes);
            let read = read_all(&with);
            proptest::prop_assert_eq!(read.first(), Some(&sample(7)));
        }
    }
}
