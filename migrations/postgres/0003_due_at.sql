-- The next deadline the clock must act on (an SLA target or an emergency change's review), per record.
ALTER TABLE records ADD COLUMN due_at TEXT;
CREATE INDEX records_by_due ON records (due_at) WHERE due_at IS NOT NULL;
