-- An open incident's SLA deadline (`Record::sla_due`: respond-by while new, resolve-by while
-- acknowledged), so the dashboard lists open incidents most urgent first in the query itself:
-- breached first, then the least time left, then priority.
ALTER TABLE records ADD COLUMN sla_due TEXT;
CREATE INDEX records_by_urgency ON records (kind, breached DESC, sla_due, priority, num)
    WHERE sla_due IS NOT NULL;

-- Databases that already hold open incidents get the column filled once, from the stored
-- records, by the first `migrate()` after this migration (the deadline is computed in Rust).
CREATE TABLE sla_due_backfill (
    id BIGINT PRIMARY KEY
);
INSERT INTO sla_due_backfill (id)
SELECT 1 WHERE EXISTS (SELECT 1 FROM records WHERE kind = 'incident' AND status IN ('new', 'acknowledged'));
