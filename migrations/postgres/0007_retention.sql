-- Retention: delivered outbox items and inbound delivery IDs are purged once older than their
-- configured ages (records and audit entries never are). These indexes let the purge find the
-- oldest rows without scanning the tables.
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX inbound_deliveries_by_age ON inbound_deliveries (received_at);
