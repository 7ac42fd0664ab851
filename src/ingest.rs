//! Backfill: streaming mbox/maildir/.eml reading through the shared pipeline, idempotent by sha256.
