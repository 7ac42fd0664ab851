//! Rows of `messages` and `events`, and the inserts every entry point uses (LMTP,
//! milter, ingest, reject, log). Runs inside a caller's transaction.

use super::raw::StoredRaw;
use super::raw_insert::{RawInsert, Value};
use super::StoreError;
use rusqlite::{params, Connection, Statement, Transaction};

/// A received message, as stored in `messages`.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// When rebound stored it (Unix seconds).
    pub received_at: i64,
    /// lmtp, milter or ingest.
    pub source: String,
    /// MAIL FROM ("" for <>).
    pub envelope_sender: String,
    /// Accepted RCPT TO addresses.
    pub envelope_recipients: Vec<String>,
    /// Hex SHA-256 of the raw bytes.
    pub sha256: String,
    /// Message-level kind (bounce, delay, ..., unknown).
    pub kind: String,
    /// Size of the raw message.
    pub size_bytes: i64,
    /// The raw message, compressed ([`StoredRaw::compress`]); None keeps no evidence.
    pub raw: Option<StoredRaw>,
}

impl NewMessage {
    /// The row of message `raw` received now from `source`, of message-level `kind`,
    /// its bytes kept compressed when `keep_raw`; the envelope is left empty for the
    /// caller to fill. `sha256` is [`super::raw::hex_sha256`] of `raw`, which the caller
    /// may already have computed (ingest checks it for duplicates first).
    pub fn received(raw: &[u8], sha256: String, source: &str, kind: &str, keep_raw: bool, now: i64) -> NewMessage {
        NewMessage {
            received_at: now,
            source: source.to_string(),
            sha256,
            kind: kind.to_string(),
            size_bytes: i64::try_from(raw.len()).unwrap_or(i64::MAX),
            raw: keep_raw.then(|| StoredRaw::compress(raw)),
            ..Default::default()
        }
    }
}

/// One event, as stored in `events`.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    /// When it happened (Unix seconds): the log line's, the reject's or the report's Date
    /// time where known, else when rebound stored it.
    pub occurred_at: i64,
    /// lmtp, milter, ingest, reject or log.
    pub source: String,
    /// The LMTP RCPT TO it was delivered to (the return path), or "".
    pub envelope_recipient: String,
    /// The address the report is about.
    pub recipient: String,
    /// bounce, delay, delivered, relayed, autoreply, complaint, unknown.
    pub kind: String,
    /// DSN Action.
    pub action: String,
    /// Enhanced status code.
    pub status: String,
    /// SMTP reply code.
    pub reply_code: Option<u16>,
    /// The remote server's text.
    pub diagnostic: String,
    /// Host that returned the error.
    pub remote_mta: String,
    /// Host that wrote the report.
    pub reporting_mta: String,
    /// SMTP command the error answered.
    pub smtp_command: String,
    /// ARF Feedback-Type.
    pub feedback_type: String,
    /// Auto-reply return date (YYYY-MM-DD) when stated.
    pub return_date: String,
    /// Message-ID of the returned original.
    pub original_message_id: String,
    /// Sisimai v5 reason.
    pub reason: String,
    /// Coarse class.
    pub class: String,
    /// recipient, sender, transient, none.
    pub fault: String,
    /// Permanent failure of the address itself.
    pub hard: bool,
    /// Id of the rule that decided.
    pub rule: String,
    /// The send it belongs to, when known (an expired token still names it: trust follows
    /// `verified`, not this).
    pub send_id: Option<String>,
    /// The return-path token found, if any.
    pub verp: String,
    /// Token valid (or classic VERP with a matching send).
    pub verified: bool,
    /// MTA queue id of the message the event is about (log line, X-Postfix-Queue-ID), or "".
    pub queue_id: String,
}

/// Lower-case domain part of an address ("" if none).
pub fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase()).unwrap_or_default()
}

const INSERT_MESSAGE: &str = "INSERT INTO messages (received_at, source, envelope_sender, envelope_recipients, size_bytes, sha256, kind,
    raw, raw_encoding) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

const INSERT_EVENT: &str = "INSERT INTO events (occurred_at, source, message_id, envelope_recipient, recipient, domain, kind, action,
    status, reply_code, diagnostic, remote_mta, reporting_mta, smtp_command, feedback_type, return_date,
    original_message_id, reason, class, fault, hard, rule, send_id, verp, verified, queue_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24,
    ?25, ?26)";

/// Inserts a message row; returns its id.
pub fn insert_message(tx: &Transaction<'_>, m: &NewMessage) -> Result<i64, StoreError> {
    run_insert_message(&mut *tx.prepare_cached(INSERT_MESSAGE)?, m)
}

fn run_insert_message(stmt: &mut Statement<'_>, m: &NewMessage) -> Result<i64, StoreError> {
    let rcpts = recipients_json(m);
    Ok(stmt.insert(rusqlite::params_from_iter(message_values(m, &rcpts)))?)
}

fn recipients_json(m: &NewMessage) -> String {
    serde_json::to_string(&m.envelope_recipients).unwrap_or_else(|_| "[]".into())
}

/// The values of [`INSERT_MESSAGE`], in order (one list for both ways of running it).
fn message_values<'a>(m: &'a NewMessage, rcpts: &'a str) -> [Value<'a>; 9] {
    [
        Value::Int(m.received_at),
        Value::Text(&m.source),
        Value::Text(&m.envelope_sender),
        Value::Text(rcpts),
        Value::Int(m.size_bytes),
        Value::Text(&m.sha256),
        Value::Text(&m.kind),
        m.raw.as_ref().map_or(Value::Null, |r| Value::Blob(&r.bytes)),
        // The column's default names the encoding of a row without raw bytes.
        Value::Text(m.raw.as_ref().map_or("deflate", |r| r.encoding.as_str())),
    ]
}

/// Inserts an event row (and applies its consequences through [`super::hooks`]);
/// returns its id.
pub fn insert_event(tx: &Transaction<'_>, message_id: Option<i64>, e: &NewEvent) -> Result<i64, StoreError> {
    let id = run_insert_event(&mut *tx.prepare_cached(INSERT_EVENT)?, message_id, e)?;
    super::hooks::after_event(tx, id, e)?;
    Ok(id)
}

fn run_insert_event(stmt: &mut Statement<'_>, message_id: Option<i64>, e: &NewEvent) -> Result<i64, StoreError> {
    let domain = domain_of(&e.recipient);
    Ok(stmt.insert(rusqlite::params_from_iter(event_values(message_id, e, &domain)))?)
}

/// The values of [`INSERT_EVENT`], in order (one list for both ways of running it).
fn event_values<'a>(message_id: Option<i64>, e: &'a NewEvent, domain: &'a str) -> [Value<'a>; 26] {
    let text = |s: &'a str| Value::Text(s);
    let flag = |b: bool| Value::Int(i64::from(b));
    [
        Value::Int(e.occurred_at),
        text(&e.source),
        message_id.map_or(Value::Null, Value::Int),
        text(&e.envelope_recipient),
        text(&e.recipient),
        text(domain),
        text(&e.kind),
        text(&e.action),
        text(&e.status),
        e.reply_code.map_or(Value::Null, |c| Value::Int(i64::from(c))),
        text(&e.diagnostic),
        text(&e.remote_mta),
        text(&e.reporting_mta),
        text(&e.smtp_command),
        text(&e.feedback_type),
        text(&e.return_date),
        text(&e.original_message_id),
        text(&e.reason),
        text(&e.class),
        text(&e.fault),
        flag(e.hard),
        text(&e.rule),
        e.send_id.as_deref().map_or(Value::Null, Value::Text),
        text(&e.verp),
        flag(e.verified),
        text(&e.queue_id),
    ]
}

/// The inserts of a bulk writer (ingest), prepared once for a whole run: through the
/// connection's statement cache every row hashed the SQL text to find its statement and
/// cleared its bindings to hand it back, about a tenth of the writer thread's CPU; and
/// bound in place (`RawInsert`) rather than copied. Same rows and consequences as
/// [`insert_message`], [`insert_event`] and [`super::query::message_exists`].
pub struct PreparedInserts<'c> {
    message: RawInsert<'c>,
    event: RawInsert<'c>,
    exists: Statement<'c>,
}

impl<'c> PreparedInserts<'c> {
    /// Prepares the statements on `conn`; they run in whatever transaction is open on it.
    pub fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(PreparedInserts {
            message: RawInsert::prepare(conn, INSERT_MESSAGE)?,
            event: RawInsert::prepare(conn, INSERT_EVENT)?,
            exists: conn.prepare(super::query::MESSAGE_EXISTS)?,
        })
    }

    /// Whether a message with this SHA-256 (hex) is stored.
    pub fn message_exists(&mut self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self.exists.exists(params![sha256])?)
    }

    /// [`insert_message`] with the prepared statement.
    pub fn insert_message(&mut self, m: &NewMessage) -> Result<i64, StoreError> {
        let rcpts = recipients_json(m);
        Ok(self.message.insert(&message_values(m, &rcpts))?)
    }

    /// [`insert_event`] with the prepared statement (`tx` is the transaction open on
    /// the same connection, for the event's consequences).
    pub fn insert_event(&mut self, tx: &Transaction<'_>, message_id: Option<i64>, e: &NewEvent) -> Result<i64, StoreError> {
        let domain = domain_of(&e.recipient);
        let id = self.event.insert(&event_values(message_id, e, &domain))?;
        super::hooks::after_event(tx, id, e)?;
        Ok(id)
    }
}
