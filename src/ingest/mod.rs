//! Backfill: messages from mbox files, maildirs and directories of .eml files, through
//! the same pipeline as LMTP (`pipeline::process_message`, `event_rows`, correlation,
//! `insert_event`). Streams: a reader thread splits files line by line (memory bounded
//! by the largest message, never the file), a pool of workers hashes, parses and
//! compresses, and the calling thread writes batches in order, one transaction each.
//! Idempotent: a message whose SHA-256 is already in `messages` is skipped.
//! Which files are read and how they split into messages: `source.rs`.

mod source;

pub use source::{collect_inputs, MessageReader, ReadMessage};

use crate::classify::Classifier;
use crate::pipeline::{event_rows, process_message, Envelope};
use crate::store::event::{insert_event, insert_message, NewMessage};
use crate::store::{query, StoreError};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Worker threads that hash, parse and compress.
    pub workers: usize,
    /// Messages per transaction.
    pub batch_messages: usize,
    /// Bytes of messages per batch (bounds memory with large messages).
    pub batch_bytes: usize,
    /// A message larger than this is counted as an error and skipped.
    pub max_message_bytes: usize,
    /// Keep the raw message (deflated) as evidence.
    pub keep_raw: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
        IngestOptions {
            workers,
            batch_messages: 500,
            batch_bytes: 16 << 20,
            max_message_bytes: 64 << 20,
            keep_raw: true,
        }
    }
}

/// What an ingest run did.
#[derive(Debug, Clone, Default)]
pub struct IngestSummary {
    /// Files read.
    pub files: u64,
    /// Messages found.
    pub messages: u64,
    /// Messages stored (new).
    pub stored: u64,
    /// Messages skipped because already stored (same SHA-256).
    pub duplicates: u64,
    /// Stored messages with no record (not a bounce, or not understood).
    pub without_records: u64,
    /// Event rows written, by kind.
    pub records_by_kind: BTreeMap<String, u64>,
    /// Files or messages that could not be read or were too large.
    pub errors: u64,
    /// The first error messages ("file: what").
    pub error_messages: Vec<String>,
    /// Bytes read so far.
    pub bytes_read: u64,
    /// Bytes in all input files.
    pub bytes_total: u64,
    /// Wall time so far, in seconds.
    pub elapsed_secs: f64,
}

impl IngestSummary {
    /// Messages per second so far.
    pub fn rate(&self) -> f64 {
        if self.elapsed_secs > 0.0 {
            self.messages as f64 / self.elapsed_secs
        } else {
            0.0
        }
    }

    fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.error_messages.len() < 100 {
            self.error_messages.push(msg);
        }
    }
}

/// Errors that stop an ingest.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// An input path could not be listed.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
}

impl From<rusqlite::Error> for IngestError {
    fn from(e: rusqlite::Error) -> Self {
        IngestError::Store(e.into())
    }
}

/// A message on its way from the reader to the writer.
struct Item {
    sha256: String,
    file: usize,
    /// None: already stored (seen by the worker).
    work: Option<Work>,
}

struct Work {
    processed: crate::pipeline::ProcessedMessage,
    message: NewMessage,
    envelope: Envelope,
    occurred_at: i64,
}

/// Messages as read: (index of the input file, bytes).
type RawBatch = Batch<(usize, Vec<u8>)>;

struct Batch<T> {
    seq: u64,
    items: Vec<T>,
    bytes_read: u64,
    files_done: u64,
    errors: Vec<String>,
}

/// Ingests every message under `paths` into the store at `db` (already migrated),
/// calling `progress` after each committed batch. Returns the summary.
pub fn ingest(
    conn: &mut Connection,
    db: &Path,
    paths: &[PathBuf],
    classifier: &Classifier,
    verp: &crate::verp::VerpConfig,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(&IngestSummary),
) -> Result<IngestSummary, IngestError> {
    let start = Instant::now();
    let inputs = collect_inputs(paths)?;
    let mut summary = IngestSummary { bytes_total: inputs.iter().map(|(_, n)| n).sum(), ..Default::default() };
    let workers = opts.workers.max(1);
    let (raw_tx, raw_rx) = sync_channel::<RawBatch>(workers * 2);
    let (done_tx, done_rx) = sync_channel::<Batch<Item>>(workers * 2);
    // Owned by the workers only: when they stop, the reader's sends fail and it stops.
    let raw_rx = Arc::new(Mutex::new(raw_rx));
    let now = chrono::Utc::now().timestamp();

    std::thread::scope(|s| -> Result<(), IngestError> {
        let inputs = &inputs;
        s.spawn(move || read_files(inputs, opts, raw_tx));
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let raw_rx = Arc::clone(&raw_rx);
            s.spawn(move || work(&raw_rx, done_tx, db, classifier, opts, now));
        }
        drop(done_tx);
        drop(raw_rx);
        // On a store error, dropping the receiver makes the workers and the reader stop.
        write_batches(conn, done_rx, inputs, verp, now, &mut summary, start, progress)
    })?;
    summary.elapsed_secs = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn read_files(inputs: &[(PathBuf, u64)], opts: &IngestOptions, tx: std::sync::mpsc::SyncSender<RawBatch>) {
    let mut seq = 0u64;
    let new_batch = |seq: u64| Batch { seq, items: Vec::new(), bytes_read: 0, files_done: 0, errors: Vec::new() };
    let mut batch = new_batch(seq);
    let mut batch_bytes = 0usize;
    for (i, (path, size)) in inputs.iter().enumerate() {
        match std::fs::File::open(path) {
            Err(e) => batch.errors.push(format!("{}: {e}", path.display())),
            Ok(f) => {
                let mut reader = MessageReader::new(BufReader::with_capacity(1 << 20, f), opts.max_message_bytes);
                let mut index = 0u64;
                loop {
                    match reader.next_message() {
                        Ok(None) => break,
                        Err(e) => {
                            batch.errors.push(format!("{}: message {}: {e}", path.display(), index + 1));
                            break;
                        }
                        Ok(Some(ReadMessage::TooLarge(n))) => {
                            index += 1;
                            batch.errors.push(format!("{}: message {index}: {n} bytes, over the limit", path.display()));
                        }
                        Ok(Some(ReadMessage::Message(m))) => {
                            index += 1;
                            batch_bytes += m.len();
                            batch.items.push((i, m));
                            if batch.items.len() >= opts.batch_messages || batch_bytes >= opts.batch_bytes {
                                seq += 1;
                                let full = std::mem::replace(&mut batch, new_batch(seq));
                                batch_bytes = 0;
                                if tx.send(full).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
        batch.bytes_read += size;
        batch.files_done += 1;
    }
    let _ = tx.send(batch);
}

fn work(
    rx: &Mutex<Receiver<RawBatch>>,
    tx: std::sync::mpsc::SyncSender<Batch<Item>>,
    db: &Path,
    classifier: &Classifier,
    opts: &IngestOptions,
    now: i64,
) {
    // A read connection of its own, to skip known messages before parsing them; the
    // writer checks again inside its transaction.
    let reader = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok();
    loop {
        let batch = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(b) => b,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let items = batch
            .items
            .into_iter()
            .map(|(file, raw)| {
                let sha256 = hex_sha256(&raw);
                let known = reader.as_ref().map(|c| query::message_exists(c, &sha256).unwrap_or(false)).unwrap_or(false);
                let work = (!known).then(|| prepare(raw, &sha256, classifier, opts, now));
                Item { sha256, file, work }
            })
            .collect();
        let out = Batch { seq: batch.seq, items, bytes_read: batch.bytes_read, files_done: batch.files_done, errors: batch.errors };
        if tx.send(out).is_err() {
            return;
        }
    }
}

fn prepare(raw: Vec<u8>, sha256: &str, classifier: &Classifier, opts: &IngestOptions, now: i64) -> Work {
    let processed = process_message(&raw, classifier);
    let h = EnvelopeHeaders::scan(top_headers(&raw));
    let recipient = h.delivered_to.or(h.x_original_to).unwrap_or_default();
    let sender = h.return_path.unwrap_or_default();
    let occurred_at = h
        .date
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
        .map(|d| d.timestamp())
        .filter(|t| *t > 315_532_800 && *t <= now + 86_400)
        .unwrap_or(now);
    let kind = match processed.kind() {
        crate::parse::Kind::None => "unknown",
        k => k.as_str(),
    };
    let message = NewMessage {
        received_at: now,
        source: "ingest".into(),
        envelope_sender: sender.trim_matches(|c| c == '<' || c == '>').to_string(),
        envelope_recipients: if recipient.is_empty() { Vec::new() } else { vec![recipient.clone()] },
        sha256: sha256.to_string(),
        kind: kind.to_string(),
        size_bytes: raw.len() as i64,
        raw_deflated: opts.keep_raw.then(|| deflate(&raw)),
    };
    Work { processed, message, envelope: Envelope { source: "ingest".into(), recipient }, occurred_at }
}

#[allow(clippy::too_many_arguments)]
fn write_batches(
    conn: &mut Connection,
    rx: Receiver<Batch<Item>>,
    inputs: &[(PathBuf, u64)],
    verp: &crate::verp::VerpConfig,
    now: i64,
    summary: &mut IngestSummary,
    start: Instant,
    progress: &mut dyn FnMut(&IngestSummary),
) -> Result<(), IngestError> {
    let mut pending: BTreeMap<u64, Batch<Item>> = BTreeMap::new();
    let mut next = 0u64;
    for batch in rx {
        pending.insert(batch.seq, batch);
        while let Some(batch) = pending.remove(&next) {
            next += 1;
            write_batch(conn, batch, inputs, verp, now, summary)?;
            summary.elapsed_secs = start.elapsed().as_secs_f64();
            progress(summary);
        }
    }
    Ok(())
}

fn write_batch(
    conn: &mut Connection,
    batch: Batch<Item>,
    inputs: &[(PathBuf, u64)],
    verp: &crate::verp::VerpConfig,
    now: i64,
    summary: &mut IngestSummary,
) -> Result<(), IngestError> {
    let tx = conn.transaction()?;
    for item in batch.items {
        summary.messages += 1;
        let Some(w) = item.work.filter(|_| !query::message_exists(&tx, &item.sha256).unwrap_or(false)) else {
            summary.duplicates += 1;
            continue;
        };
        let message_id = insert_message(&tx, &w.message)?;
        let mut events = event_rows(&w.processed, &w.envelope, w.occurred_at);
        crate::store::correlate::correlate_events(&tx, verp, &w.processed.parsed, &mut events, now)?;
        if events.is_empty() {
            summary.without_records += 1;
        }
        for e in &events {
            insert_event(&tx, Some(message_id), e)?;
            *summary.records_by_kind.entry(e.kind.clone()).or_default() += 1;
        }
        summary.stored += 1;
        tracing::debug!(file = %inputs.get(item.file).map(|f| f.0.display().to_string()).unwrap_or_default(), message_id, "message stored");
    }
    tx.commit()?;
    summary.files += batch.files_done;
    summary.bytes_read += batch.bytes_read;
    for e in batch.errors {
        summary.error(e);
    }
    Ok(())
}

/// Lower-case hex SHA-256 of a message.
pub fn hex_sha256(raw: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(raw))
}

pub use crate::store::raw::deflate;

/// The header block of a message (up to the first empty line, at most 64 KiB).
fn top_headers(raw: &[u8]) -> &[u8] {
    let head = raw.get(..raw.len().min(64 * 1024)).unwrap_or_default();
    let end = memchr::memmem::find(head, b"\n\n")
        .or_else(|| memchr::memmem::find(head, b"\r\n\r\n"))
        .unwrap_or(head.len());
    head.get(..end).unwrap_or_default()
}

/// The top-level header fields ingest reads: where the message was delivered (the
/// return path, for correlation), its envelope sender and its date.
#[derive(Debug, Default)]
struct EnvelopeHeaders {
    delivered_to: Option<String>,
    x_original_to: Option<String>,
    return_path: Option<String>,
    date: Option<String>,
}

impl EnvelopeHeaders {
    /// One pass over a header block; the first occurrence of each field wins, unfolded.
    fn scan(headers: &[u8]) -> EnvelopeHeaders {
        let mut out = EnvelopeHeaders::default();
        let mut lines = headers.split(|&b| b == b'\n').peekable();
        while let Some(line) = lines.next() {
            let Some(colon) = memchr::memchr(b':', line) else { continue };
            let (field, rest) = line.split_at(colon);
            let slot = match field.len() {
                4 if field.eq_ignore_ascii_case(b"date") => &mut out.date,
                11 if field.eq_ignore_ascii_case(b"return-path") => &mut out.return_path,
                12 if field.eq_ignore_ascii_case(b"delivered-to") => &mut out.delivered_to,
                13 if field.eq_ignore_ascii_case(b"x-original-to") => &mut out.x_original_to,
                _ => continue,
            };
            if slot.is_some() {
                continue;
            }
            let mut value = String::from_utf8_lossy(rest.get(1..).unwrap_or_default()).trim().to_string();
            while let Some(next) = lines.peek().filter(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t')) {
                value.push(' ');
                value.push_str(String::from_utf8_lossy(next).trim());
                lines.next();
            }
            *slot = Some(value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let raw = b"Delivered-To: bounce+x@b.example\nDate: Tue, 1 Dec 2026\n  10:00:00 +0000\nDelivered-To: y\n\nDate: no\n";
        let h = EnvelopeHeaders::scan(top_headers(raw));
        assert_eq!(h.delivered_to.as_deref(), Some("bounce+x@b.example"));
        assert_eq!(h.date.as_deref(), Some("Tue, 1 Dec 2026 10:00:00 +0000"));
        assert_eq!(h.return_path, None);
    }

    #[test]
    fn deflate_round_trips() {
        use std::io::Read;
        for raw in [&b""[..], b"Subject: x\n\nbody\n", &vec![b'a'; 300_000]] {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(&deflate(raw)[..]).read_to_end(&mut out).unwrap();
            assert_eq!(out, raw);
        }
    }
}
