//! Tests: postfix_e2e.
