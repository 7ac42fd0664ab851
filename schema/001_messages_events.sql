-- 001: the messages rebound received and the events (one per recipient report) found in them.
-- Times are Unix seconds (UTC); SELECT datetime(received_at, 'unixepoch') to read them.

CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    received_at         INTEGER NOT NULL,            -- when rebound stored it
    source              TEXT    NOT NULL,            -- lmtp, milter, ingest
    envelope_sender     TEXT    NOT NULL,            -- MAIL FROM ("" for <>)
    envelope_recipients TEXT    NOT NULL,            -- JSON array of accepted RCPT TO addresses
    size_bytes          INTEGER NOT NULL,            -- size of the raw message
    sha256              TEXT    NOT NULL,            -- hex SHA-256 of the raw message
    kind                TEXT    NOT NULL,            -- bounce, delay, delivered, relayed, autoreply, complaint, unknown
    raw                 BLOB,                        -- the message, deflate-compressed; NULL once pruned
    raw_encoding        TEXT    NOT NULL DEFAULT 'deflate'
);
CREATE INDEX messages_sha256 ON messages (sha256);
CREATE INDEX messages_received_at ON messages (received_at);

CREATE TABLE events (
    id                  INTEGER PRIMARY KEY,
    occurred_at         INTEGER NOT NULL,            -- when rebound learned of it (Unix seconds)
    source              TEXT    NOT NULL,            -- lmtp, milter, ingest, reject, log
    message_id          INTEGER REFERENCES messages (id),  -- the message it came from (NULL for reject/log)
    envelope_recipient  TEXT    NOT NULL DEFAULT '', -- the LMTP RCPT TO it was delivered to (the return path)
    recipient           TEXT    NOT NULL,            -- the address the report is about
    domain              TEXT    NOT NULL,            -- lower-case domain of recipient
    kind                TEXT    NOT NULL,            -- bounce, delay, delivered, relayed, autoreply, complaint, unknown
    action              TEXT    NOT NULL DEFAULT '', -- DSN Action
    status              TEXT    NOT NULL DEFAULT '', -- enhanced status code, e.g. 5.1.1
    reply_code          INTEGER,                     -- SMTP reply code, e.g. 550
    diagnostic          TEXT    NOT NULL DEFAULT '', -- the remote server's text
    remote_mta          TEXT    NOT NULL DEFAULT '',
    reporting_mta       TEXT    NOT NULL DEFAULT '',
    smtp_command        TEXT    NOT NULL DEFAULT '',
    feedback_type       TEXT    NOT NULL DEFAULT '', -- ARF Feedback-Type
    return_date         TEXT    NOT NULL DEFAULT '', -- auto-reply return date (YYYY-MM-DD) when stated
    original_message_id TEXT    NOT NULL DEFAULT '', -- Message-ID of the returned original
    reason              TEXT    NOT NULL,            -- Sisimai v5 reason
    class               TEXT    NOT NULL,            -- coarse class
    fault               TEXT    NOT NULL,            -- recipient, sender, transient, none
    hard                INTEGER NOT NULL DEFAULT 0,  -- 1: permanent failure of the address itself
    rule                TEXT    NOT NULL DEFAULT '', -- id of the classification rule that decided
    send_id             TEXT,                        -- the send it belongs to (VERP), when known
    verp                TEXT    NOT NULL DEFAULT '', -- the return-path token found, if any
    verified            INTEGER NOT NULL DEFAULT 0   -- 1: token valid (or classic VERP with a matching send)
);
CREATE INDEX events_recipient ON events (recipient COLLATE NOCASE, occurred_at);
CREATE INDEX events_occurred_at ON events (occurred_at);
CREATE INDEX events_message_id ON events (message_id);
CREATE INDEX events_send_id ON events (send_id);
