//! What an inserted event changes beyond its own row (address_status through the
//! policy). Runs inside the inserting transaction.

use super::event::NewEvent;
use super::StoreError;
use rusqlite::Transaction;

/// Applies the consequences of event `id` (address status) in the same transaction.
pub fn after_event(tx: &Transaction<'_>, id: i64, e: &NewEvent) -> Result<(), StoreError> {
    // The same result seen twice (log line now, the MTA's DSN later) counts once.
    if super::dedup::is_duplicate(tx, id, e)? {
        return Ok(());
    }
    Ok(())
}
