-- 006: most events have no queue id (every DSN), many no original Message-ID and no
-- send: their entries in these three indexes were never looked up, yet each cost a
-- B-tree insert per event (ingest's writer thread is mostly index inserts). Partial
-- indexes hold only the rows a lookup can find. The duplicate check says
-- `queue_id <> ''` / `original_message_id <> ''` itself so SQLite knows it may use them;
-- `send_id = ?` implies `send_id IS NOT NULL`.
DROP INDEX events_queue_id;
CREATE INDEX events_queue_id ON events (queue_id, recipient COLLATE NOCASE, source) WHERE queue_id <> '';
DROP INDEX events_original_message_id;
CREATE INDEX events_original_message_id ON events (original_message_id, recipient COLLATE NOCASE, source)
    WHERE original_message_id <> '';
DROP INDEX events_send_id;
CREATE INDEX events_send_id ON events (send_id) WHERE send_id IS NOT NULL;
