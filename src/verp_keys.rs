//! VERP key files: one hex key per line (`#` comments allowed), the first line of
//! `key_file` signs. A missing `key_file` is created with a fresh random key, mode 0600.

use crate::verp::{Keys, VerpConfig};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Errors reading or creating key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or created.
    #[error("verp key file {path}: {source}")]
    Io {
        /// Path of the key file.
        path: PathBuf,
        /// Why reading or creating it failed.
        source: std::io::Error,
    },
    /// A line is not a hex key of at least 16 bytes.
    #[error("verp key file {path}:{line}: not a hex key of at least 32 hex digits")]
    BadKey {
        /// Path of the key file.
        path: PathBuf,
        /// 1-based number of the offending line.
        line: usize,
    },
    /// The file holds no key.
    #[error("verp key file {path}: no key")]
    Empty {
        /// Path of the key file.
        path: PathBuf,
    },
}

/// Reads the keys of `key_file` (creating it if missing) and of `verify_key_files`.
pub fn load_or_create(config: &VerpConfig) -> Result<Keys, KeyFileError> {
    let key_file = config.key_path();
    let mut keys = match std::fs::read_to_string(&key_file) {
        Ok(text) => parse_keys(&key_file, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![create_key_file(&key_file)?],
        Err(source) => return Err(KeyFileError::Io { path: key_file, source }),
    };
    for path in &config.verify_key_files {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io { path: path.clone(), source })?;
        keys.extend(parse_keys(path, &text)?);
    }
    Ok(Keys::new(keys))
}

/// Like [`load_or_create`], but reads the files once per process and configuration.
pub fn cached(config: &VerpConfig) -> Result<Arc<Keys>, KeyFileError> {
    type Files = (PathBuf, Vec<PathBuf>);
    static CACHE: OnceLock<Mutex<HashMap<Files, Arc<Keys>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let k = (config.key_path(), config.verify_key_files.clone());
    if let Some(keys) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&k) {
        return Ok(keys.clone());
    }
    let keys = Arc::new(load_or_create(config)?);
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(k, keys.clone());
    Ok(keys)
}

/// The RCPT gate when `reject_invalid_verp` is on (None when it is off).
pub fn rcpt_gate(config: &VerpConfig) -> Result<Option<crate::verp::RcptGate>, KeyFileError> {
    if !config.reject_invalid_verp {
        return Ok(None);
    }
    let keys = cached(config)?;
    Ok(Some(crate::verp::RcptGate { keys: (*keys).clone(), config: config.clone() }))
}

/// Parses key file text: one hex key per line, blank lines and `#` comments ignored.
pub fn parse_keys(path: &Path, text: &str) -> Result<Vec<Vec<u8>>, KeyFileError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = data_encoding::HEXLOWER_PERMISSIVE
            .decode(line.as_bytes())
            .ok()
            .filter(|k| k.len() >= 16)
            .ok_or_else(|| KeyFileError::BadKey { path: path.to_owned(), line: i + 1 })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyFileError::Empty { path: path.to_owned() });
    }
    Ok(keys)
}

/// A new random 32-byte key, hex encoded.
pub fn new_key_hex() -> Result<String, std::io::Error> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(data_encoding::HEXLOWER.encode(&key))
}

fn create_key_file(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.to_owned(), source };
    let hex = new_key_hex().map_err(io)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            writeln!(f, "# rebound VERP keys: the first line signs, every line verifies. Keep secret.\n{hex}")
                .and_then(|_| f.sync_all())
                .map_err(io)?;
            tracing::info!(path = %path.display(), "created VERP key file");
            parse_keys(path, &hex)?.pop().ok_or_else(|| KeyFileError::Empty { path: path.to_owned() })
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            parse_keys(path, &text)?.into_iter().next().ok_or_else(|| KeyFileError::Empty { path: path.to_owned() })
        }
        Err(e) => Err(io(e)),
    }
}
