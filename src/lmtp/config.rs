//! LMTP server settings (the `[lmtp]` section).

use serde::Deserialize;
use std::path::PathBuf;

/// The `[lmtp]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmtpConfig {
    /// TCP addresses to listen on (`--listen` replaces them).
    pub listen: Vec<String>,
    /// Unix socket paths to listen on (`--socket` replaces them).
    pub sockets: Vec<PathBuf>,
    /// Permissions of the unix sockets, octal (e.g. "0660" for the MTA's group).
    pub socket_mode: String,
    /// Host name in the greeting and LHLO reply ("" = the system host name).
    pub hostname: String,
    /// Most simultaneous connections; more get 421 4.3.2.
    pub max_connections: usize,
    /// Largest message accepted, in bytes (announced as SIZE; larger gets 552 5.3.4).
    pub max_message_bytes: usize,
    /// Most recipients in one transaction; more get 452 4.5.3.
    pub max_recipients: usize,
    /// Longest command or message line, in bytes without the line end (500 5.5.2).
    pub max_line_bytes: usize,
    /// Seconds a client may stay silent before 421 4.4.2 and close.
    pub idle_timeout_secs: u64,
    /// Seconds SIGTERM waits for transactions in flight before exiting anyway.
    pub shutdown_grace_secs: u64,
    /// Keep each message's raw bytes (compressed) in `messages.raw` as evidence.
    pub keep_raw: bool,
    /// Answer 250 once the message is durable in the intake spool (`<db>-spool/`) and
    /// store it in the next batch; false: answer once its rows are committed.
    pub spool: bool,
    /// Bytes of acknowledged messages that may wait in the spool for the store before
    /// new ones get 451 4.3.0 (on disk; a restart stores them before it listens).
    pub spool_backlog_bytes: usize,
    /// Of those, bytes the spool may hold in memory; the rest is read back from its
    /// files when the store gets to it.
    pub spool_memory_bytes: usize,
}

impl Default for LmtpConfig {
    fn default() -> Self {
        LmtpConfig {
            listen: vec!["127.0.0.1:2424".into()],
            sockets: Vec::new(),
            socket_mode: "0660".into(),
            hostname: String::new(),
            max_connections: 100,
            max_message_bytes: 50 << 20,
            max_recipients: 1000,
            max_line_bytes: 64 << 10,
            idle_timeout_secs: 300,
            shutdown_grace_secs: 30,
            keep_raw: true,
            spool: true,
            spool_backlog_bytes: 64 << 20,
            spool_memory_bytes: 8 << 20,
        }
    }
}

impl LmtpConfig {
    /// The intake spool's settings.
    pub fn spool_options(&self) -> crate::spool::SpoolOptions {
        crate::spool::SpoolOptions {
            max_backlog_bytes: self.spool_backlog_bytes,
            max_held_bytes: self.spool_memory_bytes,
            ..Default::default()
        }
    }

    /// The socket mode as a number (None when it is not octal permission bits).
    pub fn socket_mode_bits(&self) -> Option<u32> {
        u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8).ok().filter(|m| *m <= 0o7777)
    }
}
