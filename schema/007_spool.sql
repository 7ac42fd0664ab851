-- The intake spool's watermark (src/spool): every message `rebound serve` spooled with
-- a sequence number up to applied_seq is in this database. One row; it moves forward in
-- the same transaction as the rows it covers, so a restart applies each spooled
-- message exactly once.
CREATE TABLE spool_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    applied_seq INTEGER NOT NULL
);
INSERT INTO spool_state (id, applied_seq) VALUES (1, 0);
