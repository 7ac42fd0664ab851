//! Bytes of a message → [`ParsedMessage`]: pure, synchronous, never panics.
//!
//! The standard paths come first (RFC 3464/6522/6533 delivery-status, RFC 5965 ARF,
//! RFC 3834 auto-replies); the non-standard formats of MTA families live under `mta/`.

pub mod mbox;
pub mod record;

pub use record::{Kind, OriginalMessage, ParsedMessage, Record};

/// Parses one message (RFC 5322 bytes) into its recipient reports.
pub fn parse_message(raw: &[u8]) -> ParsedMessage {
    let _ = raw;
    ParsedMessage::default()
}
