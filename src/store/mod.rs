//! The SQLite disposition store: opening and migrating (`mod.rs`, `migrate.rs`), the
//! single writer thread with group commit (`writer.rs`), and the reads (`query.rs`).

pub mod bulk_indexes;
pub mod correlate;
pub mod dedup;
pub mod event;
pub mod hooks;
pub mod lockfile;
pub mod query;
pub mod logevents;
pub mod logpos;
pub(crate) mod checkpoint;
pub mod durable;
mod flusher;
mod migrate;
pub mod raw;
mod raw_insert;
pub mod writer;
pub mod rejects;
pub mod sends;
pub mod status;

pub use migrate::{migrate, schema_version, MIGRATIONS};

use rusqlite::Connection;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Path of the SQLite database.
    pub db: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { db: PathBuf::from("rebound.db") }
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer rebound.
    #[error("database schema version {found} is newer than this rebound knows ({known}); upgrade rebound")]
    TooNew {
        /// The database's schema version (`PRAGMA user_version`).
        found: i64,
        /// The latest schema version this rebound knows (its number of migrations).
        known: i64,
    },
    /// The database is older than this binary and `open` was asked not to migrate.
    #[error("database schema version {found} is older than {known}; run `rebound db migrate`")]
    TooOld {
        /// The database's schema version (`PRAGMA user_version`).
        found: i64,
        /// The latest schema version this rebound knows (its number of migrations).
        known: i64,
    },
    /// A new database file could not be synced to disk, or the bulk-load lock file taken.
    #[error("{path}: {source}")]
    Io {
        /// The new database file, or the `-bulkload` lock file beside the database.
        path: PathBuf,
        /// Why syncing or locking it failed.
        source: std::io::Error,
    },
    /// The VERP key files could not be read or created.
    #[error("{0}")]
    Keys(#[from] crate::verp_keys::KeyFileError),
}

/// Sets the pragmas every connection uses (WAL, synchronous=FULL, foreign keys, busy timeout).
pub fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Opens (creating if needed) the database and migrates it to the current schema.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    if conn.pragma_query_value(None, "page_count", |r| r.get::<_, i64>(0))? == 0 {
        create(&mut conn)?;
        if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            // The file is synced through a descriptor of its own, and closing any
            // descriptor of a file drops every POSIX lock the process holds on it. A
            // connection open across that close would think it still holds its SHARED
            // lock while another process's connection, closing last, takes EXCLUSIVE,
            // checkpoints and deletes the WAL under it (every later flush then fails).
            // So the creating connection is closed first and the store opened anew.
            drop(conn);
            sync_new_file(path).map_err(|source| StoreError::Io { path: path.to_owned(), source })?;
            conn = Connection::open(path)?;
        }
    }
    configure(&conn)?;
    // An ingest that stopped mid-load may have left its deferred indexes dropped; put
    // them back before a migration might refer to them (not while the load still runs).
    if schema_version(&conn)? >= 1 {
        bulk_indexes::restore_if_abandoned(&mut conn)?;
    }
    migrate(&mut conn)?;
    Ok(conn)
}

/// Page size of a new database. Every message row holds its raw bytes (LZ4, a few KiB),
/// which at SQLite's default 4 KiB spill into overflow pages, and every page a
/// transaction changes is written to the WAL in two system calls and copied again by
/// the checkpoint: at 16 KiB ingest's writer thread takes ~22 % and its checkpoint
/// thread ~45 % less CPU, the whole run ~9-14 % less per message (corpus x30). The cost
/// is on small commits, which write whole pages: LMTP at 8 sessions (batches of 4-6)
/// took ~58 -> ~67 us of writer CPU per message, the server as a whole within the noise
/// (~205 us). Databases created before keep 4 KiB (changing it takes a VACUUM).
const PAGE_BYTES: i64 = 16384;

/// Lays out a new, empty database file: WAL mode and the schema, written without a
/// sync at each step (the switch to WAL alone costs four fsyncs and one of the
/// directory, for a file that holds nothing yet), then checkpointed into the file,
/// which [`open`] syncs with its directory once, before anything is stored in it.
fn create(conn: &mut Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    // Only a database without pages takes a page size (WAL fixes it from then on).
    conn.pragma_update(None, "page_size", PAGE_BYTES)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    migrate(conn)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Syncs a newly created database file and the directory holding it (no-op for a
/// path that is not a file, such as an in-memory database).
fn sync_new_file(path: &Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_all()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Opens an existing database for reading and writing without migrating it; fails if
/// its schema is not the current one.
pub fn open_current(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    let found = schema_version(&conn)?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    if found < known {
        return Err(StoreError::TooOld { found, known });
    }
    Ok(conn)
}
