//! Sendmail milter protocol (version 6) server, as spoken by Sendmail's
//! INPUT_MAIL_FILTER and Postfix's smtpd_milters: `codec` (packets), `command` (verbs
//! and replies), `protocol` (the pure state machine), `record` (storing a message
//! through the shared pipeline), `token` (the RCPT-time VERP check), `session` (one
//! connection) and `server` (listeners, limits, drain).

pub mod codec;
pub mod command;
mod config;
pub mod protocol;
pub mod record;
pub mod server;
pub mod session;
pub mod token;

pub use config::MilterConfig;
pub use protocol::{Delivery, Milter, OnEom, Policy, TokenCheck, TokenStatus};
