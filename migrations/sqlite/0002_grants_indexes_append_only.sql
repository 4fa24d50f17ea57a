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

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
