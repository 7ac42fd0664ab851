//! Postfix e2e (below).
