//! The spool directory: its lock, and its segment files (`segment-NNNNNNNNNNNNNNNN`),
//! each written once from the start and deleted once everything in it is applied.
//! A segment is filled with zeros and synced, with its directory, before the first
//! record goes in: overwriting blocks that already exist lets a synchronous write skip
//! the file-size update that an append would journal, which on ext4 is about a third of
//! the flush time. Records go in with direct, synchronous writes where the file system
//! takes them (`spool::direct`), else with `pwrite` + `fdatasync`.

use super::direct::{self, Direct};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Largest zero-filled size of a segment (records past it still append).
pub const MAX_SEGMENT_BYTES: u64 = 32 << 20;

/// Zero-filled size of the first segment a process writes; each next one doubles,
/// up to [`MAX_SEGMENT_BYTES`] (a server that takes few messages writes few zeros).
pub const FIRST_SEGMENT_BYTES: u64 = 1 << 20;

const PREFIX: &str = "segment-";

/// The spool directory of the database at `db`: `<db>-spool`, beside the `-wal` file.
pub fn dir_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-spool");
    PathBuf::from(name)
}

/// Creates the directory if needed (mode 0700: it holds whole messages) and takes its
/// lock: one server per spool.
pub fn lock(dir: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    crate::store::lockfile::try_exclusive(&dir.join("lock"))?.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!("{} is in use by another rebound serve on the same database", dir.display()),
        )
    })
}

/// Path of segment `number` in `dir`.
pub fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{number:016}"))
}

/// The segment numbers present in `dir`, in order.
pub fn list(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Zero-fill size of the segment that follows one of `previous` bytes.
pub fn next_size(previous: u64) -> u64 {
    previous
        .saturating_mul(2)
        .clamp(FIRST_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
}

/// A segment open for writing.
pub struct Segment {
    /// Its number (file name).
    pub number: u64,
    /// The open file.
    pub file: File,
    /// Zero-filled bytes (where appending starts to grow the file).
    pub capacity: u64,
    /// Bytes of records written so far.
    pub written: u64,
    /// Sequence number of the last record written (0 = none yet).
    pub last_seq: u64,
    /// The same file opened for direct writes (None: buffered writes + `fdatasync`).
    direct: Option<Direct>,
}

impl Segment {
    /// Creates segment `number` of `capacity` zero bytes, synced with its directory.
    pub fn create(dir: &Path, number: u64, capacity: u64) -> std::io::Result<Segment> {
        let path = path(dir, number);
        let mut file = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = capacity;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(zeros.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        Ok(Segment {
            number,
            file,
            capacity,
            written: 0,
            last_seq: 0,
            direct: direct::open(&path),
        })
    }

    /// True if `bytes` more would pass the zero-filled size (and something is written:
    /// a record larger than a whole segment goes alone into a fresh one, growing it).
    pub fn would_overflow(&self, bytes: usize) -> bool {
        self.written > 0 && self.written + bytes as u64 > self.capacity
    }

    /// Writes `bytes` after what is written and makes them durable.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.direct.as_mut().map(|d| d.append(self.written, bytes)) {
            Some(Err(e)) if direct::is_unsupported(&e) => {
                direct::give_up(&e);
                self.direct = None;
                self.append_buffered(bytes)?;
            }
            Some(done) => done?,
            None => self.append_buffered(bytes)?,
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// True if records go in with direct writes.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes `bytes` after what is written through the page cache, then `fdatasync`.
    fn append_buffered(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, self.written)?;
        self.file.sync_data()
    }
}

/// Deletes segment `number` (already gone counts as done).
pub fn remove(dir: &Path, number: u64) -> std::io::Result<()> {
    match std::fs::remove_file(path(dir, number)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_double_up_to_the_cap() {
        assert_eq!(next_size(0), FIRST_SEGMENT_BYTES);
        assert_eq!(next_size(FIRST_SEGMENT_BYTES), 2 * FIRST_SEGMENT_BYTES);
        assert_eq!(next_size(MAX_SEGMENT_BYTES), MAX_SEGMENT_BYTES);
    }

    #[test]
    fn a_new_spool_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("db-spool");
        let _lock = lock(&spool).unwrap();
        assert_eq!(std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn create_list_append_remove() {
        let dir = tempfile::tempdir().unwrap();
        let _lock = lock(dir.path()).unwrap();
        assert!(
            lock(dir.path()).is_err(),
            "a second lock on the same spool must fail"
        );
        let mut s = Segment::create(dir.path(), 3, 4096).unwrap();
        Segment::create(dir.path(), 12, 0).unwrap();
        assert!(
            Segment::create(dir.path(), 3, 0).is_err(),
            "a segment is never reused"
        );
        assert_eq!(list(dir.path()).unwrap(), vec![3, 12]);
        s.append(b"abc").unwrap();
        assert!(!s.would_overflow(4093) && s.would_overflow(4094));
        let bytes = std::fs::read(path(dir.path(), 3)).unwrap();
        assert_eq!((bytes.len(), bytes.get(..4)), (4096, Some(&b"abc\0"[..])));
        remove(dir.path(), 3).unwrap();
        remove(dir.path(), 3).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![12]);
    }

    #[test]
    fn without_direct_writes_appends_go_through_the_page_cache_to_the_same_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create(dir.path(), 1, 8192).unwrap();
        s.direct = None;
        s.append(b"first").unwrap();
        s.append(b"second").unwrap();
        assert!(!s.is_direct());
        let bytes = std::fs::read(path(dir.path(), 1)).unwrap();
        assert_eq!((bytes.len(), bytes.get(..12)), (8192, Some(&b"firstsecond\0"[..])));
    }
}
