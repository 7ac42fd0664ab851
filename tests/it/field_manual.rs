//! Tests: field_manual.
