-- 002: what was sent (sends) and the one row per address that applications read
-- (address_status). Times are Unix seconds (UTC).

CREATE TABLE sends (
    id          TEXT    PRIMARY KEY COLLATE NOCASE,  -- the send id carried in the VERP token
    recipient   TEXT    NOT NULL,                    -- the address mailed
    domain      TEXT    NOT NULL,                    -- lower-case domain of recipient
    sender      TEXT    NOT NULL DEFAULT '',         -- From / envelope sender used
    campaign    TEXT    NOT NULL DEFAULT '',         -- campaign or stream name, for reports
    sent_at     INTEGER NOT NULL,
    expires_at  INTEGER,                             -- when its return-path token stops verifying
    return_path TEXT    NOT NULL DEFAULT '',         -- the VERP address printed for it
    metadata    TEXT    NOT NULL DEFAULT '{}'        -- free JSON from the app
);
CREATE INDEX sends_recipient ON sends (recipient COLLATE NOCASE);
CREATE INDEX sends_sent_at ON sends (sent_at);
CREATE INDEX sends_campaign ON sends (campaign, sent_at);

CREATE TABLE address_status (
    address          TEXT    PRIMARY KEY,            -- lower-case address
    domain           TEXT    NOT NULL,               -- lower-case domain
    state            TEXT    NOT NULL,               -- active, soft_bouncing, suppressed, complained, unsubscribed
    reason           TEXT    NOT NULL DEFAULT '',    -- reason of the event that set the state
    class            TEXT    NOT NULL DEFAULT '',    -- class of that event
    rule             TEXT    NOT NULL DEFAULT '',    -- rule that classified it
    since            INTEGER NOT NULL,               -- when the address entered this state
    first_event_at   INTEGER NOT NULL,               -- first counted event
    last_event_at    INTEGER NOT NULL,               -- last counted event
    last_event_id    INTEGER REFERENCES events (id), -- the event that last changed this row
    hard_count       INTEGER NOT NULL DEFAULT 0,     -- hard recipient-fault failures
    soft_count       INTEGER NOT NULL DEFAULT 0,     -- soft recipient-fault failures in the current window
    soft_first_at    INTEGER,                        -- first soft failure of the current window
    complaint_count  INTEGER NOT NULL DEFAULT 0,
    delivered_count  INTEGER NOT NULL DEFAULT 0,
    suppressed_until INTEGER,                        -- NULL: until further notice; else when it lifts
    updated_at       INTEGER NOT NULL
);
CREATE INDEX address_status_state ON address_status (state, since);
CREATE INDEX address_status_domain ON address_status (domain);
