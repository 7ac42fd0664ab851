//! rebound: an inbound asynchronous-bounce processor.
//!
//! Pure core: [`parse`] (bytes → records), [`classify`] (record → verdict), [`verp`]
//! (return-path tokens), [`policy`] (event → address status). I/O shell: [`store`]
//! (SQLite), [`spool`] (the durable intake log in front of it), [`lmtp`] (RFC 2033 server). [`pipeline`] joins them.

#![deny(missing_docs)]
pub mod classify;
pub mod config;
pub mod export;
pub mod ingest;
pub mod lmtp;
pub mod maillog;
pub mod metrics;
pub mod milter;
pub mod parse;
pub mod pipeline;
pub mod policy;
pub mod provider;
pub mod report;
pub mod spool;
pub mod store;
pub mod systemd;
pub mod verp;
pub mod verp_keys;
