//! What an inserted event changes beyond its own row (address_status through the
//! policy). Runs inside the inserting transaction.

use super::event::NewEvent;
use super::StoreError;
use rusqlite::Transaction;

/// Applies the consequences of event `id` (address status) in the same transaction.
pub fn after_event(_tx: &Transaction<'_>, _id: i64, _e: &NewEvent) -> Result<(), StoreError> {
    Ok(())
}
