//! Tests: milter.
