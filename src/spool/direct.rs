//! Durable appends that bypass the page cache: a segment's records go to the disk with
//! one `pwrite` on an `O_DIRECT | O_DSYNC` descriptor, instead of a copy into the page
//! cache, a write-back and an `fdatasync`. On the build VM a flush took 0.15-0.21 ms and
//! 50-80 us of CPU, against 0.19-0.32 ms and 80-140 us (docs/performance.md).
//!
//! The disk takes only whole aligned blocks at aligned offsets from aligned memory, so
//! the partly filled last block is kept here and written again, with the next group,
//! padded with zeros to the block's end, which is what the zero-filled segment already
//! holds there. Where the file system refuses direct I/O (tmpfs before Linux 6.6, some
//! FUSE and network file systems) or the block size is not one this tries, the
//! segment falls back to `pwrite` + `fdatasync`, and so does every later one.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Block sizes tried for offsets and lengths, smallest first (512-byte and 4Kn disks).
const BLOCK_SIZES: [usize; 2] = [512, 4096];

/// The largest of [`BLOCK_SIZES`]: the buffer's alignment, and the span of the last
/// block kept (so that moving to a larger block size needs nothing read back).
pub(super) const ALIGN: usize = BLOCK_SIZES[BLOCK_SIZES.len() - 1];

/// Largest piece of a group written at once: a large group (a 50 MB message) goes in
/// several synchronous writes, so the aligned copy never holds more than this.
const CHUNK_BYTES: usize = 4 << 20;

/// Set once direct writes failed as unsupported: later segments do not try them.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// A segment file opened for direct, synchronous writes, with its partly filled last block.
pub struct Direct {
    file: File,
    /// Index into [`BLOCK_SIZES`] of the block size in use.
    block_index: usize,
    /// Storage; the aligned data starts at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes written since the last `ALIGN` boundary, at `buf[start..start + held]`.
    held: usize,
}

/// Opens `path` for direct writes; None where direct I/O is off, refused or the open failed.
pub fn open(path: &Path) -> Option<Direct> {
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let file = File::options()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path);
    match file {
        Ok(file) => Some(Direct { file, block_index: 0, buf: Vec::new(), start: 0, held: 0 }),
        // Refused: never again. Anything else (out of descriptors): this segment only.
        Err(e) => {
            if is_unsupported(&e) {
                give_up(&e);
            }
            None
        }
    }
}

/// True unless direct I/O was found unsupported in this process.
pub fn enabled() -> bool {
    !UNSUPPORTED.load(Ordering::Relaxed)
}

/// True if `e` says the file or the request does not suit direct I/O (nothing written).
pub fn is_unsupported(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// Turns direct writes off for the rest of the process, saying why once.
pub fn give_up(e: &std::io::Error) {
    if !UNSUPPORTED.swap(true, Ordering::Relaxed) {
        tracing::info!(error = %e, "spool: direct writes unavailable here; using write + fdatasync");
    }
}

impl Direct {
    /// Writes `bytes` at offset `at` (where the records written so far end; the first
    /// call has `at` 0) and makes them durable. An error that [`is_unsupported`] means
    /// no block size worked for a piece; pieces before it hold the same bytes, so
    /// writing all of `bytes` again another way is safe.
    pub fn append(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut at = at;
        for chunk in bytes.chunks(CHUNK_BYTES) {
            self.write_chunk(at, chunk)?;
            at += chunk.len() as u64;
        }
        Ok(())
    }

    /// One aligned, synchronous write of the held bytes, `bytes` and zero padding.
    fn write_chunk(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        debug_assert_eq!(at % ALIGN as u64, self.held as u64);
        let total = self.held + bytes.len();
        let padded = total.next_multiple_of(ALIGN);
        self.reserve(padded);
        let (s, held) = (self.start, self.held);
        let base = at - held as u64;
        let area = self.buf.get_mut(s..s + padded).ok_or_else(out_of_range)?;
        area.get_mut(held..total).ok_or_else(out_of_range)?.copy_from_slice(bytes);
        area.get_mut(total..).unwrap_or_default().fill(0);
        loop {
            let block = BLOCK_SIZES.get(self.block_index).copied().ok_or_else(out_of_range)?;
            // From the block `at` falls in to the end of the block `bytes` end in.
            let from = held - held % block;
            let span = area.get(from..total.next_multiple_of(block)).ok_or_else(out_of_range)?;
            match self.file.write_all_at(span, base + from as u64) {
                Err(e) if is_unsupported(&e) && self.block_index + 1 < BLOCK_SIZES.len() => self.block_index += 1,
                Err(e) => return Err(e),
                Ok(()) => break,
            }
        }
        // Keep what was written since the last ALIGN boundary for the next group.
        let keep = total % ALIGN;
        area.copy_within(total - keep..total, 0);
        self.held = keep;
        Ok(())
    }

    /// Makes room for `len` bytes from the aligned start, keeping what is held.
    fn reserve(&mut self, len: usize) {
        if self.start + len <= self.buf.len() {
            return;
        }
        let mut grown = vec![0u8; len.max(64 << 10) + ALIGN];
        let start = aligned_start(&grown);
        if let (Some(to), Some(kept)) = (grown.get_mut(start..start + self.held), self.buf.get(self.start..self.start + self.held)) {
            to.copy_from_slice(kept);
        }
        self.buf = grown;
        self.start = start;
    }
}

/// Where the first `ALIGN`-aligned byte of `buf` is (a buffer `ALIGN` longer than
/// needed always has room after it).
pub(super) fn aligned_start(buf: &[u8]) -> usize {
    // At run time align_offset is exact for a byte pointer, and less than ALIGN.
    buf.as_ptr().align_offset(ALIGN).min(ALIGN)
}

fn out_of_range() -> std::io::Error {
    std::io::Error::other("spool: direct write buffer out of range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::segment::{self, Segment};

    /// Appends `sizes` (each a run of its own byte) to a fresh segment of `capacity`
    /// zero bytes; returns whether it wrote directly, what the file holds, and what it should.
    fn appended(sizes: &[usize], capacity: u64) -> (bool, Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create(dir.path(), 1, capacity).unwrap();
        let mut expected = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let bytes = vec![(i % 250) as u8 + 1; n];
            s.append(&bytes).unwrap();
            expected.extend(&bytes);
        }
        let direct = s.is_direct();
        drop(s);
        (direct, std::fs::read(segment::path(dir.path(), 1)).unwrap(), expected)
    }

    /// A fresh segment of `capacity` zero bytes and a direct writer on it; None (with a
    /// note) where the test directory's file system refuses O_DIRECT.
    fn direct_segment(capacity: u64) -> Option<(tempfile::TempDir, Segment, Direct)> {
        let dir = tempfile::tempdir().unwrap();
        let s = Segment::create(dir.path(), 1, capacity).unwrap();
        let Some(d) = open(&segment::path(dir.path(), 1)) else {
            eprintln!("note: no O_DIRECT on the test directory's file system");
            return None;
        };
        Some((dir, s, d))
    }

    /// True if `file` starts with `expected` and holds only zeros after it.
    fn holds(file: &[u8], expected: &[u8]) -> bool {
        file.get(..expected.len()) == Some(expected) && file.get(expected.len()..).unwrap().iter().all(|&b| b == 0)
    }

    #[test]
    fn groups_across_block_boundaries_land_in_order_with_zeros_after() {
        let sizes = [1, 510, 1, 1, 4093, 4096, 4097, 3, 600, 70_000, 2];
        let (direct, file, expected) = appended(&sizes, 1 << 20);
        assert_eq!(file.len(), 1 << 20, "writes inside the zero-filled size do not grow it");
        assert!(holds(&file, &expected));
        if !direct {
            eprintln!("note: the test directory's file system refuses O_DIRECT; checked the fallback");
        }
    }

    #[test]
    fn a_group_past_the_zero_filled_size_grows_the_file_by_whole_blocks_at_most() {
        let (_, file, expected) = appended(&[3000, 9000], 4096);
        assert!(holds(&file, &expected));
        assert!(file.len() < expected.len() + 4096, "{}", file.len());
    }

    #[test]
    fn the_largest_block_size_writes_the_same_bytes() {
        let Some((dir, s, mut d)) = direct_segment(1 << 16) else { return };
        d.block_index = BLOCK_SIZES.len() - 1;
        let mut expected = Vec::new();
        for (i, n) in [700usize, 5000, 1, 8192].into_iter().enumerate() {
            let bytes = vec![i as u8 + 1; n];
            d.append(expected.len() as u64, &bytes).unwrap();
            expected.extend(&bytes);
        }
        drop((d, s));
        assert!(holds(&std::fs::read(segment::path(dir.path(), 1)).unwrap(), &expected));
    }

    #[test]
    fn a_large_group_goes_in_pieces_through_a_bounded_buffer() {
        let Some((dir, _s, mut d)) = direct_segment(16 << 20) else { return };
        let mut big: Vec<u8> = (0..2 * CHUNK_BYTES + 1000).map(|i| (i % 251) as u8 + 1).collect();
        d.append(0, &big).unwrap();
        assert!(d.buf.len() <= CHUNK_BYTES + 2 * ALIGN, "holds {} bytes", d.buf.len());
        d.append(big.len() as u64, b"after").unwrap();
        big.extend(b"after");
        assert!(holds(&std::fs::read(segment::path(dir.path(), 1)).unwrap(), &big));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn any_run_of_groups_reads_back(sizes in proptest::collection::vec(1usize..9000, 1..40)) {
            let (_, file, expected) = appended(&sizes, 1 << 20);
            proptest::prop_assert!(holds(&file, &expected));
        }
    }
}
