//! Tests: lmtp.
