//! The RFC 2033 LMTP server: `server` owns the listeners and shutdown, `session` one
//! connection.

mod config;

pub use config::LmtpConfig;
