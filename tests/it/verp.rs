//! Tests: verp.
