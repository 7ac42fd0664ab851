//! Milter packets on the wire: a 32-bit big-endian length, one command byte, then
//! `length - 1` bytes of data. Pure: decoding works on a buffer the session fills.

/// Largest packet accepted (command byte + data). MTAs send body chunks of at most
/// 64 KiB (1 MiB with SMFIP_MDS_1M, which rebound never requests); macros and headers
/// are far smaller, so anything bigger is a broken or hostile peer.
pub const MAX_PACKET_BYTES: usize = 1 << 20;

/// One packet: command (or reply) code and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The command or reply code (`'O'`, `'C'`, `'c'`, ...).
    pub code: u8,
    /// The code-specific data.
    pub data: Vec<u8>,
}

/// Errors of the packet layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The length prefix was zero (a packet has at least its command byte).
    #[error("milter packet with length 0")]
    Empty,
    /// The length prefix exceeds the bound.
    #[error("milter packet of {0} bytes exceeds the {max} byte limit", max = MAX_PACKET_BYTES)]
    TooLarge(usize),
}

/// Decodes the first packet of `buf`: `Ok(Some((packet, consumed)))` when a whole packet
/// is there, `Ok(None)` when more bytes are needed.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet, usize)>, CodecError> {
    let Some(len) = packet_len(buf)? else { return Ok(None) };
    let total = 4 + len;
    let Some(body) = buf.get(4..total) else { return Ok(None) };
    let Some((&code, data)) = body.split_first() else { return Err(CodecError::Empty) };
    Ok(Some((Packet { code, data: data.to_vec() }, total)))
}

/// The length announced by the prefix at the start of `buf`, once its 4 bytes are there;
/// checked against the bound before anything is buffered.
pub fn packet_len(buf: &[u8]) -> Result<Option<usize>, CodecError> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let mut b = [0u8; 4];
    b.copy_from_slice(prefix);
    let len = u32::from_be_bytes(b) as usize;
    if len == 0 {
        return Err(CodecError::Empty);
    }
    if len > MAX_PACKET_BYTES {
        return Err(CodecError::TooLarge(len));
    }
    Ok(Some(len))
}

/// Encodes one packet (length prefix, code, data) onto `out`.
pub fn encode(code: u8, data: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(data.len() + 1).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(code);
    out.extend_from_slice(data);
}

/// Splits NUL-terminated strings (`char args[][]`); a missing final NUL is tolerated.
pub fn split_cstrings(data: &[u8]) -> Vec<&[u8]> {
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0).collect()
}

/// Reads a big-endian u32 at `at`, if the data is long enough.
pub fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let s = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        encode(b'O', &[0, 0, 0, 6], &mut out);
        assert_eq!(out, [0, 0, 0, 5, b'O', 0, 0, 0, 6]);
        let (p, n) = decode(&out).unwrap().unwrap();
        assert_eq!((p.code, p.data.as_slice(), n), (b'O', &[0u8, 0, 0, 6][..], 9));
    }

    #[test]
    fn partial_needs_more() {
        assert_eq!(decode(&[0, 0]), Ok(None));
        assert_eq!(decode(&[0, 0, 0, 3, b'H', b'a']), Ok(None));
    }

    #[test]
    fn zero_and_huge_lengths_are_errors() {
        assert_eq!(decode(&[0, 0, 0, 0]), Err(CodecError::Empty));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), Err(CodecError::TooLarge(0xffff_ffff)));
    }

    #[test]
    fn cstrings() {
        assert_eq!(split_cstrings(b"<a@b>\0SIZE=10\0"), vec![&b"<a@b>"[..], b"SIZE=10"]);
        assert_eq!(split_cstrings(b"x"), vec![&b"x"[..]]);
        assert!(split_cstrings(b"").is_empty());
        assert_eq!(split_cstrings(b"\0\0"), vec![&b""[..], b""]);
    }

    proptest! {
        #[test]
        fn decode_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&buf);
        }

        #[test]
        fn encode_decode_identity(code in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            encode(code, &data, &mut out);
            let (p, n) = decode(&out).unwrap().unwrap();
            prop_assert_eq!(n, out.len());
            prop_assert_eq!(p, Packet { code, data });
        }
    }
}
