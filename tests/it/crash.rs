//! Tests: crash.
