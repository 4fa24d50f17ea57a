-- Roles granted at run time, indexes for listing and timelines, and an append-only audit table.
CREATE TABLE role_grants (
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    granted_at  TEXT NOT NULL,
    PRIMARY KEY (actor, role)
);

CREATE INDEX records_by_number ON records (kind, num, key);
CREATE INDEX records_by_status ON records (kind, status, num);
CREATE INDEX audit_by_record ON audit (record, seq);

CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
