-- 003: mail-log follower state (log_positions, log_pending) and event dedup columns.

-- The MTA queue id an event is about: from the log line, or X-Postfix-Queue-ID of a DSN.
ALTER TABLE events ADD COLUMN queue_id TEXT NOT NULL DEFAULT '';
-- Set when the same result was already recorded from another source (the log line and
-- Postfix's own DSN): the earlier event's id. Duplicates change no address status and
-- are left out of counts and reports.
ALTER TABLE events ADD COLUMN duplicate_of INTEGER REFERENCES events (id);
-- Dedup looks events up by (queue id | original Message-ID, recipient).
CREATE INDEX events_queue_id ON events (queue_id, recipient COLLATE NOCASE);
CREATE INDEX events_original_message_id ON events (original_message_id, recipient COLLATE NOCASE);

-- Where each followed log was read to. A restart resumes at offset in the file with
-- this device/inode whose first line hashes to first_line_hash (else the file was
-- replaced and is searched for among its rotated siblings).
CREATE TABLE log_positions (
    path            TEXT    PRIMARY KEY,          -- the followed path as configured
    device          INTEGER NOT NULL,
    inode           INTEGER NOT NULL,
    offset          INTEGER NOT NULL,             -- bytes consumed (always at a line end)
    first_line_hash TEXT    NOT NULL DEFAULT '',  -- hex SHA-256 prefix of the file's first line
    lines           INTEGER NOT NULL DEFAULT 0,   -- lines read, all files
    results         INTEGER NOT NULL DEFAULT 0,   -- delivery results recorded
    unknown_lines   INTEGER NOT NULL DEFAULT 0,   -- lines not understood (skipped)
    updated_at      INTEGER NOT NULL
);

-- The queue-id join of each log (sender, Message-ID, deferred recipients), so a
-- restart between a message's from= line and its delivery line still correlates it.
CREATE TABLE log_pending (
    path     TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    state    TEXT NOT NULL,                       -- JSON
    PRIMARY KEY (path, queue_id)
) WITHOUT ROWID;
