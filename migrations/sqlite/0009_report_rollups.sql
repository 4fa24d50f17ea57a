-- Per-day, per-service rollups of the service report (incidents and changes), kept by the
-- writer in the same transaction as the records they summarise, so a report reads a few hundred
-- rows instead of every record. `day` is the UTC day a record was created (YYYY-MM-DD); the
-- columns are the counters of `domain::report::COUNTERS` (counts and millisecond sums).
CREATE TABLE report_rollups (
    day TEXT NOT NULL,
    service TEXT NOT NULL,
    incidents INTEGER NOT NULL DEFAULT 0,
    p1 INTEGER NOT NULL DEFAULT 0,
    p2 INTEGER NOT NULL DEFAULT 0,
    p3 INTEGER NOT NULL DEFAULT 0,
    p4 INTEGER NOT NULL DEFAULT 0,
    ack_ms INTEGER NOT NULL DEFAULT 0,
    ack_n INTEGER NOT NULL DEFAULT 0,
    resolve_ms INTEGER NOT NULL DEFAULT 0,
    resolve_n INTEGER NOT NULL DEFAULT 0,
    sla_measured INTEGER NOT NULL DEFAULT 0,
    sla_met INTEGER NOT NULL DEFAULT 0,
    sla_breaches INTEGER NOT NULL DEFAULT 0,
    from_alerts INTEGER NOT NULL DEFAULT 0,
    alert_ack_ms INTEGER NOT NULL DEFAULT 0,
    alert_ack_n INTEGER NOT NULL DEFAULT 0,
    pages INTEGER NOT NULL DEFAULT 0,
    pages_outside_hours INTEGER NOT NULL DEFAULT 0,
    page_ack_ms INTEGER NOT NULL DEFAULT 0,
    page_ack_n INTEGER NOT NULL DEFAULT 0,
    ran_out INTEGER NOT NULL DEFAULT 0,
    changes INTEGER NOT NULL DEFAULT 0,
    type_standard INTEGER NOT NULL DEFAULT 0,
    type_normal INTEGER NOT NULL DEFAULT 0,
    type_emergency INTEGER NOT NULL DEFAULT 0,
    outcome_successful INTEGER NOT NULL DEFAULT 0,
    outcome_failed INTEGER NOT NULL DEFAULT 0,
    outcome_rejected INTEGER NOT NULL DEFAULT 0,
    outcome_open INTEGER NOT NULL DEFAULT 0,
    failed_by_incidents INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, service)
);

-- Pages to people per bucket, by whom (an open-ended set, so rows rather than columns).
CREATE TABLE report_rollup_pages (
    day TEXT NOT NULL,
    service TEXT NOT NULL,
    person TEXT NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, service, person)
);

-- Whether the rollups have been built from the records already there (once, by `migrate`).
CREATE TABLE report_rollup_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    built INTEGER NOT NULL
);
INSERT INTO report_rollup_state (id, built) VALUES (1, 0);
