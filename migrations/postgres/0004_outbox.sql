-- The durable outbox (outgoing messages, written in the transaction of the command that caused
-- them), where each record's message lives on each platform, and the inbound deliveries seen.
CREATE TABLE outbox (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform         TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    op               TEXT    NOT NULL,
    record           TEXT,
    payload          TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  TEXT    NOT NULL,
    delivered_at     TEXT,
    failed_at        TEXT,
    last_error       TEXT
);
-- Pending items per channel, oldest first: finds each channel's head.
CREATE INDEX outbox_pending_by_channel ON outbox (platform, channel, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- Pending items by when they are next due.
CREATE INDEX outbox_pending_by_next_attempt ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE message_refs (
    record    TEXT NOT NULL,
    platform  TEXT NOT NULL,
    channel   TEXT NOT NULL,
    ref       TEXT NOT NULL,
    PRIMARY KEY (record, platform, channel)
);

CREATE TABLE inbound_deliveries (
    platform     TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (platform, delivery_id)
);
