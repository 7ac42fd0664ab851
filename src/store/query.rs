//! The reads operators and reports make: the last events of an address,
//! one event and its message, report aggregates, and the suppression export rows.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// One row of `events`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct EventRow {
    /// Row id (`events.id`).
    pub id: i64,
    /// When it happened (Unix seconds): log line, reject or Date time if known, else when stored.
    pub occurred_at: i64,
    /// Where it came from: lmtp, milter, ingest, reject or log.
    pub source: String,
    /// Row id of the `messages` row it came from (not a Message-ID); None for reject and log.
    pub message_id: Option<i64>,
    /// The return path the report reached (RCPT TO, Delivered-To, or the logged sender), or "".
    pub envelope_recipient: String,
    /// The address the report is about.
    pub recipient: String,
    /// Lower-case domain of `recipient` ("" if it has none).
    pub domain: String,
    /// bounce, delay, delivered, relayed, autoreply, complaint or unknown.
    pub kind: String,
    /// DSN Action (failed, delayed, delivered, relayed, expanded), or "".
    pub action: String,
    /// Enhanced status code, stated or implied by the reason (e.g. "5.1.1", "5.0.911"), or "".
    pub status: String,
    /// SMTP reply code (e.g. 550); None when the report gives none.
    pub reply_code: Option<i64>,
    /// The remote server's text, or "".
    pub diagnostic: String,
    /// Host that returned the error, or "".
    pub remote_mta: String,
    /// Host that wrote the report (or the log line), or "".
    pub reporting_mta: String,
    /// SMTP command the error answered (RCPT, DATA ...), or "".
    pub smtp_command: String,
    /// ARF Feedback-Type of a complaint (abuse, opt-out ...), or "".
    pub feedback_type: String,
    /// Auto-reply return date (YYYY-MM-DD) when stated, or "".
    pub return_date: String,
    /// Message-ID of the returned original, or "".
    pub original_message_id: String,
    /// Sisimai v5 reason ([`crate::classify::Reason`] name).
    pub reason: String,
    /// Coarse class ([`crate::classify::Class`] name).
    pub class: String,
    /// Whose fault: recipient, sender, transient or none.
    pub fault: String,
    /// Permanent failure of the address itself.
    pub hard: bool,
    /// Id of the classification rule that decided.
    pub rule: String,
    /// Id of the send it is linked to (by VERP token, or named by a reject); None when not linked.
    pub send_id: Option<String>,
    /// The return-path token found, or "".
    pub verp: String,
    /// Trusted: valid token, classic VERP with a live send, or a reject matching any named send.
    pub verified: bool,
}

/// One row of `messages`, with its raw bytes as stored (compressed as `raw_encoding` says; None once pruned).
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    /// Row id (`messages.id`).
    pub id: i64,
    /// When rebound stored it (Unix seconds).
    pub received_at: i64,
    /// lmtp, milter or ingest.
    pub source: String,
    /// MAIL FROM ("" for <>).
    pub envelope_sender: String,
    /// JSON array as stored.
    pub envelope_recipients: String,
    /// Size of the raw message in bytes (uncompressed).
    pub size_bytes: i64,
    /// Lower-case hex SHA-256 of the raw message.
    pub sha256: String,
    /// Message-level kind: bounce, delay, delivered, relayed, autoreply, complaint or unknown.
    pub kind: String,
    /// The message compressed as `raw_encoding` says; None once pruned or never kept.
    #[serde(skip)]
    pub raw: Option<Vec<u8>>,
    /// How `raw` is compressed: "lz4" or "deflate".
    pub raw_encoding: String,
}

/// Event counts for one combination of grouping fields, within a time window.
#[derive(Debug, Clone, PartialEq)]
pub struct EventAggregate {
    /// Lower-case domain of the events' recipient.
    pub domain: String,
    /// Campaign of the send the event belongs to ("" when not correlated).
    pub campaign: String,
    /// Event kind (bounce, delay, delivered ...).
    pub kind: String,
    /// Coarse class.
    pub class: String,
    /// Sisimai v5 reason.
    pub reason: String,
    /// Whose fault: recipient, sender, transient or none.
    pub fault: String,
    /// Permanent failure of the address itself.
    pub hard: bool,
    /// Number of events (duplicates of an earlier event left out).
    pub count: i64,
}

/// Send counts per domain and campaign within a time window.
#[derive(Debug, Clone, PartialEq)]
pub struct SendAggregate {
    /// Lower-case domain of the sends' recipient.
    pub domain: String,
    /// Campaign or stream name of the sends ("" when none was given).
    pub campaign: String,
    /// Number of sends.
    pub count: i64,
}

/// One address of a suppression export, borrowed from the current database row.
#[derive(Debug, Clone, Copy)]
pub struct ExportRow<'a> {
    /// Lower-case address.
    pub address: &'a str,
    /// State: active, soft_bouncing, suppressed, complained or unsubscribed.
    pub state: &'a str,
    /// Reason of the event that set the state, or "".
    pub reason: &'a str,
    /// Class of that event, or "".
    pub class: &'a str,
    /// When the address entered this state (Unix seconds).
    pub since: i64,
    /// When the suppression lifts (Unix seconds); None: until further notice.
    pub suppressed_until: Option<i64>,
}

const EVENT_COLUMNS: &str = "id, occurred_at, source, message_id, envelope_recipient, recipient, domain, kind, action,
    status, reply_code, diagnostic, remote_mta, reporting_mta, smtp_command, feedback_type, return_date,
    original_message_id, reason, class, fault, hard, rule, send_id, verp, verified";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        occurred_at: r.get(1)?,
        source: r.get(2)?,
        message_id: r.get(3)?,
        envelope_recipient: r.get(4)?,
        recipient: r.get(5)?,
        domain: r.get(6)?,
        kind: r.get(7)?,
        action: r.get(8)?,
        status: r.get(9)?,
        reply_code: r.get(10)?,
        diagnostic: r.get(11)?,
        remote_mta: r.get(12)?,
        reporting_mta: r.get(13)?,
        smtp_command: r.get(14)?,
        feedback_type: r.get(15)?,
        return_date: r.get(16)?,
        original_message_id: r.get(17)?,
        reason: r.get(18)?,
        class: r.get(19)?,
        fault: r.get(20)?,
        hard: r.get(21)?,
        rule: r.get(22)?,
        send_id: r.get(23)?,
        verp: r.get(24)?,
        verified: r.get(25)?,
    })
}

/// The last `limit` events about an address (case-insensitive), newest first.
pub fn last_events(conn: &Connection, address: &str, limit: u32) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE recipient = ?1 COLLATE NOCASE
         ORDER BY occurred_at DESC, id DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![address.trim(), limit], event_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One event by id.
pub fn event_by_id(conn: &Connection, id: i64) -> Result<Option<EventRow>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row(params![id], event_from_row).optional()?)
}

/// The events that came from one message, in order.
pub fn events_of_message(conn: &Connection, message_id: i64) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE message_id = ?1 ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![message_id], event_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One stored message by id.
pub fn message_by_id(conn: &Connection, id: i64) -> Result<Option<StoredMessage>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, received_at, source, envelope_sender, envelope_recipients, size_bytes, sha256, kind, raw,
                raw_encoding FROM messages WHERE id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok(StoredMessage {
                id: r.get(0)?,
                received_at: r.get(1)?,
                source: r.get(2)?,
                envelope_sender: r.get(3)?,
                envelope_recipients: r.get(4)?,
                size_bytes: r.get(5)?,
                sha256: r.get(6)?,
                kind: r.get(7)?,
                raw: r.get(8)?,
                raw_encoding: r.get(9)?,
            })
        })
        .optional()?)
}

pub(crate) const MESSAGE_EXISTS: &str = "SELECT 1 FROM messages WHERE sha256 = ?1 LIMIT 1";

/// Whether a message with this SHA-256 (hex) is stored.
pub fn message_exists(conn: &Connection, sha256: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(MESSAGE_EXISTS)?
        .query_row(params![sha256], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Event counts in `[since, until)` grouped by domain, campaign, kind, class, reason,
/// fault and hard; a failure seen in both the log and a DSN counts once.
pub fn event_aggregates(conn: &Connection, since: i64, until: i64) -> Result<Vec<EventAggregate>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.domain, COALESCE(s.campaign, ''), e.kind, e.class, e.reason, e.fault, e.hard, COUNT(*)
         FROM events e LEFT JOIN sends s ON s.id = e.send_id
         WHERE e.occurred_at >= ?1 AND e.occurred_at < ?2 AND e.duplicate_of IS NULL
         GROUP BY 1, 2, 3, 4, 5, 6, 7",
    )?;
    let rows = stmt.query_map(params![since, until], |r| {
        Ok(EventAggregate {
            domain: r.get(0)?,
            campaign: r.get(1)?,
            kind: r.get(2)?,
            class: r.get(3)?,
            reason: r.get(4)?,
            fault: r.get(5)?,
            hard: r.get(6)?,
            count: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Send counts in `[since, until)` grouped by domain and campaign.
pub fn send_aggregates(conn: &Connection, since: i64, until: i64) -> Result<Vec<SendAggregate>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT domain, campaign, COUNT(*) FROM sends WHERE sent_at >= ?1 AND sent_at < ?2 GROUP BY 1, 2",
    )?;
    let rows = stmt.query_map(params![since, until], |r| {
        Ok(SendAggregate { domain: r.get(0)?, campaign: r.get(1)?, count: r.get(2)? })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Calls `f` for every address whose state is one of `states`, that entered it at or
/// after `since`, and whose suppression has not lifted by `now`; sorted by address.
/// Returns the number of rows.
pub fn for_each_export_row<E: From<StoreError>>(
    conn: &Connection,
    states: &[&str],
    since: i64,
    now: i64,
    mut f: impl FnMut(ExportRow<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    // One pass over the covering index (schema/005_export.sql), already in address
    // order; the few states asked for are compared here rather than in SQL, where an
    // IN list would cost a lookup per row.
    let mut stmt = conn
        .prepare_cached(
            "SELECT address, state, reason, class, since, suppressed_until
             FROM address_status INDEXED BY address_status_export
             WHERE since >= ?1 AND (suppressed_until IS NULL OR suppressed_until > ?2)
             ORDER BY address",
        )
        .map_err(|e| E::from(e.into()))?;
    let mut rows = stmt.query(params![since, now]).map_err(|e| E::from(e.into()))?;
    let mut n = 0u64;
    while let Some(r) = rows.next().map_err(|e| E::from(e.into()))? {
        let get_str = |i: usize| -> Result<&str, E> {
            r.get_ref(i).and_then(|v| v.as_str().map_err(Into::into)).map_err(|e| E::from(StoreError::from(e)))
        };
        let state = get_str(1)?;
        if !states.contains(&state) {
            continue;
        }
        let row = ExportRow {
            address: get_str(0)?,
            state,
            reason: get_str(2)?,
            class: get_str(3)?,
            since: r.get(4).map_err(|e| E::from(e.into()))?,
            suppressed_until: r.get(5).map_err(|e| E::from(e.into()))?,
        };
        f(row)?;
        n += 1;
    }
    Ok(n)
}

impl StoredMessage {
    /// The message bytes, decoded as `raw_encoding` says (None once pruned, if the
    /// stored bytes are corrupt, or of an encoding this rebound does not know).
    /// Bounded at 1 GiB so a corrupt or hostile row cannot exhaust memory.
    pub fn raw_bytes(&self) -> Option<Vec<u8>> {
        let raw = self.raw.as_deref()?;
        let encoding = super::raw::RawEncoding::from_column(&self.raw_encoding)?;
        super::raw::decode(raw, encoding, 1 << 30).ok()
    }
}

/// Drops the raw bytes of messages received before `before` (Unix seconds); events
/// are kept. Returns (messages pruned, compressed bytes freed).
pub fn prune_raw(conn: &Connection, before: i64) -> Result<(u64, u64), StoreError> {
    let (n, bytes): (i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), SUM(length(raw)) FROM messages WHERE received_at < ?1 AND raw IS NOT NULL",
        params![before],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    conn.execute("UPDATE messages SET raw = NULL WHERE received_at < ?1 AND raw IS NOT NULL", params![before])?;
    Ok((n as u64, bytes.unwrap_or(0) as u64))
}
