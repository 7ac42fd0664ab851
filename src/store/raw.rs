//! The encoding of `messages.raw`: a raw deflate (RFC 1951) stream, shared by every
//! path that stores a message (LMTP, milter, ingest).

use std::io::Write as _;

/// Lower-case hex SHA-256 of a message: its `messages.sha256`.
pub fn hex_sha256(raw: &[u8]) -> String {
    use sha2::Digest as _;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(raw))
}

/// Deflate-compresses (raw RFC 1951 stream) at a fast level: evidence, not archive.
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    thread_local! {
        // The compressor's tables are large; building one per message dominated the
        // CPU profile, so each thread keeps one and resets it.
        static COMPRESS: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::fast(), false));
    }
    COMPRESS.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
        let mut input = bytes;
        loop {
            let before_in = c.total_in();
            let status = c.compress_vec(input, &mut out, flate2::FlushCompress::Finish);
            let used = (c.total_in() - before_in) as usize;
            input = input.get(used..).unwrap_or_default();
            match status {
                Ok(flate2::Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity().max(4096)),
                Err(_) => return fallback_deflate(bytes),
            }
        }
    })
}

fn fallback_deflate(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Inflates what [`deflate`] produced.
pub fn inflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}
