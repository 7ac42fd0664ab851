//! `sends`: what was sent to whom and the return path it carried. Rows are keyed by
//! the send id (case-insensitive, as in the VERP token).

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// One `sends` row.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Send {
    /// The send id carried in the VERP token.
    pub id: String,
    /// The address mailed.
    pub recipient: String,
    /// From / envelope sender used.
    pub sender: String,
    /// Campaign or stream name.
    pub campaign: String,
    /// When it was sent (Unix seconds).
    pub sent_at: i64,
    /// When its return-path token stops verifying.
    pub expires_at: Option<i64>,
    /// The VERP address printed for it.
    pub return_path: String,
    /// Free JSON from the app.
    pub metadata: String,
}

const COLUMNS: &str = "id, recipient, sender, campaign, sent_at, expires_at, return_path, metadata";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Send> {
    Ok(Send {
        id: r.get(0)?,
        recipient: r.get(1)?,
        sender: r.get(2)?,
        campaign: r.get(3)?,
        sent_at: r.get(4)?,
        expires_at: r.get(5)?,
        return_path: r.get(6)?,
        metadata: r.get(7)?,
    })
}

/// Inserts a send, replacing one with the same id (imports can be re-run).
pub fn put_send(conn: &Connection, s: &Send) -> Result<(), StoreError> {
    let metadata = if s.metadata.trim().is_empty() { "{}" } else { s.metadata.as_str() };
    conn.prepare_cached(
        "INSERT INTO sends (id, recipient, domain, sender, campaign, sent_at, expires_at, return_path, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET recipient = excluded.recipient, domain = excluded.domain,
            sender = excluded.sender, campaign = excluded.campaign, sent_at = excluded.sent_at,
            expires_at = excluded.expires_at, return_path = excluded.return_path, metadata = excluded.metadata",
    )?
    .execute(params![
        s.id,
        s.recipient,
        super::event::domain_of(&s.recipient),
        s.sender,
        s.campaign,
        s.sent_at,
        s.expires_at,
        s.return_path,
        metadata,
    ])?;
    Ok(())
}

/// The send with this id (case-insensitive).
pub fn get_send(conn: &Connection, id: &str) -> Result<Option<Send>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM sends WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], from_row).optional()?)
}

/// The latest send to `recipient` (case-insensitive) whose token had not expired at
/// `now`, for classic VERP, which carries only the address.
pub fn latest_send_to(conn: &Connection, recipient: &str, now: i64) -> Result<Option<Send>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sends WHERE recipient = ?1 COLLATE NOCASE
            AND (expires_at IS NULL OR expires_at > ?2) AND sent_at <= ?2
         ORDER BY sent_at DESC LIMIT 1"
    );
    Ok(conn.prepare_cached(&sql)?.query_row(params![recipient.trim(), now], from_row).optional()?)
}
