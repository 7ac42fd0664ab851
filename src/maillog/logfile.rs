//! One followed log file: its identity (device, inode, a hash of its first line), how
//! far it was read, and finding it again among its rotated siblings.

use crate::store::logpos::LogPosition;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Bytes of the first line hashed to recognise a file.
const FIRST_LINE_BYTES: usize = 4096;

/// One open log file and how far it was read.
pub(super) struct OpenLog {
    pub(super) file: File,
    pub(super) device: u64,
    pub(super) inode: u64,
    pub(super) offset: u64,
    pub(super) first_hash: String,
}

impl OpenLog {
    pub(super) fn open(path: &Path) -> std::io::Result<OpenLog> {
        let file = File::open(path)?;
        let m = file.metadata()?;
        let first_hash = first_line_hash(&file);
        Ok(OpenLog { file, device: m.dev(), inode: m.ino(), offset: 0, first_hash })
    }

    pub(super) fn len(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

/// The position row of a file being read.
pub(super) fn position_of(log: &OpenLog) -> LogPosition {
    LogPosition {
        device: log.device,
        inode: log.inode,
        offset: log.offset,
        first_line_hash: log.first_hash.clone(),
        ..Default::default()
    }
}

/// pread until the buffer is full or end of file.
pub(super) fn read_at_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let Some(rest) = buf.get_mut(n..) else { break };
        match file.read_at(rest, offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Hex SHA-256 prefix of the first line ("" while the file has no complete first line).
pub(super) fn first_line_hash(file: &File) -> String {
    let mut buf = vec![0u8; FIRST_LINE_BYTES];
    let n = read_at_full(file, &mut buf, 0).unwrap_or(0);
    let head = buf.get(..n).unwrap_or_default();
    let line = match memchr::memchr(b'\n', head) {
        Some(i) => head.get(..i).unwrap_or_default(),
        None if n == FIRST_LINE_BYTES => head,
        None => return String::new(),
    };
    let digest = Sha256::digest(line);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A rotated sibling of `path` (`maillog.1`, `maillog-20261129`, ...; compressed ones
/// are skipped) that is the file with `inode`, or else starts with the line hashed
/// `first_hash` and is at least `offset` long (a copytruncate copy).
pub(super) fn find_sibling(path: &Path, inode: Option<(u64, u64)>, first_hash: &str, offset: u64) -> Option<OpenLog> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = path.file_name()?.to_string_lossy().into_owned();
    let mut by_hash = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let compressed = [".gz", ".bz2", ".xz", ".zst", ".lz4"].iter().any(|s| name.ends_with(s));
        if name == base || !name.starts_with(&base) || compressed {
            continue;
        }
        let Ok(log) = OpenLog::open(&entry.path()) else { continue };
        if inode == Some((log.device, log.inode)) {
            return Some(log);
        }
        if by_hash.is_none() && !first_hash.is_empty() && log.first_hash == first_hash && log.len() >= offset {
            by_hash = Some(log);
        }
    }
    by_hash
}
