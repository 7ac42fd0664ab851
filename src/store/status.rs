//! `address_status`: one row per address, the table applications read. Written only
//! through the policy (see `hooks`).

use super::StoreError;
use crate::policy::{AddressStatus, State};
use rusqlite::{params, Connection, OptionalExtension, Row};

const COLUMNS: &str = "address, domain, state, reason, class, rule, since, first_event_at, last_event_at,
    last_event_id, hard_count, soft_count, soft_first_at, complaint_count, delivered_count, suppressed_until,
    updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AddressStatus> {
    let state: String = r.get(2)?;
    Ok(AddressStatus {
        address: r.get(0)?,
        domain: r.get(1)?,
        state: State::from_name(&state).unwrap_or_default(),
        reason: r.get(3)?,
        class: r.get(4)?,
        rule: r.get(5)?,
        since: r.get(6)?,
        first_event_at: r.get(7)?,
        last_event_at: r.get(8)?,
        last_event_id: r.get(9)?,
        hard_count: r.get(10)?,
        soft_count: r.get(11)?,
        soft_first_at: r.get(12)?,
        complaint_count: r.get(13)?,
        delivered_count: r.get(14)?,
        suppressed_until: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

/// The status row of an address (any case), if it has one.
pub fn get_status(conn: &Connection, address: &str) -> Result<Option<AddressStatus>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM address_status WHERE address = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([address.trim().to_ascii_lowercase()], from_row).optional()?)
}

/// Writes (inserts or replaces) a status row.
pub fn put_status(conn: &Connection, s: &AddressStatus) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT OR REPLACE INTO address_status ({COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    );
    conn.prepare_cached(&sql)?.execute(params![
        s.address,
        s.domain,
        s.state.as_str(),
        s.reason,
        s.class,
        s.rule,
        s.since,
        s.first_event_at,
        s.last_event_at,
        s.last_event_id,
        s.hard_count,
        s.soft_count,
        s.soft_first_at,
        s.complaint_count,
        s.delivered_count,
        s.suppressed_until,
        s.updated_at,
    ])?;
    Ok(())
}

/// Sets every suppression whose `suppressed_until` has passed back to active; returns
/// how many rows changed.
pub fn lift_expired(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE address_status SET state = 'active', since = suppressed_until, suppressed_until = NULL,
            soft_count = 0, soft_first_at = NULL, updated_at = ?1
         WHERE state = 'suppressed' AND suppressed_until IS NOT NULL AND suppressed_until <= ?1",
        [now],
    )?)
}
