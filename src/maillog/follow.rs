//! Tails a mail log through rotation and records its results. Each chunk of complete
//! lines is committed in one transaction with the events, the join state and the
//! position (device, inode, offset, hash of the first line), so a restart resumes exactly
//! after the last committed line. Rotation: a renamed file is read to its end (the MTA
//! may still write to it) until the new file has data; a truncated file (copytruncate)
//! is caught up from its copy, found among its siblings by the hash of its first line.

use super::join::{Join, JoinedResult, Pending};
use super::logfile::{find_sibling, first_line_hash, position_of, read_at_full, OpenLog};
use super::{parse_line, FollowConfig, LogEntry, LogFormat, MaillogError};
use crate::classify::shared::SharedClassifier;
use crate::store::{self, logevents, logpos, logpos::LogPosition};
use rusqlite::Connection;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes read (and committed) at a time.
const CHUNK_BYTES: usize = 1 << 20;
/// How long a renamed log must stay unchanged (with the new file in use) before it is
/// closed: an old writer process may still finish its records into it.
const DRAIN_GRACE: Duration = Duration::from_secs(60);

/// Counters of one follower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowStats {
    /// Lines read.
    pub lines: u64,
    /// Delivery results found.
    pub results: u64,
    /// Events recorded (results minus null-sender DSN deliveries).
    pub events: u64,
    /// Lines not understood (skipped).
    pub unknown: u64,
    /// Renames seen.
    pub rotations: u64,
    /// Truncations (copytruncate) seen.
    pub truncations: u64,
}

/// Follows one log file (or standard input) into the store.
pub struct Follower {
    key: String,
    path: PathBuf,
    format: LogFormat,
    conn: Connection,
    classifier: Arc<SharedClassifier>,
    verp: crate::verp::VerpConfig,
    join: Join,
    pos: LogPosition,
    cur: Option<OpenLog>,
    draining: Option<OpenLog>,
    drain_quiet_since: std::time::Instant,
    /// Counters since this follower was opened.
    pub stats: FollowStats,
}

impl Follower {
    /// Opens the follower of `path` (`-` for standard input) with the store at `conn`,
    /// restoring its saved position and join state; a log never followed before starts
    /// at its beginning, or at its end with `start_at_end`.
    pub fn open(
        conn: Connection,
        path: &Path,
        format: LogFormat,
        classifier: Arc<SharedClassifier>,
        verp: crate::verp::VerpConfig,
        cfg: &FollowConfig,
        start_at_end: bool,
    ) -> Result<Follower, MaillogError> {
        let key = path.to_string_lossy().into_owned();
        let store_err = |source| MaillogError::Store { path: path.to_owned(), source };
        let saved = logpos::load_position(&conn, &key).map_err(store_err)?;
        let mut join = Join::new(cfg.max_pending);
        for (queue_id, json) in logpos::load_pending(&conn, &key).map_err(store_err)? {
            if let Ok(p) = serde_json::from_str::<Pending>(&json) {
                join.restore(&queue_id, p);
            }
        }
        let mut f = Follower {
            key,
            path: path.to_owned(),
            format,
            conn,
            classifier,
            verp,
            join,
            pos: saved.clone().unwrap_or_default(),
            cur: None,
            draining: None,
            drain_quiet_since: std::time::Instant::now(),
            stats: FollowStats::default(),
        };
        if path != Path::new("-") {
            f.resume(saved, start_at_end)?;
        }
        Ok(f)
    }

    /// Finds where the last run stopped: the same file, or (rotated while we were down)
    /// the sibling holding the rest of it, which is read to its end first.
    fn resume(&mut self, saved: Option<LogPosition>, start_at_end: bool) -> Result<(), MaillogError> {
        self.resume_rotated()?;
        let current = OpenLog::open(&self.path).ok();
        let Some(saved) = saved else {
            self.cur = current.map(|mut c| {
                if start_at_end {
                    c.offset = c.len();
                }
                c
            });
            return Ok(());
        };
        if let Some(mut c) = current {
            let same = (c.device, c.inode) == (saved.device, saved.inode)
                && c.len() >= saved.offset
                && (saved.first_line_hash.is_empty() || c.first_hash == saved.first_line_hash);
            if same {
                c.offset = saved.offset;
                self.cur = Some(c);
                return Ok(());
            }
            self.cur = Some(c);
        }
        match find_sibling(&self.path, Some((saved.device, saved.inode)), &saved.first_line_hash, saved.offset) {
            Some(mut old) => {
                tracing::info!(log = %self.path.display(), "log rotated while stopped: reading the rest of the old file");
                old.offset = saved.offset;
                self.drain_fully(old, false)?;
            }
            None if saved.offset > 0 => {
                tracing::warn!(log = %self.path.display(), "log replaced while stopped and its old file was not found; lines after the saved position may be missing");
            }
            None => {}
        }
        Ok(())
    }

    /// Picks up a renamed file the last run was still reading (its row `PATH#rotated`).
    fn resume_rotated(&mut self) -> Result<(), MaillogError> {
        let key = self.rotated_key();
        let store_err = |source| MaillogError::Store { path: self.path.clone(), source };
        let Some(r) = logpos::load_position(&self.conn, &key).map_err(store_err)? else { return Ok(()) };
        match find_sibling(&self.path, Some((r.device, r.inode)), "", r.offset) {
            Some(mut old) if old.len() >= r.offset => {
                old.offset = r.offset;
                self.draining = Some(old);
                self.drain_quiet_since = std::time::Instant::now();
                Ok(())
            }
            _ => self.forget_rotated(),
        }
    }

    fn rotated_key(&self) -> String {
        format!("{}#rotated", self.key)
    }

    /// The renamed file is done: its row goes.
    fn forget_rotated(&mut self) -> Result<(), MaillogError> {
        let key = self.rotated_key();
        let store_err = |e: rusqlite::Error| MaillogError::Store { path: self.path.clone(), source: e.into() };
        self.conn.execute("DELETE FROM log_positions WHERE path = ?1", [key]).map_err(store_err)?;
        Ok(())
    }

    /// Reads what is available, handling rotation; false when there was nothing to do.
    pub fn poll_once(&mut self) -> Result<bool, MaillogError> {
        if let Some(mut old) = self.draining.take() {
            let n = self.read_chunk(&mut old, false, true)?;
            if n > 0 {
                self.drain_quiet_since = std::time::Instant::now();
                self.draining = Some(old);
                return Ok(true);
            }
            let moved = self.reopen_if_new()?;
            if moved && self.drain_quiet_since.elapsed() >= DRAIN_GRACE {
                // The writers have moved to the new file and the old one is quiet: done.
                self.read_chunk(&mut old, true, true)?;
                self.forget_rotated()?;
                return Ok(true);
            }
            self.draining = Some(old);
        }
        if self.check_truncated()? {
            return Ok(true);
        }
        if let Some(mut cur) = self.cur.take() {
            let n = self.read_chunk(&mut cur, false, false)?;
            self.cur = Some(cur);
            if n > 0 {
                return Ok(true);
            }
        }
        self.check_rotation()
    }

    /// Reads until nothing is left (rotations included); for `--once`.
    pub fn read_to_end(&mut self) -> Result<(), MaillogError> {
        while self.poll_once()? {}
        if let Some(old) = self.draining.take() {
            self.drain_fully(old, true)?;
            self.forget_rotated()?;
        }
        Ok(())
    }

    /// Runs until `stop` is set (checked every poll interval).
    pub fn run(&mut self, stop: &AtomicBool, poll: Duration) -> Result<(), MaillogError> {
        while !stop.load(Ordering::Relaxed) {
            if !self.poll_once()? {
                std::thread::sleep(poll);
            }
        }
        Ok(())
    }

    /// At the end of the current file: has the path been renamed away?
    fn check_rotation(&mut self) -> Result<bool, MaillogError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(MaillogError::Io { path: self.path.clone(), source }),
        };
        let Some(cur) = self.cur.as_mut() else {
            self.cur = OpenLog::open(&self.path).ok();
            return Ok(self.cur.is_some());
        };
        if (meta.dev(), meta.ino()) != (cur.device, cur.inode) {
            self.stats.rotations += 1;
            tracing::info!(log = %self.path.display(), "log renamed away; reading the old file to its end");
            if let Some(older) = self.draining.take() {
                self.drain_fully(older, true)?;
            }
            self.draining = self.cur.take();
            self.drain_quiet_since = std::time::Instant::now();
            self.cur = OpenLog::open(&self.path).ok();
            // From now on the main row describes the new file (offset 0), the
            // `#rotated` row the old one; both in one transaction.
            let c = self.cur.as_ref();
            self.pos.device = c.map_or(0, |c| c.device);
            self.pos.inode = c.map_or(0, |c| c.inode);
            self.pos.offset = 0;
            self.pos.first_line_hash = c.map(|c| c.first_hash.clone()).unwrap_or_default();
            let rotated = self.draining.as_ref().map(position_of);
            self.commit(&[], chrono::Utc::now().timestamp(), rotated.as_ref(), true)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Before reading on: was the current file truncated (copytruncate), perhaps regrown
    /// past our offset already? Then the rest of what we had not read is in its copy.
    fn check_truncated(&mut self) -> Result<bool, MaillogError> {
        let Some(cur) = self.cur.as_mut() else { return Ok(false) };
        let hash_now = first_line_hash(&cur.file);
        if cur.first_hash.is_empty() {
            cur.first_hash = hash_now;
            return Ok(false);
        }
        if cur.len() >= cur.offset && hash_now == cur.first_hash {
            return Ok(false);
        }
        self.stats.truncations += 1;
        let (old_hash, old_offset) = (cur.first_hash.clone(), cur.offset);
        tracing::info!(log = %self.path.display(), "log truncated (copytruncate); catching up from its copy");
        if let Some(mut copy) = find_sibling(&self.path, None, &old_hash, old_offset) {
            copy.offset = old_offset;
            self.drain_fully(copy, false)?;
        }
        if let Some(cur) = self.cur.as_mut() {
            cur.offset = 0;
            cur.first_hash = first_line_hash(&cur.file);
        }
        Ok(true)
    }

    /// Replaces a missing current file by the one now at the path, if any.
    fn reopen_if_new(&mut self) -> Result<bool, MaillogError> {
        if self.cur.is_none() {
            self.cur = OpenLog::open(&self.path).ok();
        }
        Ok(self.cur.as_ref().is_some_and(|c| c.len() > 0))
    }

    /// Reads a finished file (renamed or copied away) to its very end; `rotated`: its
    /// position goes to the `#rotated` row, else to the main row.
    fn drain_fully(&mut self, mut log: OpenLog, rotated: bool) -> Result<(), MaillogError> {
        while self.read_chunk(&mut log, false, rotated)? > 0 {}
        self.read_chunk(&mut log, true, rotated)?;
        Ok(())
    }

    /// Reads and commits the complete lines after `log.offset` (at most one chunk);
    /// `final_part` also takes a last line without its newline. Returns bytes consumed.
    fn read_chunk(&mut self, log: &mut OpenLog, final_part: bool, rotated: bool) -> Result<usize, MaillogError> {
        let avail = log.len().saturating_sub(log.offset);
        if avail == 0 {
            return Ok(0);
        }
        let mut buf = vec![0u8; CHUNK_BYTES.min(avail as usize)];
        let n = read_at_full(&log.file, &mut buf, log.offset).map_err(|source| MaillogError::Io { path: self.path.clone(), source })?;
        buf.truncate(n);
        let used = match memchr::memrchr(b'\n', &buf) {
            Some(i) => i + 1,
            // An over-long line: taken as it is rather than waited for forever.
            None if n == CHUNK_BYTES || final_part => n,
            None => return Ok(0),
        };
        let text = buf.get(..used).unwrap_or_default();
        let now = chrono::Utc::now().timestamp();
        let mut results = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            self.feed_line(line, now, &mut results);
        }
        log.offset += used as u64;
        if log.first_hash.is_empty() {
            log.first_hash = first_line_hash(&log.file);
        }
        if rotated {
            self.commit(&results, now, Some(&position_of(log)), false)?;
        } else {
            self.pos.device = log.device;
            self.pos.inode = log.inode;
            self.pos.offset = log.offset;
            self.pos.first_line_hash = log.first_hash.clone();
            self.commit(&results, now, None, true)?;
        }
        Ok(used)
    }

    fn feed_line(&mut self, line: &[u8], now: i64, results: &mut Vec<JoinedResult>) {
        // A copytruncate'd file written without O_APPEND starts with a hole of NULs.
        let start = line.iter().position(|&b| b != 0).unwrap_or(line.len());
        let line = String::from_utf8_lossy(line.get(start..).unwrap_or_default());
        if line.trim().is_empty() {
            return;
        }
        self.stats.lines += 1;
        self.pos.lines += 1;
        let parsed = parse_line(&line, self.format, now);
        if parsed.entry == LogEntry::Unknown {
            self.stats.unknown += 1;
            self.pos.unknown_lines += 1;
            tracing::debug!(log = %self.path.display(), "line not understood, skipped");
        }
        let found = self.join.feed(parsed);
        self.stats.results += found.len() as u64;
        results.extend(found);
    }

    /// Writes events, join changes and positions (the main row, and the renamed file's
    /// row when given) in one transaction.
    fn commit(
        &mut self,
        results: &[JoinedResult],
        now: i64,
        rotated: Option<&LogPosition>,
        main: bool,
    ) -> Result<(), MaillogError> {
        let rotated_key = self.rotated_key();
        let path = self.path.clone();
        let store_err = |source| MaillogError::Store { path: path.clone(), source };
        let changes: Vec<(String, Option<String>)> = self
            .join
            .take_changes()
            .into_iter()
            .map(|(q, p)| (q, p.and_then(|p| serde_json::to_string(&p).ok())))
            .collect();
        let tx = self.conn.transaction().map_err(|e| store_err(e.into()))?;
        let events = logevents::insert_results(&tx, &self.classifier.current(), &self.verp, results, now).map_err(store_err)?;
        logpos::save_pending(&tx, &self.key, &changes).map_err(store_err)?;
        self.pos.results += results.len() as i64;
        if self.key != "-" && main {
            logpos::save_position(&tx, &self.key, &self.pos, now).map_err(store_err)?;
        }
        if let Some(r) = rotated {
            logpos::save_position(&tx, &rotated_key, r, now).map_err(store_err)?;
        }
        tx.commit().map_err(|e| store_err(e.into()))?;
        self.stats.events += events as u64;
        Ok(())
    }

    /// Follows standard input until end of file (or `stop`), committing every
    /// `poll` of quiet or every 1000 lines.
    pub fn run_stdin(&mut self, stop: &AtomicBool, poll: Duration) -> Result<(), MaillogError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4096);
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut input = std::io::stdin().lock();
            loop {
                let mut line = Vec::new();
                match input.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut results = Vec::new();
        let mut pending_lines = 0;
        loop {
            let now = chrono::Utc::now().timestamp();
            let got = rx.recv_timeout(poll);
            let done = matches!(got, Err(std::sync::mpsc::RecvTimeoutError::Disconnected));
            let quiet = got.is_err();
            if let Ok(line) = got {
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                self.feed_line(line, now, &mut results);
                pending_lines += 1;
            }
            if (quiet && pending_lines > 0) || done || pending_lines >= 1000 {
                self.commit(&std::mem::take(&mut results), now, None, true)?;
                pending_lines = 0;
            }
            if done || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }
}

/// A follower running in its own thread.
pub struct FollowerHandle {
    /// The followed path.
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl FollowerHandle {
    /// Asks the follower to stop after its current chunk and waits for it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Starts one follower thread per configured log (for `serve`); each reopens its store
/// connection and resumes from its saved position after an error.
pub fn spawn_followers(
    cfg: &FollowConfig,
    verp: &crate::verp::VerpConfig,
    db_path: &Path,
    classifier: Arc<SharedClassifier>,
) -> Vec<FollowerHandle> {
    cfg.logs
        .iter()
        .map(|source| {
            let stop = Arc::new(AtomicBool::new(false));
            let (cfg, verp, db, classifier, stop2) =
                (cfg.clone(), verp.clone(), db_path.to_owned(), classifier.clone(), stop.clone());
            let (path, format) = (source.path.clone(), source.format);
            let thread = std::thread::spawn(move || {
                let poll = Duration::from_millis(cfg.poll_interval_ms.max(10));
                while !stop2.load(Ordering::Relaxed) {
                    let result = store::open(&db)
                        .map_err(|source| MaillogError::Store { path: path.clone(), source })
                        .and_then(|conn| Follower::open(conn, &path, format, classifier.clone(), verp.clone(), &cfg, false))
                        .and_then(|mut f| f.run(&stop2, poll));
                    if let Err(e) = result {
                        tracing::warn!(log = %path.display(), error = %e, "follower failed; restarting from the saved position");
                        for _ in 0..50 {
                            if stop2.load(Ordering::Relaxed) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            });
            FollowerHandle { path: source.path.clone(), stop, thread }
        })
        .collect()
}
