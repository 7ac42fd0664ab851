//! Tests: follow.
