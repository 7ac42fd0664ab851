//! Tests: ops.
