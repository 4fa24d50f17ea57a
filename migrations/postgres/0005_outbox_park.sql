-- A message that cannot succeed stops holding back its channel: after the configured bounds it
-- is parked (kept, marked, shown), and an operator may retry or drop it (dropped rows stay,
-- marked). Claims name the instance that made them, so a restarted process takes its own back
-- at once instead of waiting for the lease.
ALTER TABLE outbox ADD COLUMN parked_at TEXT;
ALTER TABLE outbox ADD COLUMN dropped_at TEXT;
ALTER TABLE outbox ADD COLUMN dropped_by TEXT;
-- When the current run of failures began; the park bound counts from here.
ALTER TABLE outbox ADD COLUMN first_failed_at TEXT;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
-- 1 while the wait is the platform's own Retry-After, which a recovery must not cut short.
ALTER TABLE outbox ADD COLUMN rate_limited BIGINT NOT NULL DEFAULT 0;

-- Pending now also means not parked.
DROP INDEX outbox_pending_by_channel;
DROP INDEX outbox_pending_by_next_attempt;
CREATE INDEX outbox_pending_by_channel ON outbox (platform, channel, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_pending_by_next_attempt ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL AND parked_at IS NULL;
-- Parked and failed items nobody dropped yet: `outbox list`, the dashboard, the gauge.
CREATE INDEX outbox_stuck ON outbox (id)
    WHERE (parked_at IS NOT NULL OR failed_at IS NOT NULL) AND dropped_at IS NULL;
