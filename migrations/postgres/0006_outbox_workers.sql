-- Which `serve` processes are delivering the outbox, and when each last said so: `exec` reads it
-- to tell its user whether the messages it queued will go out now or at the next start.
CREATE TABLE outbox_workers (
    instance TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);
