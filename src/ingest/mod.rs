//! Backfill: messages from mbox files, maildirs and directories of .eml files, through
//! the same pipeline as LMTP (`pipeline::process_message`, `event_rows`, correlation,
//! `insert_event` and its hooks). Streams, in constant memory: a reader thread splits
//! files into chunks of messages (`source.rs`), worker threads hash, parse, classify and
//! compress each chunk (`message.rs`), and the calling thread writes the chunks in input
//! order, many to a transaction (`write.rs`). At most a fixed number of chunks is in
//! flight, so memory does not grow with the input.
//! Idempotent: a message whose SHA-256 is already in `messages` is skipped.

mod checkpointer;
mod message;
mod source;
mod write;

pub use message::hex_sha256;
pub use source::{collect_inputs, Input, MessageReader, ReadMessage};
use source::{looks_like_message, split_whole};

use crate::classify::{ClassifyError, Classifier};
use crate::store::{query, StoreError};
use message::Work;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Worker threads that hash, parse and compress.
    pub workers: usize,
    /// Messages per transaction (a transaction also ends after half a second, so a
    /// running `serve` never waits long for the database).
    pub batch_messages: usize,
    /// Bytes of messages per chunk handed to a worker (bounds memory with large messages).
    pub batch_bytes: usize,
    /// A message larger than this is counted as an error and skipped.
    pub max_message_bytes: usize,
    /// Keep the raw message (compressed) as evidence.
    pub keep_raw: bool,
    /// Input size (bytes) from which a load into a store without events builds two of
    /// its indexes once at the end (`store::bulk_indexes`): below it, dropping and
    /// creating them costs more than they save (and an empty run would sync more).
    pub defer_indexes_from_bytes: u64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
        IngestOptions {
            workers,
            batch_messages: 5000,
            batch_bytes: 4 << 20,
            max_message_bytes: 64 << 20,
            keep_raw: true,
            defer_indexes_from_bytes: 4 << 20,
        }
    }
}

/// Messages in one chunk handed to a worker: large enough that the hand-offs cost
/// nothing, small enough that the workers share the input evenly.
const CHUNK_MESSAGES: usize = 128;

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
    /// An input path could not be listed, or the database's WAL file synced.
    #[error("{path}: {error}")]
    Io {
        /// The input file or directory, or the database's WAL file when syncing it failed.
        path: PathBuf,
        /// Why the file system call failed.
        error: std::io::Error,
    },
    /// The classification rules could not be loaded.
    #[error("{0}")]
    Classify(String),
    /// A worker thread stopped without handing back its messages.
    #[error("a worker thread failed")]
    Worker,
}

impl From<rusqlite::Error> for IngestError {
    fn from(e: rusqlite::Error) -> Self {
        IngestError::Store(e.into())
    }
}

/// The classifier, compiled when the first message that is not yet stored needs it: a
/// run over messages already stored never pays for compiling the rules.
pub struct LazyClassifier<'a> {
    cell: OnceLock<Result<Classifier, String>>,
    build: Option<Box<dyn Fn() -> Result<Classifier, ClassifyError> + Send + Sync + 'a>>,
}

impl<'a> LazyClassifier<'a> {
    /// A classifier that `build` makes on first use.
    pub fn new(build: impl Fn() -> Result<Classifier, ClassifyError> + Send + Sync + 'a) -> Self {
        LazyClassifier { cell: OnceLock::new(), build: Some(Box::new(build)) }
    }

    /// A classifier already built.
    pub fn ready(classifier: Classifier) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(classifier));
        LazyClassifier { cell, build: None }
    }

    fn get(&self) -> Result<&Classifier, &str> {
        let build = || match &self.build {
            Some(build) => build().map_err(|e| e.to_string()),
            None => Err("no classifier".to_string()),
        };
        self.cell.get_or_init(build).as_ref().map_err(String::as_str)
    }
}

/// A message on its way from the reader to the writer.
struct Item {
    sha256: String,
    file: usize,
    /// None: already stored (seen by the worker).
    work: Option<Work>,
}

/// Messages as read: (index of the input file, bytes).
type RawChunk = Chunk<(usize, Vec<u8>)>;
/// The same messages, hashed and processed.
type DoneChunk = Chunk<Item>;

struct Chunk<T> {
    items: Vec<T>,
    /// Input bytes and files finished with this chunk, for progress.
    bytes_read: u64,
    files_done: u64,
    errors: Vec<String>,
}

impl<T> Chunk<T> {
    fn new() -> Self {
        Chunk { items: Vec::new(), bytes_read: 0, files_done: 0, errors: Vec::new() }
    }
}

/// Ingests every message under `paths` into the store at `db` (already migrated),
/// calling `progress` as chunks are written. Returns the summary.
pub fn ingest(
    conn: &mut Connection,
    db: &Path,
    paths: &[PathBuf],
    classifier: &LazyClassifier<'_>,
    verp: &crate::verp::VerpConfig,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(&IngestSummary),
) -> Result<IngestSummary, IngestError> {
    let start = Instant::now();
    let inputs = collect_inputs(paths)?;
    let mut summary = IngestSummary { bytes_total: inputs.iter().map(|i| i.size).sum(), ..Default::default() };
    let workers = opts.workers.max(1);
    // Chunks go to whichever worker is free; the writer gets, in input order, one
    // receiver per chunk for its result. The bounded order queue is what bounds memory.
    let (work_tx, work_rx) = sync_channel::<(RawChunk, SyncSender<DoneChunk>)>(workers);
    let (order_tx, order_rx) = sync_channel::<Receiver<DoneChunk>>(workers * 4);
    // Shared by the workers only: once they have all stopped (an error), the reader's
    // next send fails and it stops too.
    let work_rx = Arc::new(Mutex::new(work_rx));
    let failed: OnceLock<String> = OnceLock::new();
    let now = chrono::Utc::now().timestamp();
    let store_empty = !conn.query_row("SELECT EXISTS (SELECT 1 FROM messages)", [], |r| r.get::<_, bool>(0))?;

    // Set when the reader has handed out its last chunk.
    let read_all = AtomicBool::new(false);
    let written = std::thread::scope(|s| {
        let (inputs, failed, read_all) = (&inputs, &failed, &read_all);
        s.spawn(move || {
            read_files(inputs, opts, work_tx, order_tx);
            read_all.store(true, Ordering::Relaxed);
        });
        for _ in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            s.spawn(move || work(&work_rx, db, classifier, opts, now, store_empty, failed));
        }
        drop(work_rx);
        // On an error the writer returns and drops `order_rx`: the reader's next send
        // fails, it stops and drops the work queue, and the workers stop in turn.
        write::write_chunks(conn, db, order_rx, read_all, inputs, verp, opts, now, &mut summary, start, progress)
    });
    if let Some(e) = failed.get() {
        return Err(IngestError::Classify(e.clone()));
    }
    written?;
    summary.elapsed_secs = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn read_files(
    inputs: &[Input],
    opts: &IngestOptions,
    work: SyncSender<(RawChunk, SyncSender<DoneChunk>)>,
    order: SyncSender<Receiver<DoneChunk>>,
) {
    let mut out = Batcher { chunk: RawChunk::new(), bytes: 0, limit: FIRST_CHUNK_MESSAGES, opts, work, order };
    for (i, input) in inputs.iter().enumerate() {
        let read = if input.size <= WHOLE_FILE_BYTES { read_whole(i, input, &mut out) } else { read_stream(i, input, &mut out) };
        match read {
            Read::Stop => return,
            Read::Skipped => continue,
            Read::Done => {
                out.chunk.bytes_read += input.size;
                out.chunk.files_done += 1;
            }
        }
    }
    out.send();
}

/// Files up to this size are read with one call and split in memory.
const WHOLE_FILE_BYTES: u64 = 1 << 20;

/// Messages in the first chunk; each chunk sent doubles it up to [`CHUNK_MESSAGES`], so
/// on a small input the workers and the writer start early.
const FIRST_CHUNK_MESSAGES: usize = 16;

/// What became of one input file.
enum Read {
    /// Read (or failed, with the error in the chunk): counted as a file.
    Done,
    /// A walked file that is not a message (or is gone): not counted.
    Skipped,
    /// The workers or the writer stopped.
    Stop,
}

/// Groups messages into chunks and hands each to the workers, its result to the writer.
struct Batcher<'a> {
    chunk: RawChunk,
    bytes: usize,
    limit: usize,
    opts: &'a IngestOptions,
    work: SyncSender<(RawChunk, SyncSender<DoneChunk>)>,
    order: SyncSender<Receiver<DoneChunk>>,
}

impl Batcher<'_> {
    /// Adds message `index` (1-based) of input `file`; false when the run has stopped.
    fn push(&mut self, file: usize, path: &Path, index: u64, m: ReadMessage) -> bool {
        match m {
            ReadMessage::TooLarge(n) => {
                self.chunk.errors.push(format!("{}: message {index}: {n} bytes, over the limit", path.display()));
                true
            }
            ReadMessage::Message(m) => {
                self.bytes += m.len();
                self.chunk.items.push((file, m));
                if self.chunk.items.len() >= self.limit || self.bytes >= self.opts.batch_bytes {
                    return self.send();
                }
                true
            }
        }
    }

    fn send(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, RawChunk::new());
        self.bytes = 0;
        self.limit = (self.limit * 2).min(CHUNK_MESSAGES);
        let (tx, rx) = sync_channel(1);
        self.order.send(rx).is_ok() && self.work.send((chunk, tx)).is_ok()
    }
}

/// A file found by walking that is gone by the time it is read (a maildir message moved
/// from new/ to cur/ meanwhile): not an error. Any other failure to read it is one.
fn vanished(input: &Input, e: &std::io::Error) -> bool {
    input.walked && e.kind() == std::io::ErrorKind::NotFound
}

/// A small file: one read, the message check on the bytes read, split in memory.
fn read_whole(file: usize, input: &Input, out: &mut Batcher<'_>) -> Read {
    let data = match std::fs::read(&input.path) {
        Ok(d) => d,
        Err(e) if vanished(input, &e) => return Read::Skipped,
        Err(e) => {
            out.chunk.errors.push(format!("{}: {e}", input.path.display()));
            return Read::Done;
        }
    };
    if input.walked && !looks_like_message(&data) {
        return Read::Skipped;
    }
    for (k, m) in split_whole(data, out.opts.max_message_bytes).into_iter().enumerate() {
        if !out.push(file, &input.path, k as u64 + 1, m) {
            return Read::Stop;
        }
    }
    Read::Done
}

/// A large file (an mbox, most likely): streamed, memory bounded by the largest message.
fn read_stream(file: usize, input: &Input, out: &mut Batcher<'_>) -> Read {
    let path = &input.path;
    let mut r = match std::fs::File::open(path) {
        Ok(f) => BufReader::with_capacity(1 << 20, f),
        Err(e) if vanished(input, &e) => return Read::Skipped,
        Err(e) => {
            out.chunk.errors.push(format!("{}: {e}", path.display()));
            return Read::Done;
        }
    };
    if input.walked && !r.fill_buf().is_ok_and(looks_like_message) {
        return Read::Skipped;
    }
    let mut reader = MessageReader::new(r, out.opts.max_message_bytes);
    let mut index = 0u64;
    loop {
        match reader.next_message() {
            Ok(None) => return Read::Done,
            Err(e) => {
                out.chunk.errors.push(format!("{}: message {}: {e}", path.display(), index + 1));
                return Read::Done;
            }
            Ok(Some(m)) => {
                index += 1;
                if !out.push(file, path, index, m) {
                    return Read::Stop;
                }
            }
        }
    }
}

fn work(
    rx: &Mutex<Receiver<(RawChunk, SyncSender<DoneChunk>)>>,
    db: &Path,
    classifier: &LazyClassifier<'_>,
    opts: &IngestOptions,
    now: i64,
    store_empty: bool,
    failed: &OnceLock<String>,
) {
    // A read connection of its own, to skip known messages before parsing them; the
    // writer checks again inside its transaction (a message may repeat within a run).
    // Into a store that held no message when the run began there is nothing to look up.
    let reader = (!store_empty)
        .then(|| Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok())
        .flatten();
    let mut waited = std::time::Duration::ZERO;
    let t0 = Instant::now();
    loop {
        let t = Instant::now();
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        waited += t.elapsed();
        let Ok((chunk, reply)) = next else {
            tracing::debug!(waited = ?waited, total = ?t0.elapsed(), "ingest worker");
            return;
        };
        let items = chunk
            .items
            .into_iter()
            .map(|(file, raw)| {
                let sha256 = hex_sha256(&raw);
                let known = reader.as_ref().is_some_and(|c| query::message_exists(c, &sha256).unwrap_or(false));
                let work = if known {
                    None
                } else {
                    match classifier.get() {
                        Ok(c) => Some(message::prepare(&raw, sha256.clone(), c, opts.keep_raw, now)),
                        Err(e) => {
                            let _ = failed.set(e.to_string());
                            return None;
                        }
                    }
                };
                Some(Item { sha256, file, work })
            })
            .collect::<Option<Vec<_>>>();
        let Some(items) = items else { return };
        let done = Chunk { items, bytes_read: chunk.bytes_read, files_done: chunk.files_done, errors: chunk.errors };
        if reply.send(done).is_err() {
            return;
        }
    }
}
