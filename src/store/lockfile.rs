//! Advisory locks (flock(2)) on small files beside the database: the intake spool's
//! (one `serve` per spool) and a bulk load's (its dropped indexes are its own). They are
//! apart from SQLite's fcntl locks on the database file, which they never touch.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Takes an exclusive lock on the file at `path` (created if needed); None if another
/// open of it holds the lock (another process, or another handle in this one).
pub fn try_exclusive(path: &Path) -> std::io::Result<Option<File>> {
    let file = File::options().create(true).truncate(false).write(true).open(path)?;
    // SAFETY: flock(2) on a descriptor we own; the lock lives as long as the File.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = super::try_exclusive(&path).unwrap();
        assert!(first.is_some());
        assert!(super::try_exclusive(&path).unwrap().is_none(), "held by the first handle");
        drop(first);
        assert!(super::try_exclusive(&path).unwrap().is_some(), "free again");
    }
}
