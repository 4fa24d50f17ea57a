-- Open incidents of one service, most urgent first (the overview filtered by service): without
-- this the query walked every open incident's entry of `records_by_urgency` to find a service's,
-- 190 ms with 100,000 open incidents and none in the service (benches/evidence.rs).
CREATE INDEX records_by_service_urgency ON records (kind, service, breached DESC, sla_due, priority, num)
    WHERE sla_due IS NOT NULL;
